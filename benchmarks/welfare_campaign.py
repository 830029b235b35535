#!/usr/bin/env python
"""A welfare campaign to 5,000 people on the drill backend: how long until everyone has been asked at the configured
sending rate, and how long from a "2" to its case being triaged and assigned.

The sending time is on a simulated clock (the campaign's own schedule, ticked every 10 s): at one SMS a second it
would otherwise take 83 minutes of waiting. The machinery's real time (scheduling, sends to the drill backend,
replies, triage and assignment) is measured on the wall clock. Runs on a throwaway test database.

    python benchmarks/welfare_campaign.py                      # 5,000 people, SMS_PER_SECOND from the settings
    python benchmarks/welfare_campaign.py --people 1000 --numbers 10   # a Messaging Service with ten numbers
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--numbers", type=int, default=1, help="numbers in the Messaging Service's pool")
    arguments = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpline.project.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    if arguments.numbers > 1:
        settings.WELFARE_MESSAGING_SERVICE_SID = "MG" + "0" * 32
        settings.WELFARE_SENDING_NUMBERS = arguments.numbers
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        return run(arguments.people)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(people: int) -> int:
    from django.utils import timezone

    from helpline.cases.models import Case
    from helpline.casework import actions
    from helpline.welfare import drill
    from tests.factories import ShiftFactory, StaffFactory
    from triage.services import install_default_rules

    install_default_rules()
    now = timezone.now()
    for n in range(6):  # a shift of six workers and a supervisor, enough room for every case
        staff = StaffFactory(phone=f"+3876290{n:04d}", max_open_cases=1000, role="supervisor" if n == 5 else "worker")
        ShiftFactory(staff=staff, starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=24))

    began = time.perf_counter()
    drill.make_drill_register(people)
    register_seconds = time.perf_counter() - began
    outcome = drill.run_drill(areas=[drill.DRILL_AREA], on_case=actions.do_triage_case)
    assigned = Case.objects.filter(pk__in=outcome.case_ids, assigned_to__isnull=False).count()
    timings = sorted(outcome.reply_to_case_seconds)

    print(f"people: {outcome.people}, sending rate: {outcome.rate_per_second:g} SMS/s")
    print(f"estimate at the start, everyone asked after: {outcome.estimate_seconds:.0f} s "
          f"({outcome.estimate_seconds / 60:.1f} min)")
    print(f"simulated clock, last person asked after: {outcome.simulated_seconds_until_all_asked:.0f} s "
          f"({outcome.simulated_seconds_until_all_asked / 60:.1f} min)")
    print(f"wall clock: register {register_seconds:.1f} s, "
          f"campaign with replies and triage {outcome.wall_seconds:.1f} s")
    print(f"replies: {outcome.replies}, cases: {len(set(outcome.case_ids))}, assigned: {assigned}")
    if timings:
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(f"reply to case triaged and assigned: median {statistics.median(timings) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {timings[-1] * 1000:.0f} ms (in-process, no broker hop)")
    print(f"tally: {outcome.columns}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
