"""Prints how the active triage rules do on the evaluation set, against the targets."""

from pathlib import Path

from django.core.management.base import BaseCommand

from triage.evaluation.metrics import EVALUATION_SET, TARGETS, evaluate, load_messages
from triage.services import classify

PRIORITIES = ["critical", "high", "normal", "low"]


class Command(BaseCommand):
    help = "Measure the active triage rules on the evaluation set (critical recall, false alarms, categories)."

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, default=EVALUATION_SET)
        parser.add_argument(
            "--show-errors", action="store_true", help="List every miss, false alarm and wrong category."
        )

    def handle(self, *args, file: Path, show_errors: bool, **options) -> None:
        report = evaluate(load_messages(file), classify)
        out = self.stdout.write
        out(f"messages: {report.total}")
        out(f"critical recall:                {report.critical_recall:.3f}  (target >= {TARGETS['critical_recall']})")
        out(
            f"low/normal marked critical:     {report.low_normal_marked_critical:.3f}  "
            f"(target <= {TARGETS['low_normal_marked_critical']})"
        )
        out(
            f"category accuracy:              {report.category_accuracy:.3f}  "
            f"(target >= {TARGETS['category_accuracy']})"
        )
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
        out(self.style.SUCCESS("targets met") if report.meets_targets else self.style.ERROR("targets NOT met"))
