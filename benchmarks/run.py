#!/usr/bin/env python
"""End-to-end benchmark of the helpline on this machine: the real stack under an open-loop load.

Starts gunicorn, a critical-queue worker, a general worker and beat against PostgreSQL and Redis (a throwaway
database and Redis database of their own), with the real twilio client sending to a local stub. Then:
1. the ceiling: a bare Django REST framework endpoint that inserts one row, driven as hard as it goes, and the
   intake mix driven the same way; intake throughput is printed as a share of the ceiling;
2. an open-loop run: contacts at a fixed arrival rate (signed SMS and voice webhooks, web inquiries, a few per cent
   critical) whatever the responses do; latency counts from the planned send time, so a slow server cannot hide
   its queue (no coordinated omission);
3. drains the backlog and reads the database: intake to assignment and to the notification handed to Twilio
   (critical cases apart), escalation lateness, contacts sent against cases and messages stored (lost and
   duplicated), and the peak memory of each process.

    make bench                                  # 100 contacts a second for 60 s, three runs, and their spread,
                                                # then three with the model turned off (--rules-only)
    .venv/bin/python benchmarks/run.py --surge  # 10,000 contacts within a minute, 3 workers on duty, surge mode on
    .venv/bin/python benchmarks/run.py --surge --no-surge-mode   # the same without surge mode (before)

Issue 18's figures are printed under "issue 18": lost and duplicated contacts, intake p99, critical cases assigned
and their SMS handed to Twilio (p99), staff SMS per person per minute outside critical ladders (and the digests
apart), when the backlog was assigned (everyone at their maximum, the rest waiting), CPU per contact, and the
closed-loop intake throughput as a share of a bare one-row insert measured in the same run.

Issue 18 counts CPU per contact for the rules' triage, the model apart. With the model on, its cost is not only its
own worker's: the critical worker and the general worker read every message a critical rule matched with it before
anyone is called, and the cases it raises to critical bring their ladders' SMS and calls. `--rules-only` runs the
stack with SEMANTIC_TRIAGE=false (the rules alone, no second look): its "CPU per contact" is the rules' pipeline.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.twilio_stub_process import StubProcess  # noqa: E402 - the tests' Twilio stand-in, in its own process
from helpline.cases.figures import percentile  # noqa: E402
from helpline.drill.traffic import Client, Contacts, closed_loop_rate, open_loop  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
BIN = ROOT / ".venv" / "bin"
AUTH_TOKEN = "benchmark-auth-token"  # noqa: S105 - signs local test webhooks only


@dataclass
class Stack:
    port: int
    env: dict
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    report_backend_seconds: float = 0.0  # PostgreSQL CPU of the benchmark's own database reports
    stub_pid: int = 0  # the Twilio stub's process: its CPU is Twilio's, not the pipeline's
    # With --web-apart: "web" runs on these CPUs and the workers and beat on the rest (taskset).
    web_cpus: str = ""

    def start(self, log_dir: Path) -> None:
        commands = {
            "web": [str(BIN / "gunicorn"), "helpline.project.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                    "--workers", "2", "--threads", "8", "--timeout", "30"],
            "critical-worker": [str(BIN / "celery"), "--app", "helpline", "worker", "--queues",
                                "critical,escalation", "--hostname", "critical@%h", "--concurrency", "2",
                                "--loglevel", "WARNING"],
            # The SMS and calls about critical cases, 8 sends waiting on Twilio at once (deploy/supervisord.conf).
            "alerts-worker": [str(BIN / "celery"), "--app", "helpline", "worker", "--queues", "alerts", "--hostname",
                              "alerts@%h", "--pool", "threads", "--concurrency", "8", "--loglevel", "WARNING"],
            # The general worker yields the CPU to intake and the critical worker (nice 10), as in the Procfile:
            # under a surge, answering the citizen and critical cases come first; the rest drains after.
            "worker": ["nice", "-n", "10", str(BIN / "celery"), "--app", "helpline", "worker", "--queues",
                       "critical,alerts,escalation,triage,notifications,retries,default", "--hostname", "worker@%h",
                       "--concurrency", "3", "--loglevel", "WARNING"],
            # The semantic model's second look, niced as the general worker (deploy/supervisord.conf): intake and
            # the critical worker come first. Its CPU is reported apart: the model's cost per message.
            "model-worker": ["nice", "-n", "10", str(BIN / "celery"), "--app", "helpline", "worker", "--queues",
                             "model", "--hostname", "model@%h", "--concurrency", "1", "--loglevel", "WARNING"],
            "beat": [str(BIN / "celery"), "--app", "helpline", "beat", "--loglevel", "WARNING",
                     "--schedule", str(log_dir / "beat-schedule")],
        }  # fmt: skip
        if self.web_cpus:
            every = set(range(os.cpu_count() or 1))
            web = {int(cpu) for cpu in self.web_cpus.split(",")}
            rest = ",".join(str(cpu) for cpu in sorted(every - web)) or self.web_cpus
            commands = {
                name: ["taskset", "-c", self.web_cpus if name == "web" else rest, *command]
                for name, command in commands.items()
            }
        for name, command in commands.items():
            log = open(log_dir / f"{name}.log", "w")  # noqa: SIM115 - kept open for the process's life
            self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)

    def peak_memory_mb(self) -> dict[str, float]:
        """Peak resident memory (VmHWM) of each process and its children (gunicorn workers, Celery pool)."""
        children: dict[int, list[int]] = {}
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
                children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
            except (OSError, KeyError, ValueError):
                continue
        peaks = {}
        for name, process in self.processes.items():
            pids, stack = [], [process.pid]
            while stack:
                pid = stack.pop()
                pids.append(pid)
                stack.extend(children.get(pid, []))
            for pid in pids:
                try:
                    text = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                hwm = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM")), 0)
                label = name if pid == process.pid else f"{name} (child {pid})"
                peaks[label] = hwm / 1024
        return peaks

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each part of the system: our processes (with their children), PostgreSQL,
        Redis, the Twilio stub, and this script (the load generator)."""
        ticks = os.sysconf("SC_CLK_TCK")
        used: dict[str, float] = Counter()
        parents: dict[int, int] = {}
        times: dict[int, float] = {}
        names: dict[int, str] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            pid = int(text.split(" ", 1)[0])
            name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
            # utime and stime, then cutime and cstime: the CPU of children that exited and were waited for. A
            # PostgreSQL backend exits with its connection (CONN_MAX_AGE, a restarted worker); counting only the
            # live ones lost its CPU, and PostgreSQL's share of a surge read as 2 s (once as less than nothing).
            own, reaped = int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])
            parents[pid], times[pid], names[pid] = int(rest[1]), (own + reaped) / ticks, name
        owner = {process.pid: name for name, process in self.processes.items()}
        if self.stub_pid:
            owner[self.stub_pid] = "twilio stub"
        for pid, seconds in times.items():
            ancestor = pid
            while ancestor in parents and ancestor not in owner and ancestor > 1:
                ancestor = parents[ancestor]
            if ancestor in owner:
                used[owner[ancestor]] += seconds
            elif names[pid].startswith("postgres"):
                used["postgresql"] += seconds
            elif names[pid].startswith("redis"):
                used["redis"] += seconds
        used["load generator"] = time.process_time()
        # The database report's own queries (every ~2 s while draining) are this script's, not the pipeline's.
        used["postgresql"] -= self.report_backend_seconds
        return dict(used)

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


