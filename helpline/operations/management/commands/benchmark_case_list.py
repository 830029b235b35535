"""Measures the staff case list and detail at scale: seeds N cases, times the API in-process, prints figures.

Run it against a throwaway database (it adds N cases and removes them afterwards), for example:
    DATABASE_URL=postgres://localhost/helpline_bench python manage.py benchmark_case_list --cases 10000
"""
import random
import statistics
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from helpline.cases.figures import percentile
from helpline.cases.models import Case, CaseStatus, Channel, Direction, Message, Priority
from helpline.roster.models import Role, StaffProfile


class Command(BaseCommand):
    help = "Seed N cases and time GET /api/v1/cases/ (and a detail) as a supervisor and as a worker."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=10000)
        parser.add_argument("--requests", type=int, default=200)

    def handle(self, *args, cases: int, requests: int, **options) -> None:
        users = get_user_model().objects
        supervisor = users.create_user(f"bench-supervisor-{time.time_ns()}", is_superuser=True)
        worker = users.create_user(f"bench-worker-{time.time_ns()}")
        StaffProfile.objects.create(user=supervisor, role=Role.SUPERVISOR)
        StaffProfile.objects.create(user=worker, role=Role.WORKER)
        self.stdout.write(f"seeding {cases} cases ...")
        now = timezone.now()
        rng = random.Random(42)  # noqa: S311 - reproducible test data, not secrecy
        batch = [
            Case(
                reference=f"BENCH-{i:07d}", channel=rng.choice(list(Channel.values)),
                status=rng.choice([CaseStatus.TRIAGED, CaseStatus.ASSIGNED, CaseStatus.ACKNOWLEDGED]),
                priority=rng.choice(list(Priority.values)), category="other",
                assigned_to=rng.choice([supervisor, worker, None]),
                acknowledge_by=now + timedelta(minutes=rng.randint(-60, 60)),
            )
            for i in range(cases)
        ]  # fmt: skip
        Case.objects.bulk_create(batch, batch_size=2000)
        seeded = Case.objects.filter(reference__startswith="BENCH-")
        Message.objects.bulk_create(
            [Message(case=c, direction=Direction.INBOUND, channel=c.channel, body="Treba mi pomoć.") for c in seeded],
            batch_size=2000,
        )
        try:
            for user, label in ((supervisor, "supervisor"), (worker, "worker")):
                client = Client(HTTP_HOST="localhost")
                client.force_login(user)
                self._time(client, "/api/v1/cases/", requests, f"list as {label} (25 a page)")
                self._time(client, "/api/v1/cases/?priority=critical&priority=high&ordering=deadline", requests,
                           f"filtered list as {label}")  # fmt: skip
            detail = seeded.filter(assigned_to=supervisor).first()
            client = Client(HTTP_HOST="localhost")
            client.force_login(supervisor)
            self._time(client, f"/api/v1/cases/{detail.pk}/", requests, "detail as supervisor")
        finally:
            seeded.delete()
            users.filter(pk__in=[supervisor.pk, worker.pk]).delete()

    def _time(self, client: Client, path: str, requests: int, label: str) -> None:
        client.get(path)  # warm up
        timings = []
        with CaptureQueriesContext(connection) as queries:
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.status_code
        self.stdout.write(
            f"{label:<40} median {statistics.median(timings):6.1f} ms   p95 {percentile(timings, 0.95):6.1f} ms   "
            f"queries/request {len(queries) / requests:.0f}"
        )
