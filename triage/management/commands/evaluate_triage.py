"""Measures triage: the active rules on one evaluation file, or rules, model and both together across authors.

    manage.py evaluate_triage                   # the active rules on triage/evaluation/messages.jsonl
    manage.py evaluate_triage --cross-author    # each author scored by a model that never saw them
    manage.py evaluate_triage --cross-author --authors author_y_diaspora   # one author's row of that table
    manage.py evaluate_triage --file F --system combined   # what the worker runs (rules and the shipped model) on F
    manage.py evaluate_triage --file F --second-reading R  # how far a second reader's labels R agree with F's
"""

import os
from pathlib import Path

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from triage import selectors
from triage.classification import sentences_matched
from triage.evaluation.metrics import (
    EVALUATION_SET,
    TARGETS,
    Report,
    evaluate,
    load_messages,
    load_second_reading,
)
from triage.semantic.combination import IN_ONE_LINE
from triage.semantic_model import is_turned_off
from triage.services import classify, classify_by_rules

PRIORITIES = ["critical", "high", "normal", "low"]


class Command(BaseCommand):
    help = (
        "Measure triage: the active rules on an evaluation file, or (--cross-author) the rules, the semantic model "
        "and the combined system on each author, trained on all the others."
    )

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, default=EVALUATION_SET)
        parser.add_argument(
            "--system", choices=["rules", "combined"], default="rules",
            help="With --file: the active rules alone, or the rules with the shipped semantic model (the worker's).",
        )
        parser.add_argument(
            "--show-errors", action="store_true", help="List every miss, false alarm and wrong category."
        )
        parser.add_argument(
            "--second-reading", type=Path, default=None, metavar="R",
            help=(
                "With --file: score another person's labels of the same messages (triage/evaluation/second_readings) "
                "as if they were a system: how far two careful readers agree."
            ),
        )
        parser.add_argument(
            "--cross-author", action="store_true",
            help="Train on all authors but one, score the held-out author, for each in turn (half an hour).",
        )
        parser.add_argument(
            "--authors", default="", metavar="NAME,NAME",
            help=(
                "With --cross-author: score only these authors (file stems, e.g. author_y_diaspora), each by a head "
                "trained on every other author; by default every author."
            ),
        )
        parser.add_argument(
            "--jobs", type=int, default=len(os.sched_getaffinity(0)), metavar="N",
            help="With --cross-author: fit this many heads at a time, each in its own process (default: one a CPU).",
        )
        parser.add_argument(
            "--mode", choices=["combined", "model", "rules", "all"], default="combined",
            help="With --cross-author: which system's table to print (default: combined, what the worker runs).",
        )

    def handle(
        self, *args, file: Path, system: str, show_errors: bool, cross_author: bool, mode: str, authors: str,
        jobs: int, second_reading: Path | None = None, **options,
    ) -> None:
        if second_reading is not None:
            if cross_author:
                raise CommandError("--second-reading scores one --file; it does not go with --cross-author")
            self._second_reading(file, second_reading)
            return
        if not (cross_author and mode == "model"):  # the model alone reads no rule
            self._check_rules_can_be_read()  # before a cross-author run's hours of training, not after them
        if cross_author:
            if jobs < 1:
                raise CommandError("--jobs must be at least 1")
            self._cross_author(mode, [name.strip() for name in authors.split(",") if name.strip()], jobs)
        else:
            self._on_file(file, system, show_errors)

    def _check_rules_can_be_read(self) -> None:
        try:
            selectors.active_rules()
        except DatabaseError as error:
            raise CommandError(
                f"the triage rules could not be read from the database ({error}): is DATABASE_URL the database "
                "you meant, and has `manage.py migrate` run on it (make run does both)?"
            ) from error

    def _cross_author(self, mode: str, chosen: list[str], jobs: int) -> None:
        # Here, not at the top: the embedding model is loaded only when asked for.
        from triage.semantic import corpus
        from triage.semantic.embedding import CachedEmbedder, shared_embedder
        from triage.semantic.training import (
            MODES,
            EmbeddingTable,
            TrainingSettings,
            cross_author_evaluation,
            report_lines,
        )

        authors, older = corpus.authors(), corpus.older_sets()
        unknown = sorted(set(chosen) - set(authors))
        if unknown:
            raise CommandError(f"no author file named {', '.join(unknown)}; the authors are: {', '.join(authors)}")
        scored = {name: rows for name, rows in authors.items() if name in chosen} if chosen else authors
        settings = TrainingSettings()
        self.stdout.write(
            f"cross-author: {len(scored)} of {len(authors)} authors scored ({sum(map(len, scored.values()))} "
            f"messages), each by a head trained on all the other authors and on {', '.join(older) or 'no older set'}; "
            f"its critical threshold chosen by leaving training authors out.\ncombined: {IN_ONE_LINE}"
        )
        report = cross_author_evaluation(
            authors,
            # Embeddings kept under var/ between runs: embedding every training text took longer than the rest.
            EmbeddingTable(CachedEmbedder(shared_embedder(), django_settings.VAR_DIR / "cache"), settings.features),
            settings,
            extra_training=older,
            only=chosen,  # the others still train every head: a chosen author's row is its row in the full table
            rules=classify_by_rules,
            rules_words=lambda text: sentences_matched(text, selectors.critical_rules()),
            progress=lambda line: self.stdout.write(f"  {line}"),
            jobs=jobs,
        )
        for shown in MODES if mode == "all" else (mode,):
            self.stdout.write("\n".join(report_lines(report, shown)) + "\n")

    def _second_reading(self, file: Path, reading: Path) -> None:
        messages = load_messages(file)
        try:
            read = load_second_reading(reading, messages)
        except (OSError, ValueError) as error:  # ReadingError, a JSON line that does not parse, a missing file
            raise CommandError(f"the second reading {reading} cannot be scored against {file.name}: {error}") from error
        # Not held to the targets: they are asked of a system, and this is how far the system can be asked to go.
        self._print_report(
            evaluate(messages, read), f"a second reader ({reading.name})", file, show_errors=False, with_targets=False
        )

    def _on_file(self, file: Path, system: str, show_errors: bool) -> None:
        if system == "combined" and is_turned_off():
            raise CommandError(
                "semantic triage is turned off here (SEMANTIC_TRIAGE=false): the combined system would be the rules "
                "alone. Run with SEMANTIC_TRIAGE=true, or ask for --system rules."
            )
        report = evaluate(load_messages(file), classify if system == "combined" else classify_by_rules)
        name = "the rules and the shipped model" if system == "combined" else "the active rules"
        self._print_report(report, name, file, show_errors=show_errors)

    def _print_report(
        self, report: Report, name: str, file: Path, *, show_errors: bool, with_targets: bool = True
    ) -> None:
        out = self.stdout.write
        out(f"{name} on {file.name}; messages: {report.total}")
        def target(word: str, name: str) -> str:
            return f"  (target {word} {TARGETS[name]})" if with_targets else ""

        out(f"critical recall:                {report.critical_recall:.3f}{target('>=', 'critical_recall')}")
        out(
            f"low/normal marked critical:     {report.low_normal_marked_critical:.3f}"
            f"{target('<=', 'low_normal_marked_critical')}"
        )
        out(f"category accuracy:              {report.category_accuracy:.3f}{target('>=', 'category_accuracy')}")
        out(f"priority exactly right:         {report.priority_accuracy:.3f}")
        out("priority confusion (rows: expected, columns: given):")
        out("            " + "".join(f"{p:>10}" for p in PRIORITIES))
        for expected in PRIORITIES:
            out(f"{expected:>10}  " + "".join(f"{report.confusion[(expected, got)]:>10}" for got in PRIORITIES))
        if show_errors:
            for title, rows in (
                ("missed critical", report.missed_critical),
                ("low/normal marked critical", report.false_critical),
                ("wrong category", report.wrong_category),
            ):
                out(f"\n{title} ({len(rows)}):")
                for row in rows:
                    out(
                        f"  [{row['priority']}/{row['category']} -> {row['got_priority']}/{row['got_category']}] "
                        f"{row['text']}\n      {row['reasons'][:3]}"
                    )
        if with_targets:
            out(self.style.SUCCESS("targets met") if report.meets_targets else self.style.ERROR("targets NOT met"))
