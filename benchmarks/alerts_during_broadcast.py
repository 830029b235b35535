#!/usr/bin/env python
"""How long a critical case's SMS waits for the number's sending rate while a crisis broadcast, or a welfare
campaign, is going out.

A long code sends about one SMS a second (SMS_PER_SECOND), and a broadcast to a flood's citizens queues hundreds.
This starts the real stack (benchmarks/run.py's: gunicorn, the workers, beat; PostgreSQL, Redis, the twilio client
sending to a local stub) with a low SMS_PER_SECOND, queues a broadcast's SMS and/or starts a welfare campaign from
the helpline's number (`--welfare N` people), then sends critical web inquiries a few seconds apart while they go
out, and prints, for the critical cases' assignment SMS, the wait from the notification written to the SMS handed
to Twilio, and when the broadcast's last SMS and the campaign's last question went.

Twilio sends what a number is given beyond its rate later, in order, from a queue of its own. The stub answers at
once, so the script works that queue out from what the stub was given (every SMS from the helpline's number, at
SMS_PER_SECOND) and prints how long the staff alerts would have waited in it.

    .venv/bin/python benchmarks/alerts_during_broadcast.py                  # 300 SMS at 5 a second, 8 alerts
    .venv/bin/python benchmarks/alerts_during_broadcast.py --broadcast 600 --sms-per-second 10
    .venv/bin/python benchmarks/alerts_during_broadcast.py --broadcast 90 --welfare 90 --sms-per-second 1
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import AUTH_TOKEN, Stack, manage, reset_database, wait_for  # noqa: E402
from benchmarks.twilio_stub_process import StubProcess  # noqa: E402
from helpline.cases.figures import percentile  # noqa: E402

QUEUE_BROADCAST = r"""
from django.db import transaction
from notifications.models import NotificationKind
from notifications.outbox import notifications_written_together, queue_notification
with transaction.atomic(), notifications_written_together():
    for n in range(COUNT):
        queue_notification(key=f"bench-broadcast:{n}", to_number=f"+387619{n:05d}", body="Poplava: punkt u školi.",
                           kind=NotificationKind.CRISIS_BROADCAST)
"""

START_WELFARE = r"""
from helpline.welfare import services
from helpline.welfare.models import VulnerablePerson
VulnerablePerson.objects.bulk_create([
    VulnerablePerson(full_name=f"Osoba {n}", phone=f"+387629{n:05d}", municipality="Benchmark", address="Obala 1",
                     legal_basis="public_task", birth_year=1940)
    for n in range(COUNT)
])
services.start_campaign(title="Poplava", question="Jeste li sigurni?", areas=["Benchmark"], needs=[], by=None,
                        call_after_minutes=60, visit_after_minutes=60)
