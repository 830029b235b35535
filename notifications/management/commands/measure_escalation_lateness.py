"""Measures how late escalation steps run (due time to step run) with the real worker and beat running.

Start the service first (`make run`, or worker and beat against PostgreSQL and Redis), then run this. It makes
assigned cases whose deadlines fall over the next `--spread` seconds, waits for the first step of each, prints
the figures and deletes the cases it made.
"""
import random
import statistics
import time
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from helpline.cases import services as case_services
from helpline.cases.figures import percentile
from helpline.cases.intake import next_case_reference
from helpline.cases.models import Case, CaseStatus, Channel, EventKind, TimelineEvent
from helpline.roster.models import StaffProfile
from notifications.ladder import ladder_for


class Command(BaseCommand):
    help = "Measure escalation lateness (due time to step run) against the running worker and beat."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=40)
        parser.add_argument("--spread", type=int, default=60, help="Seconds over which the deadlines fall.")

    def handle(self, *args, cases: int, spread: int, **options) -> None:
        staff = StaffProfile.objects.select_related("user").first()
        if staff is None:
            self.stderr.write("No staff: run `manage.py load_demo_data` first.")
            return
        now = timezone.now()
        made = []
        for _ in range(cases):
            case = Case.objects.create(
                reference=_reference(), channel=Channel.WEB, status=CaseStatus.ASSIGNED, priority="normal",
                category="other", assigned_to=staff.user,
            )  # fmt: skip
            due = now + timedelta(seconds=random.uniform(3, spread))  # noqa: S311 - spread, not secrecy
            ladder = ladder_for(case.priority).as_snapshot()
            case_services.start_escalation_clock(case, acknowledge_by=due, ladder=ladder)
            made.append(case.pk)
        self.stdout.write(f"{cases} cases due over the next {spread} s; waiting for their first step ...")
        deadline = time.monotonic() + spread + 60
        lateness: list[float] = []
        while time.monotonic() < deadline:
            events = list(
                TimelineEvent.objects.filter(case_id__in=made, kind=EventKind.ESCALATED, details__step=1)
                .values_list("details", flat=True)
            )
            if len(events) >= cases:
                lateness = [float(e["lateness_seconds"]) for e in events]
                break
            time.sleep(1)
        Case.objects.filter(pk__in=made).delete()
        if not lateness:
            self.stderr.write("Steps did not run in time: are the worker and beat running?")
            return
        self.stdout.write(
            f"escalation lateness over {len(lateness)} steps (s): median {statistics.median(lateness):.2f}, "
            f"p95 {percentile(lateness, 0.95):.2f}, p99 {percentile(lateness, 0.99):.2f}, max {max(lateness):.2f}"
        )


def _reference() -> str:
    with transaction.atomic():
        return next_case_reference()
