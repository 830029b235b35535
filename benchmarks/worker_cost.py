#!/usr/bin/env python
"""The general worker's CPU per contact for triage and assignment, measured in-process: each case's triage doorbell
answered one after the other (`do_triage_case`), as a worker takes them from a long queue in a surge.

Boots Django as benchmarks/web_cost.py does, against an existing, migrated PostgreSQL database with the demo data,
puts every demo staff member on duty with room for every case (so each contact is triaged, assigned and its worker's
SMS queued: the whole path), and sends the contacts of helpline.drill.traffic.Contacts through the WSGI application
first, untimed. Then it answers their doorbells in order, twice over on fresh contacts: once with each doorbell
triaging its own case only (as before batches), once taking along the new cases waiting behind it
(`actions.TAKEN_ALONG`). Prints CPU (time.process_time) and wall time per contact, and statements per contact.
The semantic model is left out (rules only): its cost is benchmarks/semantic_triage.py's, reported apart.
PostgreSQL's own CPU is not in these figures; the statements are its share's measure. Nothing sends the queued SMS:
the broker database is flushed at the end.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/helpline_x CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \
        .venv/bin/python benchmarks/worker_cost.py [--contacts 1000] [--profile [--sort tottime] [--top 40]]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.web_cost import AUTH_TOKEN, ORIGIN, call, configure_environment  # noqa: E402


def new_cases(application, contacts, count: int) -> list[int]:
    """Send `count` contacts through intake and return the ids of the cases waiting for triage, oldest first."""
    from helpline.cases.models import Case, CaseStatus

    before = set(Case.objects.filter(status=CaseStatus.NEW).values_list("pk", flat=True))
    for _ in range(count):
        _kind, path, body, headers, _critical, _key = contacts.next()
        call(application, path, body, headers)
    waiting = Case.objects.filter(status=CaseStatus.NEW).exclude(pk__in=before).order_by("created_at", "pk")
    return list(waiting.values_list("pk", flat=True))


def everyone_on_duty_with_room_and_rules_only() -> None:
    """Every demo staff member on duty for the next hours with room for every case, and the model left out as if
    it could not load (rules only); its word head still scores each message, as in a running worker's first
    triage."""
    import datetime as dt

    from django.utils import timezone

    from helpline.roster.models import Shift, StaffProfile
    from triage import semantic_model

    now = timezone.now()
    for staff in StaffProfile.objects.all():
        Shift.objects.create(staff=staff, starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=8))
    StaffProfile.objects.update(max_open_cases=1_000_000)
    semantic_model._loaded.update(pid=os.getpid(), model=None, problem="left out by the benchmark")


def answer_doorbells(case_ids: list[int], profiler: cProfile.Profile | None = None) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and statements to answer every case's doorbell in order."""
    from helpline.casework import actions

    return cost_of_each(actions.do_triage_case, case_ids, profiler)


def cost_of_each(
    step: Callable[[int], object], ids: list[int], profiler: cProfile.Profile | None = None
) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and statements to run `step` on each id in order (profiled, if given a profiler)."""
    from django.db import connection

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        if profiler:
            profiler.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        for each in ids:
            step(each)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profiler:
            profiler.disable()
    return cpu, wall, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1000, help="contacts measured in each of the two ways")
    parser.add_argument("--warm-up", type=int, default=50)
    parser.add_argument("--critical-share", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--profile", action="store_true", help="cProfile the taken-along run and print its functions")
    parser.add_argument("--sort", default="cumulative", help="the profile's order: cumulative or tottime")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    configure_environment()
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    from helpline.casework import actions
    from helpline.drill.traffic import Contacts

    everyone_on_duty_with_room_and_rules_only()
    contacts = Contacts(
        auth_token=AUTH_TOKEN, signing_base=ORIGIN, critical_share=args.critical_share, seed=args.seed
    )
    answer_doorbells(new_cases(application, contacts, args.warm_up))

    print(f"{args.contacts} contacts each way (seed {args.seed}), everyone on duty with room, rules only:")
    taken_along = actions.TAKEN_ALONG
    for label, along in (("each doorbell its own case", 0), (f"taking along up to {taken_along}", taken_along)):
        actions.TAKEN_ALONG = along
        case_ids = new_cases(application, contacts, args.contacts)
        profiler = cProfile.Profile() if args.profile and along else None
        cpu, wall, statements = answer_doorbells(case_ids, profiler)
        n = len(case_ids)
        print(f"  {label:>30}: {n} cases, CPU {1000 * cpu / n:5.2f} ms, wall {1000 * wall / n:5.2f} ms, "
              f"{statements / n:5.1f} statements a contact")  # fmt: skip
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    actions.TAKEN_ALONG = taken_along
    broker = os.environ["CELERY_BROKER_URL"]
    if broker.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker).flushdb()  # the SMS and second-look doorbells nobody will answer


if __name__ == "__main__":
    main()
