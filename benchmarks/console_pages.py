#!/usr/bin/env python
"""How fast the staff console's pages answer on demo-sized data (the issue asks for under 200 ms each).

Loads the demo staff (`manage.py load_demo_data`) and, if the database has fewer, a few hundred cases made by
the real intake and triage services (SMS in, classified, assigned by the roster; some acknowledged, replied to,
resolved, escalated, overdue). Then requests every page with Django's test client, signed in as a worker or the
supervisor, and prints the median and 95th percentile per page. Runs against the configured database:

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/console_pages.py [--cases 400] [--rounds 40]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpline.project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Count, Q  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from helpline.cases import intake as case_intake  # noqa: E402
from helpline.cases import services as case_services  # noqa: E402
from helpline.cases.figures import percentile  # noqa: E402
from helpline.cases.models import OPEN_STATUSES, Case, CaseStatus  # noqa: E402
from helpline.casework import actions  # noqa: E402
from notifications import acknowledgement, outbox  # noqa: E402

TEXTS = [
    "Muž me tuče i prijeti da će me ubiti", "Dijete je samo kod kuće već dva dana", "Ne mogu više, hoću da se ubijem",
    "Baka je nepokretna i niko ne dolazi", "Nemamo šta jesti, djeca su gladna", "Sin pije i razbija stvari",
    "Kako da dobijem jednokratnu pomoć?", "Komšija viče na djecu svaku noć", "Trebam informaciju o udomiteljstvu",
    "Osjećam se jako loše i sama sam", "Otac me udario, bojim se ići kući", "Gdje mogu prijaviti nasilje?",
]  # fmt: skip


def load_cases(target: int) -> None:
    call_command("load_demo_data", verbosity=0)
    have = Case.objects.count()
    rng = random.Random(7)  # noqa: S311 - demo data, not security
    supervisor = get_user_model().objects.get(username="supervisor")
    for n in range(have, target):
        text = rng.choice(TEXTS)
        intake = case_intake.record_inbound_sms(
            message_sid=f"SMBENCH{n:026d}", from_number=f"+387617{n:05d}", body=f"{text} ({n})"
        )
        case = actions.do_triage_case(intake.case.pk)
        if case is None or case.assigned_to_id is None:
            continue
        roll = rng.random()
        if roll < 0.6:
            case = acknowledgement.acknowledge_case(case, by=case.assigned_to, via="benchmark")
            outbox.reply_to_citizen(case, "Tu smo. Je li sigurno da vas nazovemo?", by=case.assigned_to)
            case_services.add_note(case, "Razgovor obavljen.", by=case.assigned_to)
        if roll < 0.45:
            case_services.change_case_status(case, CaseStatus.RESOLVED, actor=case.assigned_to, reason="upućeno")
        elif roll > 0.9:
            Case.objects.filter(pk=case.pk).update(is_escalated=rng.random() < 0.5,
                                                   acknowledge_by=timezone.now() - timezone.timedelta(minutes=5))
    print(f"{Case.objects.count()} cases ({Case.objects.filter(status__in=['resolved']).count()} resolved); "
          f"supervisor: {supervisor.username}")


def measure(client: Client, url: str, rounds: int) -> tuple[float, float, int]:
    client.get(url)  # warm up (templates, connection)
    times = []
    status = 0
    for _ in range(rounds):
        start = time.perf_counter()
        status = client.get(url).status_code
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), percentile(times, 0.95), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    load_cases(args.cases)

    users = get_user_model().objects
    worker = (
        users.filter(staff_profile__role="worker", assigned_cases__status__in=OPEN_STATUSES)
        .annotate(open_cases=Count("assigned_cases", filter=Q(assigned_cases__status__in=OPEN_STATUSES)))
        .order_by("-open_cases")
        .first()
    )
    supervisor = users.get(username="supervisor")
    case = Case.objects.filter(assigned_to=worker).order_by("-created_at").first()
    anonymous, as_worker, as_supervisor = (Client(HTTP_HOST="localhost") for _ in range(3))
    as_worker.force_login(worker)
    as_supervisor.force_login(supervisor)
    pages = [
        ("login", anonymous, "/console/login/"),
        ("my queue", as_worker, "/console/"),
        ("my queue, live part (htmx)", as_worker, "/console/queue/live/"),
        ("case", as_worker, f"/console/cases/{case.pk}/"),
        ("board", as_supervisor, "/console/board/"),
        ("board, live part (htmx)", as_supervisor, "/console/board/live/"),
        ("roster", as_supervisor, "/console/roster/"),
        ("search: critical and high", as_supervisor, "/console/search/?priority=critical&priority=high"),
        ("search: message text", as_supervisor, "/console/search/?search=dijete"),
    ]
    print(f"\n{'page':32} {'median ms':>10} {'p95 ms':>8}  status  (worker {worker.username} with "
          f"{worker.open_cases} open cases; {args.rounds} rounds)")
    for name, client, url in pages:
        median, p95, status = measure(client, url, args.rounds)
        flag = "" if p95 < 200 else "  <-- over 200 ms"
        print(f"{name:32} {median:10.1f} {p95:8.1f}  {status}{flag}")


if __name__ == "__main__":
    main()