DB_REPORT = r"""
import json, sys
from django.db.models import Count, Max
from django.db.models.functions import TruncMinute
from django.utils import timezone
from helpline.drill.marker import contact_figures
from helpline.cases.models import Case, TimelineEvent
from helpline.roster.selectors import on_duty, with_open_case_counts
from notifications.models import Notification
keys = json.load(open(sys.argv[-1]))
cases = Case.objects.filter(created_at__gte=keys["since"])
figures = contact_figures(cases, sids=keys["sids"], references=keys["refs"])
figures.pop("assign_all_at"); figures.pop("assign_critical_at")
staff_sms = Notification.objects.filter(created_at__gte=keys["since"], recipient__isnull=False, channel="sms")
outside = staff_sms.exclude(kind="digest").exclude(case__priority="critical")
per_minute = outside.annotate(minute=TruncMinute("created_at")).values("recipient", "minute").annotate(n=Count("id"))
figures["sms_per_staff_minute_max"] = max((row["n"] for row in per_minute), default=0)
figures["staff_sms_outside_critical"] = outside.count()
figures["staff_sms_critical"] = staff_sms.filter(case__priority="critical").count()
figures["digests"] = staff_sms.filter(kind="digest").count()
pool = list(with_open_case_counts(on_duty(timezone.now())))
figures["on_duty"] = len(pool)
figures["everyone_full"] = bool(pool) and all(p.open_cases >= p.max_open_cases for p in pool)
figures["critical_cases"] = cases.filter(priority="critical").count()
figures["critical_unassigned"] = cases.filter(priority="critical", assigned_to__isnull=True).count()
figures["assigned_cases"] = cases.filter(assigned_to__isnull=False).count()
last_contact = cases.aggregate(at=Max("created_at"))["at"]
last_assigned = TimelineEvent.objects.filter(case__in=cases, kind="assigned").aggregate(at=Max("created_at"))["at"]
figures["last_assignment_after_last_contact"] = (
    (last_assigned - last_contact).total_seconds() if last_contact and last_assigned else None
)
# The cases the rules read as critical (their first triage said so): from the case's creation to that triage.
created = dict(cases.values_list("pk", "created_at"))
first_triage = {}
for case_id, details, at in TimelineEvent.objects.filter(case__in=cases, kind="triaged").order_by("id").values_list(
    "case_id", "details", "created_at"
):
    first_triage.setdefault(case_id, (details.get("priority"), at))
figures["rules_critical_triaged"] = [
    (at - created[case_id]).total_seconds()
    for case_id, (priority, at) in first_triage.items()
    if priority == "critical"
]
figures["triaged_cases"] = len(first_triage)
# This report's own PostgreSQL backend: its CPU is the benchmark's, taken out of PostgreSQL's share.
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    backend = cursor.fetchone()[0]
import os
fields = open(f"/proc/{backend}/stat").read().rsplit(")", 1)[1].split()
figures["report_backend_seconds"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
print(json.dumps(figures))
"""

