#!/usr/bin/env python
"""The CPU a worker spends to send one staff alert, measured in-process: each queued notification delivered one
after the other (`outbox.deliver`), as the alerts worker takes them from a long queue in a surge.

Boots Django as benchmarks/worker_cost.py does (an existing, migrated PostgreSQL database with the demo data,
everyone on duty with room), makes cases through the WSGI application and triages them untimed, so each assigned
case has its worker's SMS (and, if critical, a call) queued. Then it delivers every queued notification through
the real twilio client to the local Twilio stub, in a process of its own (benchmarks/twilio_stub_process.py).
Prints CPU (time.process_time) and wall time per send, and statements per send; --profile adds cProfile's
functions. PostgreSQL's and the stub's CPU are not in these figures. --status-callbacks then posts, through the WSGI
application, the status callbacks Twilio would send about them ("sent" and "delivered" for each SMS, "completed" for
each call, signed) and prints the web's CPU and statements per callback.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/helpline_x CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \
        .venv/bin/python benchmarks/send_cost.py [--contacts 500] [--profile [--sort tottime] [--top 40]]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.twilio_stub_process import StubProcess  # noqa: E402
from benchmarks.web_cost import AUTH_TOKEN, ORIGIN, call, configure_environment  # noqa: E402
from benchmarks.worker_cost import (  # noqa: E402
    answer_doorbells,
    cost_of_each,
    everyone_on_duty_with_room_and_rules_only,
    new_cases,
)


def per_each(cpu: float, wall: float, statements: int, count: int, each: str, profiler) -> str:
    n = max(count, 1)
    return (f"CPU {1000 * cpu / n:.2f} ms, wall {1000 * wall / n:.2f} ms, {statements / n:.1f} statements {each}"
            f"{' (profiler on)' if profiler else ''}")  # fmt: skip


def status_callbacks(sent) -> list[tuple[str, bytes, dict]]:
    """What Twilio posts about each of these notifications, in order, signed as Twilio signs: (path, body, headers)."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    callbacks = []
    for notification in sent.order_by("pk"):
        if notification.channel == "voice":
            path = f"/webhooks/twilio/voice/staff-call/status/?n={notification.pk}"
            updates = [{"CallSid": notification.provider_sid, "CallStatus": "completed"}]
        else:
            path = f"/webhooks/twilio/message-status/?n={notification.pk}"
            updates = [{"MessageSid": notification.provider_sid, "MessageStatus": s} for s in ("sent", "delivered")]
        for params in updates:
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": validator.compute_signature(ORIGIN + path, params)}  # fmt: skip
            callbacks.append((path, urlencode(params).encode(), headers))
    return callbacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=500, help="contacts whose alerts are sent")
    parser.add_argument("--critical-share", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--status-callbacks", action="store_true", help="then measure Twilio's status callbacks")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    with StubProcess() as stub:
        os.environ["TWILIO_API_BASE_URL"] = stub.url
        configure_environment()
        from django.core.wsgi import get_wsgi_application

        application = get_wsgi_application()
        from helpline.drill.traffic import Contacts
        from notifications import outbox
        from notifications.models import DeliveryStatus, Notification

        everyone_on_duty_with_room_and_rules_only()
        contacts = Contacts(
            auth_token=AUTH_TOKEN, signing_base=ORIGIN, critical_share=args.critical_share, seed=args.seed
        )
        queued = Notification.objects.filter(status=DeliveryStatus.QUEUED, recipient__isnull=False)
        answer_doorbells(new_cases(application, contacts, 50))
        # Warm up: the database and Twilio connections, and the first compiled queries.
        cost_of_each(outbox.deliver, list(queued.order_by("pk").values_list("pk", flat=True)))

        answer_doorbells(new_cases(application, contacts, args.contacts))
        ids = list(queued.order_by("pk").values_list("pk", flat=True))
        calls = queued.filter(channel="voice").count()
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall, statements = cost_of_each(outbox.deliver, ids, profiler)
        sent = Notification.objects.filter(pk__in=ids, status=DeliveryStatus.SENT).count()
        costs = per_each(cpu, wall, statements, len(ids), "a send", profiler)
        print(f"{len(ids)} staff alerts ({calls} calls) from {args.contacts} contacts (seed {args.seed}), {sent} sent: "
              f"{costs}; the stub got {stub.counts()}")  # fmt: skip
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
        if args.status_callbacks:
            warm_up = status_callbacks(Notification.objects.exclude(pk__in=ids).filter(status=DeliveryStatus.SENT))
            cost_of_each(lambda i: call(application, *warm_up[i]), list(range(len(warm_up))))
            measured = status_callbacks(Notification.objects.filter(pk__in=ids, status=DeliveryStatus.SENT))
            answers: Counter = Counter()
            profiler = cProfile.Profile() if args.profile else None
            cpu, wall, statements = cost_of_each(
                lambda i: answers.update([call(application, *measured[i])]), list(range(len(measured))), profiler
            )
            print(f"{len(measured)} status callbacks, answered {dict(answers)}: "
                  f"{per_each(cpu, wall, statements, len(measured), 'a callback', profiler)}")  # fmt: skip
            if profiler:
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    broker = os.environ["CELERY_BROKER_URL"]
    if broker.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker).flushdb()


if __name__ == "__main__":
    main()
