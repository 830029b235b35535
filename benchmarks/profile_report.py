#!/usr/bin/env python
"""Where a process's Python CPU went, from a py-spy raw profile (`py-spy record --gil --format raw`): the share of
samples in each of our functions (with what it calls) and in each library (the function on top of the stack).

`--gil` samples only the thread holding the interpreter lock, so time waiting on PostgreSQL, Redis or Twilio is left
out: the shares are of the process's Python CPU. benchmarks/run.py --py-spy DIR records one file per process and
prints this for each; by hand:

    .venv/bin/python benchmarks/profile_report.py var/bench/py-spy/worker.txt [--top 25]
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

OUR_CODE = re.compile(r"^(helpline|triage|notifications)/")
FRAME = re.compile(r"(\S+) \((.+?):\d+\)")


def summarise(path: Path) -> tuple[int, Counter, Counter]:
    """Samples in all, samples under each of our functions (counted once a stack), samples by library on top."""
    ours: Counter = Counter()
    libraries: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [match.groups() for match in map(FRAME.match, (f.strip() for f in stack.split(";"))) if match]
        for key in {f"{file}:{function}" for function, file in frames if OUR_CODE.match(file)}:
            ours[key] += samples
        top = frames[-1][1] if frames else "?"
        libraries[_library(top)] += samples
    return total, ours, libraries


def _library(file: str) -> str:
    """Our module (py-spy names files from their import root: `triage/classification.py`), a package's name
    (`django`), or the standard library's module (`stdlib: copy`)."""
    if OUR_CODE.match(file):
        return "/".join(file.split("/")[:2])
    if "/" not in file:  # a module of the standard library (copy.py), or an interpreter's own (<frozen abc>)
        return f"stdlib: {file.removesuffix('.py')}"
    return file.split("/")[0]


def report(path: Path, top: int = 20) -> list[str]:
    total, ours, libraries = summarise(path)
    if not total:
        return [f"{path.stem}: no samples"]
    lines = [f"{path.stem}: {total} samples holding the GIL; our functions, with what they call:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in ours.most_common(top)]
    lines.append(f"{path.stem}: on top of the stack, by library:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in libraries.most_common(min(top, 12))]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    for file in args.files:
        print("\n".join(report(file, args.top)))


if __name__ == "__main__":
    main()