# Every worker and the supervisor on duty for the run, whatever the hour: the demo rota has one worker at a time,
# so the on-duty count, and with it how much was assigned and how many alerts were sent, depended on when a run
# started (1 or 2 on duty).
ALL_ON_DUTY = (
    "import datetime as dt; from django.utils import timezone; from helpline.roster.models import Shift, StaffProfile; "
    "now = timezone.now(); "
    "[Shift.objects.create(staff=p, starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=8)) "
    "for p in StaffProfile.objects.all()]"
)
SURGE_ON = (
    "from django.contrib.auth.models import User; from notifications import surge; "
    "surge.start_surge(by=User.objects.get(username='supervisor'), name='Benchmark surge')"
)


def manage(env: dict, *args: str, capture: bool = False) -> str:
    if args[:1] == ("shell",):
        # Django 5.2's shell would otherwise list the models it imports (and the ones it could not) on every call.
        args = ("shell", "--no-imports", *args[1:])
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=capture, text=True
    )
    return result.stdout if capture else ""


def reset_database(url: str) -> None:
    import psycopg

    parsed = urllib.parse.urlsplit(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def wait_for(port: int, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz/")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("the web server did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="contacts per second (open loop)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole run and print the spread")
    parser.add_argument("--surge", action="store_true", help="10,000 contacts within a minute, 3 workers on duty")
    parser.add_argument("--surge-contacts", type=int, default=10000, help="with --surge: contacts over --seconds")
    parser.add_argument("--no-surge-mode", action="store_true", help="with --surge: leave surge mode off (before)")
    parser.add_argument("--broker-db", type=int, default=13, help="Redis database for the broker")
    parser.add_argument("--cache-db", type=int, default=12, help="Redis database for the cache")
    parser.add_argument("--critical-share", type=float, default=0.03)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                        "postgres://postgres@127.0.0.1:5432/helpline_bench"))  # fmt: skip
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--status-callbacks", action="store_true",
                        help="the Twilio stub posts signed status callbacks, as Twilio does: sent and delivered for "
                             "each SMS, completed for each call")  # fmt: skip
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="profile web and the workers with py-spy (--gil) from the first contact until the "
                             "backlog settled, one file a process in DIR (DIR/runN with --runs), and print where each "
                             "one's Python CPU went (benchmarks/profile_report.py); py-spy takes CPU of its own, so "
                             "a profiled run's latencies and CPU figures are not for comparison")
    parser.add_argument("--rules-only", action="store_true",
                        help="SEMANTIC_TRIAGE=false: the rules' pipeline alone, as issue 18 counts its CPU")
    parser.add_argument("--web-apart", default="", metavar="CPUS",
                        help="run web on these CPUs (e.g. 0) and the workers on the others (PostgreSQL and Redis "
                             "are not moved)")  # fmt: skip
    args = parser.parse_args()
    if args.surge:
        args.rate = args.surge_contacts / args.seconds
    if args.py_spy and not (BIN / "py-spy").exists():
        raise SystemExit("--py-spy needs py-spy in the virtual environment (requirements-dev.txt: make install)")
    summaries = [run_once(args, run_number) for run_number in range(1, args.runs + 1)]
    if len(summaries) > 1:
        print_spread(summaries)