"""

REPORT = r"""
import json
from notifications.models import Notification
from helpline.welfare.models import WelfareCheck
alerts = Notification.objects.filter(case__priority="critical", channel="sms").exclude(kind="crisis_broadcast")
assignments = alerts.filter(kind="assignment")
broadcast = list(Notification.objects.filter(kind="crisis_broadcast"))
sent = [n.sent_at for n in broadcast if n.sent_at]
asked = [check.asked_at for check in WelfareCheck.objects.filter(provider_sid__isnull=False)]
print(json.dumps({
    "alert_waits": [(row.sent_at - row.created_at).total_seconds() if row.sent_at else None for row in assignments],
    "alert_numbers": sorted({str(row.to_number) for row in alerts}),
    "broadcast_started": min(n.created_at for n in broadcast).timestamp() if broadcast else None,
    "broadcast_last_sent": max(sent).timestamp() if sent else None,
    "broadcast_sent": len(sent),
    "welfare_asked": len(asked),
    "welfare_last_asked": max(asked).timestamp() if asked else None,
}))
"""

CRITICAL_TEXT = "Muž je pijan, ima nož i kaže da će me ubiti večeras. Djeca su sa mnom."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broadcast", type=int, default=300, help="SMS in the broadcast")
    parser.add_argument("--welfare", type=int, default=0, help="people a welfare campaign asks from the helpline's "
                        "number at the same time")
    parser.add_argument("--sms-per-second", type=int, default=5)
    parser.add_argument("--alerts", type=int, default=8, help="critical web inquiries, one every --gap seconds")
    parser.add_argument("--gap", type=float, default=4.0)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/helpline_bench"))  # fmt: skip
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    args = parser.parse_args()
    log_dir = ROOT / "var" / "bench-broadcast"
    log_dir.mkdir(parents=True, exist_ok=True)
    with StubProcess() as stub:
        env = {
            **os.environ, "DATABASE_URL": args.database_url, "CELERY_BROKER_URL": f"{args.redis}/13",
            "CACHE_URL": f"{args.redis}/12", "VAR_DIR": str(log_dir / "var"), "SECRET_KEY": "benchmark-only",
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}",
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": "+38733000111", "SMS_BACKEND": "twilio", "TWILIO_API_BASE_URL": stub.url,
            "SMS_PER_SECOND": str(args.sms_per_second), "CALLS_PER_SECOND": "100",
            "INQUIRY_THROTTLE_RATE": "100000000/minute", "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "LOG_LEVEL": "WARNING", "SEMANTIC_TRIAGE": "false",
        }  # fmt: skip
        reset_database(args.database_url)
        for db in (12, 13):
            subprocess.run(["redis-cli", "-u", f"{args.redis}/{db}", "flushdb"], check=False, capture_output=True)
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "load_demo_data", capture=True)
        stack = Stack(port=args.port, env=env)
        stack.start(log_dir)
        try:
            wait_for(args.port)
            time.sleep(3)  # the workers up
            started = time.time()
            if args.welfare:
                manage(env, "shell", "-c", START_WELFARE.replace("COUNT", str(args.welfare)))
            if args.broadcast:
                manage(env, "shell", "-c", QUEUE_BROADCAST.replace("COUNT", str(args.broadcast)))
            print(f"{args.broadcast} broadcast SMS queued and {args.welfare} welfare questions started at "
                  f"{args.sms_per_second} a second (about {(args.broadcast + args.welfare) / args.sms_per_second:.0f} "
                  "s of sending)")
            time.sleep(2)
            for _ in range(args.alerts):
                connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
                body = json.dumps({"message": CRITICAL_TEXT, "safe_contact": {"text": False}})
                connection.request("POST", "/api/v1/inquiries/", body, {"Content-Type": "application/json"})
                assert connection.getresponse().status in (201, 202), "the inquiry was refused"
                time.sleep(args.gap)
            deadline = time.time() + (args.broadcast + args.welfare) / args.sms_per_second * 3 + 60
            while time.time() < deadline:
                report = json.loads(manage(env, "shell", "-c", REPORT, capture=True))
                if (report["broadcast_sent"] == args.broadcast and report["welfare_asked"] == args.welfare
                        and None not in report["alert_waits"]):
                    break
                time.sleep(2)
        finally:
            stack.stop()
        given = stub.sent()
    waits = sorted(wait for wait in report["alert_waits"] if wait is not None)
    unsent = sum(wait is None for wait in report["alert_waits"])
    print(f"critical cases' assignment SMS, written to handed to Twilio: {len(waits)} sent, {unsent} not; "
          f"p50 {percentile(waits, 0.5):.2f} s, max {max(waits, default=0):.2f} s; each: "
          + ", ".join(f"{wait:.1f}" for wait in waits))
    if report["broadcast_last_sent"]:
        took = report["broadcast_last_sent"] - report["broadcast_started"]
        print(f"broadcast: {report['broadcast_sent']} of {args.broadcast} sent, the last {took:.0f} s after it was "
              "queued")
    if args.welfare:
        took = (report["welfare_last_asked"] or started) - started
        print(f"welfare campaign: {report['welfare_asked']} of {args.welfare} asked, the last {took:.0f} s after "
              "it started")
    queued = twilios_queue_for_the_number(given, env["TWILIO_PHONE_NUMBER"], args.sms_per_second)
    staff = set(report["alert_numbers"])
    in_queue = sorted(wait for to, wait in queued if to in staff)
    print(f"Twilio's queue for the helpline's number at {args.sms_per_second} SMS a second, worked out from the "
          f"{len(queued)} SMS it was given: SMS to the staff alerted about critical cases would wait in it p50 "
          f"{percentile(in_queue, 0.5):.1f} s, at worst {max(in_queue, default=0):.1f} s ({len(in_queue)} alerts); "
          f"anything at worst {max((wait for _, wait in queued), default=0):.1f} s")


def twilios_queue_for_the_number(given: list[dict], number: str, per_second: float) -> list[tuple[str, float]]:
    """(to, seconds waited) for each SMS from `number`: Twilio sends them in the order given, one every
    1/per_second seconds at most."""
    waits, free_at = [], 0.0
    for sms in given:
        if sms["kind"] != "sms" or sms["from"] != number:
            continue
        leaves = max(sms["at"], free_at)
        free_at = leaves + 1 / per_second
        waits.append((sms["to"], leaves - sms["at"]))
    return waits


if __name__ == "__main__":
    main()
