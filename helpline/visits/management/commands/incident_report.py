"""The month's incidents of aggression against staff, for the centre and its professional association:
`manage.py incident_report --month 2026-11 [--csv file]`. The CSV names no client and no address."""
from __future__ import annotations

import csv
import re
import sys
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from helpline.visits.models import IncidentKind
from helpline.visits.selectors import incidents_in_month

COLUMNS = ["date", "kind", "place", "by_whom", "staff_member", "case", "on_a_visit", "police_informed", "what"]


class Command(BaseCommand):
    help = "Monthly report of aggression and threats against staff (CSV and a text summary)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--month", required=True, help="YYYY-MM")
        parser.add_argument("--csv", dest="csv_path", help="CSV file to write ('-': standard output).")

    def handle(self, *args, month: str, csv_path: str | None = None, **options) -> None:
        found = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if not found or not 1 <= int(found[2]) <= 12:
            raise CommandError("--month must look like 2026-11")
        incidents = list(incidents_in_month(int(found[1]), int(found[2])))
        if csv_path:
            self._write_csv(incidents, csv_path)
        self.stdout.write(summary(incidents, month))

    def _write_csv(self, incidents, path: str) -> None:
        handle = sys.stdout if path == "-" else open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        try:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for incident in incidents:
                writer.writerow([
                    f"{timezone.localtime(incident.occurred_at):%Y-%m-%d %H:%M}", incident.kind, incident.place,
                    incident.perpetrator, str(incident.staff_affected),
                    incident.case.reference if incident.case else "",
                    "yes" if incident.visit_id else "no", "yes" if incident.police_informed else "no",
                    incident.description,
                ])  # fmt: skip
        finally:
            if handle is not sys.stdout:
                handle.close()


def summary(incidents, month: str) -> str:
    kinds = Counter(incident.kind for incident in incidents)
    lines = [f"Incidents against staff, {month}: {len(incidents)}"]
    for kind in IncidentKind:
        if kinds[kind.value]:
            lines.append(f"  {kind.label}: {kinds[kind.value]}")
    people = len({incident.staff_affected_id for incident in incidents})
    lines.append(f"  staff members affected: {people}")
    lines.append(f"  on home visits: {sum(1 for i in incidents if i.visit_id)}")
    lines.append(f"  police informed: {sum(1 for i in incidents if i.police_informed)}")
    return "\n".join(lines) + "\n"