def run_once(args, run_number: int = 1) -> dict:
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    with StubProcess(call_back_with=AUTH_TOKEN if args.status_callbacks else "") as stub:
        env = {
            **os.environ, "DATABASE_URL": args.database_url, "CELERY_BROKER_URL": f"{args.redis}/{args.broker_db}",
            "CACHE_URL": f"{args.redis}/{args.cache_db}", "VAR_DIR": str(log_dir / "var"),
            "SECRET_KEY": "benchmark-only",
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}",
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": "+38733000111", "SMS_BACKEND": "twilio", "TWILIO_API_BASE_URL": stub.url,
            "SMS_PER_SECOND": "100000", "CALLS_PER_SECOND": "100000", "INQUIRY_THROTTLE_RATE": "100000000/minute",
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "LOG_LEVEL": "WARNING", "CONN_MAX_AGE": "60",
            "SEMANTIC_TRIAGE": "false" if args.rules_only else "true",
        }  # fmt: skip
        print(f"database {args.database_url}, broker {args.redis}/{args.broker_db}; logs in {log_dir}; "
              f"{'the rules alone (SEMANTIC_TRIAGE=false)' if args.rules_only else 'the rules and the model'}")
        reset_database(args.database_url)
        for db in (args.broker_db, args.cache_db):
            subprocess.run(["redis-cli", "-u", f"{args.redis}/{db}", "flushdb"], check=False, capture_output=True)
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "load_demo_data", capture=True)
        # One minute to acknowledge, so the run shows escalation steps and their lateness.
        manage(env, "shell", "-c", "from notifications.models import EscalationPolicy as P; "
                                   "P.objects.update(acknowledge_within_minutes=1)")  # fmt: skip
        manage(env, "shell", "-c", ALL_ON_DUTY)
        if args.surge and not args.no_surge_mode:  # what the supervisor does when the board proposes it
            manage(env, "shell", "-c", SURGE_ON)
        stack = Stack(args.port, env, stub_pid=stub.pid, web_cpus=args.web_apart)
        stack.start(log_dir)
        profilers: list[tuple[str, subprocess.Popen, Path]] = []
        try:
            wait_for(args.port)
            client = Client(f"http://127.0.0.1:{args.port}")
            contacts = Contacts(
                auth_token=AUTH_TOKEN, signing_base=f"http://127.0.0.1:{args.port}", critical_share=args.critical_share
            )
            time.sleep(3)  # workers and beat connect

            def bare() -> tuple[str, bytes, dict]:
                return "/bench/bare-insert/", b"{}", {"Content-Type": "application/json"}

            def intake() -> tuple[str, bytes, dict]:
                _, path, body, headers, _, _ = contacts.next()
                return path, body, headers

            since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            print(f"\nopen loop: {args.rate:.0f} contacts/s for {args.seconds:.0f} s ...")
            profile_dir = args.py_spy / f"run{run_number}" if args.py_spy and args.runs > 1 else args.py_spy
            profilers = start_profilers(stack, profile_dir) if args.py_spy else []
            started, cpu_at_start = time.perf_counter(), stack.cpu_seconds()
            sent = open_loop(client, contacts, args.rate, args.seconds)
            sending_took, cpu_while_sending = time.perf_counter() - started, stack.cpu_seconds()
            keys = {
                "sids": [s.key for s in sent if s.kind in ("sms", "voice") and s.key and s.status == 200],
                "refs": [s.key for s in sent if s.kind == "web" and s.key],
                "since": since,
            }
            keys_file = log_dir / "keys.json"
            keys_file.write_text(json.dumps(keys))
            drain_started = time.perf_counter()
            report = {}
            surge_mode = args.surge and not args.no_surge_mode
            # Two moments: the rules' pipeline settled (every case triaged and assigned as issue 18 counts it),
            # then the model's second look done (every message read, what it raised assigned and alerted).
            settled_in = None
            while time.perf_counter() - drain_started < args.drain_timeout:
                report = _db_report(env, keys_file)
                stack.report_backend_seconds += report["report_backend_seconds"]
                if _settled(report, surge_mode=surge_mode):
                    settled_in = settled_in if settled_in is not None else time.perf_counter() - drain_started
                    if report["awaiting_model"] == 0:
                        break
                time.sleep(2)
            report["model_done_in"] = time.perf_counter() - drain_started if report["awaiting_model"] == 0 else None
            drained_in = settled_in if settled_in is not None else time.perf_counter() - drain_started
            cpu_at_end = stack.cpu_seconds()
            stop_profilers(profilers, print_them=True)
            memory = stack.peak_memory_mb()
            ceiling = closed_loop_rate(client, bare, 10)
            intake_rate = closed_loop_rate(client, intake, 10)
            print_report(args, sent, sending_took, report, drained_in, memory, ceiling, intake_rate, stub.counts())
            print_cpu("CPU while sending", cpu_at_start, cpu_while_sending, sending_took)
            print_cpu("CPU while draining", cpu_while_sending, cpu_at_end, drained_in)
            return print_issue_figures(args, sent, report, drained_in, cpu_at_start, cpu_at_end, ceiling, intake_rate)
        finally:
            stop_profilers(profilers, print_them=False)  # a run that failed midway leaves no py-spy behind
            stack.stop()


