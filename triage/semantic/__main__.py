"""Train the shipped head: `python -m triage.semantic [--out triage/data/triage_head.npz] [--with-corrections FILE]`.

Learns from every author file in triage/data/training and the older evaluation sets (each file one author);
the critical threshold comes from leaving one author out at a time. Deterministic: same files, same head.
`--with-corrections` adds staff corrections written by `manage.py export_triage_corrections` as one more author;
their texts are learnt from but never kept as "resembles" examples (they are citizens' words).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from triage.semantic.corpus import training_groups
from triage.semantic.embedding import shared_embedder
from triage.semantic.model import DEFAULT_HEAD_FILE
from triage.semantic.training import EmbeddingTable, TrainingSettings, train_shipped_head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD_FILE)
    parser.add_argument(
        "--with-corrections", type=Path, action="append", default=[], metavar="FILE",
        help="a jsonl file of staff corrections (manage.py export_triage_corrections); may be given more than once",
    )
    parser.add_argument(
        "--jobs", type=int, default=len(os.sched_getaffinity(0)), help="heads fitted at a time, each in its own process"
    )
    arguments = parser.parse_args(argv)
    settings = TrainingSettings()
    groups = training_groups(arguments.with_corrections)
    head = train_shipped_head(
        groups, EmbeddingTable(shared_embedder(), settings.features), settings, jobs=max(arguments.jobs, 1)
    )
    head.save(arguments.out)
    size = arguments.out.stat().st_size
    print(f"wrote {arguments.out} ({size / 1e6:.2f} MB), critical threshold {head.critical_threshold:.3f}")
    for key, value in head.notes.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
