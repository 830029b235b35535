#!/usr/bin/env python
"""The web process's CPU per contact, measured in-process: the benchmark's intake mix through the real WSGI stack.

Boots Django with the settings benchmarks/run.py gives gunicorn (DEBUG off, LOG_LEVEL WARNING, the signed Twilio
origin, the Redis broker) against an existing, migrated PostgreSQL database with the demo data, and calls the WSGI
application with each contact of helpline.drill.traffic.Contacts (signed SMS and voice webhooks, API inquiries),
one after the other. Prints the process CPU (time.process_time, publishing threads included) per contact by kind;
--profile adds cProfile's functions by cumulative time. Nothing runs the queued tasks: the broker database is
flushed at the end.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/helpline_x CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \
        .venv/bin/python benchmarks/web_cost.py [--contacts 2000] [--profile [--top 40]]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUTH_TOKEN = "benchmark-auth-token"  # noqa: S105 - signs local test webhooks only
ORIGIN = "http://127.0.0.1:8765"


def configure_environment() -> None:
    """What benchmarks/run.py passes to gunicorn, except the database and broker (the caller's) and the cache
    (local memory unless CACHE_URL says otherwise)."""
    os.environ.setdefault("CACHE_URL", "locmemcache://")
    os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="web-cost-"))
    for name, value in {
        "SECRET_KEY": "benchmark-only", "ALLOWED_HOSTS": "127.0.0.1,localhost", "PUBLIC_BASE_URL": ORIGIN,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": "+38733000111",
        "SMS_BACKEND": "twilio", "SMS_PER_SECOND": "100000", "CALLS_PER_SECOND": "100000",
        "INQUIRY_THROTTLE_RATE": "100000000/minute",
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings", "LOG_LEVEL": "WARNING", "CONN_MAX_AGE": "60",
    }.items():  # fmt: skip
        os.environ[name] = value
    if "DATABASE_URL" not in os.environ or "CELERY_BROKER_URL" not in os.environ:
        raise SystemExit("set DATABASE_URL (migrated, demo data loaded) and CELERY_BROKER_URL")


def wsgi_environ(path: str, body: bytes, headers: dict) -> dict:
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8765", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8765", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }  # fmt: skip
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return environ


def call(application, path: str, body: bytes, headers: dict) -> int:
    status = []

    def start_response(line, response_headers, exc_info=None):
        status.append(int(line.split()[0]))

    result = application(wsgi_environ(path, body, headers), start_response)
    try:
        for _ in result:
            pass
    finally:
        if hasattr(result, "close"):
            result.close()
    return status[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--warm-up", type=int, default=100)
    parser.add_argument("--critical-share", type=float, default=0.03)
    # A new seed each run: new numbers, as in the benchmark's fresh database (an old number finds its open case).
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--profile", action="store_true", help="cProfile the measured contacts")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--profile-out", help="write the raw cProfile data here (for snakeviz and the like)")
    parser.add_argument("--statements", action="store_true",
                        help="count the SQL statements per contact by kind, and print one contact's of each kind")
    args = parser.parse_args()

    configure_environment()
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    from helpline.drill.traffic import Contacts

    contacts = Contacts(
        auth_token=AUTH_TOKEN, signing_base=ORIGIN, critical_share=args.critical_share, seed=args.seed
    )
    # The contacts are made (and signed) before timing: that is the load generator's work, not the web's.
    planned = [contacts.next() for _ in range(args.warm_up + args.contacts)]
    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for kind, path, body, headers, _critical, _key in planned[: args.warm_up]:
        statuses[kind][call(application, path, body, headers)] += 0

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
    statements: list[str] = []
    if args.statements:
        from django.db import connection

        def note(execute, sql, params, many, context):
            statements.append(sql)
            return execute(sql, params, many, context)

        counting = connection.execute_wrapper(note)  # kept: a collected context manager would pop the wrapper
        counting.__enter__()  # for the whole run, on this thread's connection
    counted: dict[str, list[int]] = defaultdict(list)
    shown: dict[str, Counter] = defaultdict(Counter)
    cpu: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    for kind, path, body, headers, _critical, _key in planned[args.warm_up :]:
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        status = call(application, path, body, headers)
        if profiler:
            profiler.disable()
        cpu[kind].append(time.process_time() - cpu_before)
        wall[kind].append(time.perf_counter() - wall_before)
        statuses[kind][status] += 1
        if args.statements:
            counted[kind].append(len(statements))
            shown[kind].update(sql[:110] for sql in statements)
            statements.clear()
    total_cpu, total_wall = time.process_time() - started_cpu, time.perf_counter() - started_wall

    print(f"{args.contacts} contacts after {args.warm_up} to warm up (seed {args.seed}); CPU ms per contact "
          "(process_time):")
    for kind in ("sms", "voice", "web"):
        if cpu[kind]:
            ms = sorted(1000 * s for s in cpu[kind])
            print(f"  {kind:>5}: n {len(ms):4d}  mean {statistics.mean(ms):5.2f}  median {statistics.median(ms):5.2f}  "
                  f"p90 {ms[int(0.9 * len(ms))]:5.2f}  wall mean {1000 * statistics.mean(wall[kind]):5.2f}  "
                  f"statuses {dict(statuses[kind])}")  # fmt: skip
    print(f"  all  : {1000 * total_cpu / args.contacts:.2f} ms CPU, {1000 * total_wall / args.contacts:.2f} ms wall "
          f"per contact (profiler {'on' if profiler else 'off'})")  # fmt: skip
    for kind, counts in counted.items():
        print(f"  {kind:>5}: {statistics.mean(counts):.2f} SQL statements a contact, by statement:")
        for sql, seen in shown[kind].most_common():
            print(f"         {seen / len(counts):5.2f}  {sql}")
    if profiler:
        import pstats

        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    broker = os.environ["CELERY_BROKER_URL"]
    if broker.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker).flushdb()  # the doorbells nobody will answer


if __name__ == "__main__":
    main()