def start_profilers(stack: Stack, directory: Path) -> list[tuple[str, subprocess.Popen, Path]]:
    """py-spy on web and each worker (with their children), sampling only the thread that holds the GIL: Python's
    CPU, not its waits. 50 samples a second and --nonblocking, so the processes are never paused. It records until
    `stop_profilers` (SIGINT: py-spy then writes its file), so the profile covers the CPU figures' window. Each
    process's file, and py-spy's own log beside it, replace those of an earlier run in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    profilers = []
    for name, process in stack.processes.items():
        if name == "beat":
            continue
        profile, log = directory / f"{name}.txt", directory / f"{name}.py-spy.log"
        profile.unlink(missing_ok=True)  # never a profile of an earlier run printed as this one's
        command = [str(BIN / "py-spy"), "record", "--pid", str(process.pid), "--subprocesses", "--gil",
                   "--nonblocking", "--rate", "50", "--format", "raw", "-o", str(profile)]  # fmt: skip
        with open(log, "w") as output:
            profilers.append((name, subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT), profile))
    return profilers


def stop_profilers(profilers: list[tuple[str, subprocess.Popen, Path]], *, print_them: bool) -> None:
    from benchmarks.profile_report import report

    for _, profiler, _ in profilers:
        if profiler.poll() is None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT (on SIGTERM it writes nothing)
    for name, profiler, profile in profilers:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()
            profiler.wait()
        if not print_them:
            continue
        if profile.exists():
            print("\n".join(report(profile, top=15)))
        else:
            print(f"{name}: py-spy wrote no profile (exit {profiler.returncode}; {profile.with_suffix('.py-spy.log')})")


def _settled(report: dict, *, surge_mode: bool) -> bool:
    """Everything triaged; every case assigned, or everyone on duty at their maximum with only cases that are not
    critical waiting; every critical case's SMS handed to Twilio, and outside surge mode every assigned case's."""
    if report["untriaged"]:
        return False
    if report["unassigned"] and not (report["everyone_full"] and report["critical_unassigned"] == 0):
        return False
    if len(report["notify_critical"]) < report["critical_cases"]:
        return False
    return surge_mode or len(report["notify_all"]) >= report["assigned_cases"]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p99(values: list[float]) -> float:
    return percentile(values, 0.99) if values else float("nan")


def print_issue_figures(args, sent, report, drained_in, cpu_before, cpu_after, ceiling, intake_rate) -> dict:
    """The figures issue 18 asks for, in one block."""
    ok = [s for s in sent if 200 <= s.status < 300]
    intake_p99 = percentile([s.latency_ms for s in ok], 0.99)
    unassigned = [float("inf")] * max(report["critical_cases"] - len(report["assign_critical"]), 0)
    critical_assign = percentile(report["assign_critical"] + unassigned, 0.99) if report["critical_cases"] else 0.0
    missing = max(report["critical_cases"] - len(report["notify_critical"]), 0)
    handed = report["notify_critical"] + [float("inf")] * missing  # not handed yet: later than any measured
    critical_sms = percentile(handed, 0.99) if handed else float("nan")
    used = {name: cpu_after.get(name, 0) - cpu_before.get(name, 0) for name in cpu_after}
    # The model's worker apart, as issue 18 asks: its cost is the model's, the rest is the pipeline's.
    not_the_pipeline = ("load generator", "twilio stub", "model-worker")
    pipeline = sum(seconds for name, seconds in used.items() if not name.startswith(not_the_pipeline))
    cpu_per_contact_ms = 1000 * pipeline / max(len(ok), 1)
    model_ms = 1000 * used.get("model-worker", 0.0) / max(len(ok), 1)
    last = report["last_assignment_after_last_contact"]
    print(f"\nissue 18{' (the rules alone: SEMANTIC_TRIAGE=false)' if args.rules_only else ''}:")
    print(f"  contacts {len(sent)} at {args.rate:.0f}/s for {args.seconds:.0f} s, {report['on_duty']} on duty: "
          f"lost {report['lost']}, duplicated {report['duplicated']}")  # fmt: skip
    print(f"  intake p99 {intake_p99:.0f} ms; critical ({report['critical_cases']}): assigned p99 "
          f"{critical_assign:.2f} s, SMS handed to Twilio p99 {critical_sms:.2f} s "
          f"({len(report['notify_critical'])} handed by the end; any not handed count as later than all)")  # fmt: skip
    # The stub has no sending rate and the stack is given none: a real long code sends about one SMS a second.
    needed = report["staff_sms_critical"] / max(args.seconds, 1)
    print(f"  (no sending rate applied: the staff SMS about critical cases, first alerts and ladders, were "
          f"{needed:.1f} a second over the sending's {args.seconds:.0f} s; a long code sends about 1, so these figures "
          "need STAFF_ALERT_SENDER to be a Messaging Service of that many numbers)")  # fmt: skip
    print(f"  staff SMS outside critical ladders: {report['staff_sms_outside_critical']} in all, at most "
          f"{report['sms_per_staff_minute_max']} per person in any minute; digests {report['digests']}; "
          f"critical-ladder SMS {report['staff_sms_critical']}")  # fmt: skip
    print(f"  backlog settled {drained_in:.0f} s after the last contact was sent (polled every ~3 s); last assignment "
          f"{last if last is None else round(last, 1)} s after the last contact; assigned {report['assigned_cases']}, "
          f"waiting {report['unassigned']} (critical {report['critical_unassigned']}), everyone on duty at their "
          f"maximum: {report['everyone_full']}")  # fmt: skip
    print(f"  CPU per contact {cpu_per_contact_ms:.1f} ms (web, workers, beat, PostgreSQL, Redis; sending and "
          f"draining; the model's worker apart); closed-loop intake {intake_rate / ceiling:.2f} of the bare insert")
    # Where the drain stops before everything is triaged, the figure above divides by contacts not yet worked on.
    rules_critical, triaged = report["rules_critical_triaged"], report["triaged_cases"]
    rules_sms = report["notify_rules_critical"]
    worker_ms = 1000 * used.get("worker", 0.0) / max(triaged, 1)
    print(f"  the general worker: {worker_ms:.1f} ms CPU per contact it triaged ({triaged} triaged); the rules' "
          f"critical cases ({len(rules_critical)}) triaged p50 {_median(rules_critical):.2f} s, p99 "
          f"{_p99(rules_critical):.2f} s after intake, their SMS handed to Twilio p50 {_median(rules_sms):.2f} s, "
          f"p99 {_p99(rules_sms):.2f} s")  # fmt: skip
    model_done = report.get("model_done_in")
    model_sms = report["notify_model_critical"]
    if args.rules_only:
        print("  the model: turned off (SEMANTIC_TRIAGE=false); its worker runs and finds nothing to read")
    else:
        read = "not within the drain limit" if model_done is None else f"{model_done:.0f} s after the last contact"
        print(f"  the model's second look (its own worker, nice 10): {model_ms:.1f} ms CPU per contact; read "
              f"everything {read}; made {report['model_critical']} critical that the rules had not, their SMS "
              f"handed to Twilio p50 {_median(model_sms):.1f} s, p99 {_p99(model_sms):.1f} s")  # fmt: skip
    return {"intake_p99_ms": intake_p99, "critical_assigned_p99_s": critical_assign,
            "critical_sms_p99_s": critical_sms, "rules_critical_sms_p99_s": _p99(rules_sms),
            "cpu_per_contact_ms": cpu_per_contact_ms,
            "throughput_share": intake_rate / ceiling, "lost": report["lost"], "model_cpu_ms": model_ms,
            "duplicated": report["duplicated"]}  # fmt: skip


def print_spread(summaries: list[dict]) -> None:
    print(f"\nspread over {len(summaries)} runs (min / median / max):")
    for key in summaries[0]:
        values = sorted(summary[key] for summary in summaries)
        print(f"  {key}: {values[0]:.3g} / {statistics.median(values):.3g} / {values[-1]:.3g}")


def _db_report(env: dict, keys_file: Path, *, tries: int = 3) -> dict:
    script = DB_REPORT.replace("sys.argv[-1]", repr(str(keys_file)))
    for attempt in range(tries):
        try:
            return json.loads(manage(env, "shell", "-c", script, capture=True).strip().splitlines()[-1])
        except subprocess.CalledProcessError as failed:  # a busy box: say why, and ask again
            print(f"the database report failed ({failed.stderr.strip().splitlines()[-1:]}); asking again")
            if attempt == tries - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def print_report(args, sent, sending_took, report, drained_in, memory, ceiling, intake_rate, sent_to_twilio) -> None:
    ok = [s for s in sent if 200 <= s.status < 300]
    latencies = [s.latency_ms for s in ok]
    print(f"offered {args.rate:.0f}/s, achieved {len(ok) / sending_took:.1f}/s "
          f"({len(ok)} of {len(sent)} answered 2xx; statuses {dict(Counter(s.status for s in sent))})")  # fmt: skip
    print(f"intake latency ms: median {statistics.median(latencies):.1f}, p95 {percentile(latencies, 0.95):.1f}, "
          f"p99 {percentile(latencies, 0.99):.1f}, max {max(latencies):.1f}")  # fmt: skip
    for label in ("all", "critical"):
        assign, notify = report[f"assign_{label}"], report[f"notify_{label}"]
        if assign:
            notify_median = statistics.median(notify) if notify else float("nan")
            print(f"{label:>8}: intake->assigned s: median {statistics.median(assign):.2f}, "
                  f"p99 {percentile(assign, 0.99):.2f} | intake->SMS handed to Twilio s: median {notify_median:.2f}, "
                  f"p99 {percentile(notify, 0.99):.2f} ({len(assign)} cases)")  # fmt: skip
    lateness = report["escalation_lateness"]
    if lateness:
        print(f"escalation lateness s: median {statistics.median(lateness):.2f}, p99 {percentile(lateness, 0.99):.2f}, "
              f"max {max(lateness):.2f} ({len(lateness)} steps)")  # fmt: skip
    print(f"backlog drained {drained_in:.1f} s after the last contact; cases {report['cases']}, lost {report['lost']}, "
          f"duplicated {report['duplicated']}, untriaged {report['untriaged']}, unassigned {report['unassigned']}; "
          f"Twilio stub got {sent_to_twilio['sms']} SMS and {sent_to_twilio['calls']} calls; status callbacks it "
          f"posted, by our answer: {sent_to_twilio['callbacks'] or 'none'}")  # fmt: skip
    print("peak memory (MB): " + ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(memory.items())))
    print(f"ceiling (bare DRF insert, 32 senders): {ceiling:.0f}/s; intake mix the same way: {intake_rate:.0f}/s "
          f"= {intake_rate / ceiling:.2f} of the ceiling")  # fmt: skip


def print_cpu(title: str, before: dict[str, float], after: dict[str, float], wall_seconds: float) -> None:
    """Where the CPU went: seconds per part, and as a share of both cores over the period."""
    cores = os.cpu_count() or 1
    used = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]))
    busy = sum(used.values()) / (cores * wall_seconds)
    print(f"{title} ({wall_seconds:.0f} s, {cores} cores, {busy:.0%} busy): {parts}")


if __name__ == "__main__":
    main()
