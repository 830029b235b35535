#!/usr/bin/env python
"""Fault injection against the real stack: what each fault costs in contacts and staff alerts.

Starts gunicorn, a critical-queue worker, an alerts sender, a general worker and beat (benchmarks/run.py's Stack)
against a PostgreSQL cluster and Redis servers of its own (a throwaway cluster made with initdb on a free port in a
temporary directory, and two `redis-server`s on other free ports, one the broker and one the cache, so that the cache
can fail alone: the shared ones on 5432 and 6379 are never touched),
with the real twilio client sending to a local stub. Then runs each scenario and prints, per scenario: contacts
sent, answered 2xx, stored, triaged, assigned, notified, duplicates of each, intake latency during the fault
(median and p99) and the time until everything sent was stored, triaged, assigned and notified again.

    make faults                                   # every scenario, about 18 minutes
    .venv/bin/python benchmarks/faults.py --only redis-frozen,pg-stopped

Everything listens on 127.0.0.1; every loop is bounded; the stack and the servers are stopped at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import AUTH_TOKEN, Stack, manage, wait_for  # noqa: E402
from helpline.cases.figures import percentile  # noqa: E402
from tests.twilio_stub import TwilioStub  # noqa: E402

HELPLINE_NUMBER = "+38733000111"
CALM = "Treba nam pomoć oko ogrjeva za zimu, mama je bolesna i nema drva."
CRITICAL = "Muž mi prijeti nožem, ubit će me, pomozite odmah."
REQUEST_TIMEOUT = 20.0  # Twilio gives a webhook 15 s; a little longer shows how late the answers were
SETTLE_LIMIT = 240.0  # seconds to wait after a fault for everything to be stored, triaged, assigned and notified


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Servers of our own, to stop and freeze -------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise SystemExit(f"{name} not found under /usr/lib/postgresql/*/bin")
    return str(found[-1])


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory on a free port, trusting local connections."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "pgdata"
        self.port = free_port()
        self.log = directory / "postgresql.log"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(directory, "postgres")

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_postgres, *command], check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        self._run(_pg_bin("initdb"), "-D", str(self.directory), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.directory), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(_pg_bin("pg_ctl"), "-D", str(self.directory), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/helpline_faults"

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE helpline_faults")


class ThrowawayRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", "--dir", str(self.directory), "--protected-mode", "yes"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.1)
        raise SystemExit("redis-server did not start")

    def signal(self, number: int) -> None:
        if self.process is not None:
            self.process.send_signal(number)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


# --- The processes of the stack ------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
        except (OSError, KeyError, ValueError):
            continue
    found, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def kill_process_tree(stack: Stack, name: str) -> None:
    """SIGKILL a process and its children (a Celery worker and its pool), as the OOM killer or a crash would."""
    process = stack.processes[name]
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def restart(stack: Stack, name: str, log_dir: Path) -> None:
    """Start a process again with the same command (the suite plays the supervisor a deployment has)."""
    old = stack.processes[name]
    if old.poll() is None:
        return
    log = open(log_dir / f"{name}.log", "a")  # noqa: SIM115 - kept open for the process's life
    stack.processes[name] = subprocess.Popen(old.args, cwd=ROOT, env=stack.env, stdout=log, stderr=log)


def restart_dead(stack: Stack, log_dir: Path) -> list[str]:
    dead = [name for name, process in stack.processes.items() if process.poll() is not None]
    for name in dead:
        restart(stack, name, log_dir)
    return dead


# --- Contacts ------------------------------------------------------------------------------------------------


@dataclass
class Contact:
    kind: str  # sms, voice, web
    key: str  # MessageSid, CallSid, or the token written into a web inquiry's text
    path: str
    body: bytes
    headers: dict
    sent_at: float = 0.0
    latency_ms: float = 0.0
    status: int = 0
    answer: bytes = b""


class Contacts:
    def __init__(self, base: str) -> None:
        from twilio.request_validator import RequestValidator

        self.base = base
        self.validator = RequestValidator(AUTH_TOKEN)
        self.numbers = iter(range(1_000_000, 9_999_999))

    def number(self) -> str:
        return f"+387644{next(self.numbers) % 1_000_000:06d}"

    def _signed(self, path: str, params: dict) -> tuple[bytes, dict]:
        signature = self.validator.compute_signature(self.base + path, params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        return urllib.parse.urlencode(params).encode(), headers

    def sms(self, number: str | None = None, *, critical: bool = False) -> Contact:
        sid = "SM" + uuid.uuid4().hex
        params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": number or self.number(),
                  "To": HELPLINE_NUMBER, "Body": CRITICAL if critical else CALM, "NumMedia": "0"}  # fmt: skip
        return Contact("sms", sid, "/webhooks/twilio/sms/", *self._signed("/webhooks/twilio/sms/", params))

    def voice(self) -> Contact:
        sid = "CA" + uuid.uuid4().hex
        params = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": self.number(), "To": HELPLINE_NUMBER,
                  "CallStatus": "ringing"}  # fmt: skip
        return Contact("voice", sid, "/webhooks/twilio/voice/", *self._signed("/webhooks/twilio/voice/", params))

    def web(self, *, critical: bool = False) -> Contact:
        token = f"f{uuid.uuid4().hex[:12]}"
        text = f"{CRITICAL if critical else CALM} ({token})"
        body = json.dumps({"message": text, "safe_contact": {"text": False}}).encode()
        return Contact("web", token, "/api/v1/inquiries/", body, {"Content-Type": "application/json"})

    def mix(self, n: int, *, critical_every: int = 10) -> Contact:
        """60 % SMS, 15 % calls, 25 % web inquiries; every tenth SMS or inquiry critical."""
        roll, critical = n % 20, n % critical_every == 0
        if roll < 12:
            return self.sms(critical=critical)
        if roll < 15:
            return self.voice()
        return self.web(critical=critical)


def post(port: int, contact: Contact) -> Contact:
    """One request on a fresh connection, no retry: Twilio does not retry an SMS webhook either."""
    contact.sent_at = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("POST", contact.path, body=contact.body, headers=contact.headers)
        response = connection.getresponse()
        contact.status, contact.answer = response.status, response.read()
    except (http.client.HTTPException, OSError):
        contact.status = 0
    finally:
        connection.close()
    contact.latency_ms = (time.perf_counter() - contact.sent_at) * 1000
    return contact


def send_at_rate(port: int, make: Callable[[int], Contact], rate: float, seconds: float) -> list[Contact]:
    """Open loop: contacts at planned times whatever the answers do (each on its own thread)."""
    threads, sent, lock = [], [], threading.Lock()
    start = time.perf_counter()

    def one(contact: Contact) -> None:
        post(port, contact)
        with lock:
            sent.append(contact)

    for n in range(int(rate * seconds)):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one, args=(make(n),), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(REQUEST_TIMEOUT + 5)
    return sent


def send_together(port: int, contacts: list[Contact], gaps: list[float]) -> list[Contact]:
    """Each contact on its own thread, released at its gap (seconds) after a common start."""
    barrier = threading.Barrier(len(contacts))

    def one(contact: Contact, gap: float) -> None:
        barrier.wait()
        if gap:
            time.sleep(gap)
        post(port, contact)

    threads = [threading.Thread(target=one, args=pair, daemon=True) for pair in zip(contacts, gaps, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT + 5)
    return contacts


# --- Reading the outcome from the database --------------------------------------------------------------------

DB_REPORT = r"""
import json
from collections import Counter, defaultdict
from helpline.cases.models import Case, EventKind, Message, TimelineEvent
from notifications.models import Notification
keys = json.load(open(KEYS_FILE))
sids, tokens = keys["sids"], keys["tokens"]
stored = set(Message.objects.filter(twilio_sid__in=sids).values_list("twilio_sid", flat=True))
case_ids = set(Message.objects.filter(twilio_sid__in=sids).values_list("case_id", flat=True))
# Message texts are encrypted, so the database cannot look for a token in them: read this run's and look here.
recent = list(Message.objects.filter(created_at__gte=keys["since"]).values_list("case_id", "body"))
token_copies = {}
for token in tokens:
    found = [case_id for case_id, body in recent if f"({token})" in body]
    token_copies[token] = len(found)
    case_ids.update(found)
cases = Case.objects.filter(pk__in=case_ids)
events = TimelineEvent.objects.filter(case__in=cases)


def assignments_by_case():
    steps = defaultdict(list)
    for case_id, details in events.filter(kind=EventKind.ASSIGNED).order_by("created_at", "pk").values_list(
        "case_id", "details"
    ):
        steps[case_id].append((details.get("previous"), details.get("assignee")))
    return steps


def assigned_twice(steps):
    first_times = sum(1 for previous, _ in steps if previous is None)
    same_again = any(a[1] == b[1] for a, b in zip(steps, steps[1:]))
    return first_times > 1 or same_again


staff = Notification.objects.filter(created_at__gte=keys["since"], is_drill=False)
sent = ("sent", "delivered", "undelivered")
waiting = ("new", "triaged", "assigned")
print(json.dumps({
    "stored": len(stored) + sum(1 for n in token_copies.values() if n),
    "stored_twice": sum(1 for n in token_copies.values() if n > 1),
    "cases": cases.count(),
    "triaged": cases.filter(triaged_at__isnull=False).count(),
    # A follow-up message is triaged again by design, and so is every message by the model's second look; the same
    # messages triaged twice by the same step is a duplicate.
    "triaged_twice": len({key[0] for key, n in Counter(
        (event.case_id, event.details.get("up_to_message_id"), bool(event.details.get("second_look")))
        for event in events.filter(kind=EventKind.TRIAGED)
    ).items() if n > 1}),
    "assigned": cases.filter(assigned_to__isnull=False).count(),
    # A case handed on to a colleague (its holder's shift ended before they took it, say) is assigned again by
    # design; the same case given a first time twice, or to the same person twice running, is a duplicate.
    "assigned_twice": sum(1 for steps in assignments_by_case().values() if assigned_twice(steps)),
    "notified": cases.filter(notifications__kind="assignment", notifications__status__in=sent).distinct().count(),
    "notifications": [
        [n.pk, n.channel, str(n.to_number), n.body, n.status, n.kind, n.idempotency_key[:20]] for n in staff
    ],
    "failed_while_waiting": staff.filter(
        status="failed", kind__in=("assignment", "reminder", "escalation"), case__status__in=waiting
    ).count(),
    "stuck_sending": staff.filter(status="sending").count(),
    # SMS whose webhook answered too late for Twilio (or never): their citizens' receipts, sent since by SMS.
    "late_receipts": Notification.objects.filter(
        idempotency_key__in=[f"recovered-reply:{sid}" for sid in keys["late_sids"]], status__in=sent
    ).count(),
    "settled_by_callback": staff.filter(
        delivery_attempts__result="sent", delivery_attempts__detail__startswith="status callback for "
    ).distinct().count(),
}))
"""


@dataclass
class Outcome:
    name: str
    note: str
    contacts: list[Contact]
    report: dict = field(default_factory=dict)
    fault_window: tuple[float, float] = (0.0, 0.0)
    recovered_in: float | None = None
    notifications_sent_twice: int = 0
    extra: str = ""


TWILIO_WAITS_MS = 15_000  # how long Twilio waits for a webhook's answer before it gives up and drops it


def late_sms(contacts: list[Contact]) -> set[str]:
    """The SMS whose webhook gave Twilio no answer within its 15 s (Twilio then drops the receipt)."""
    return {c.key for c in contacts if c.kind == "sms" and (c.status == 0 or c.latency_ms > TWILIO_WAITS_MS)}


class Suite:
    def __init__(self, stack: Stack, stub: TwilioStub, log_dir: Path, port: int) -> None:
        self.stack, self.stub, self.log_dir, self.port = stack, stub, log_dir, port
        self.contacts = Contacts(f"http://127.0.0.1:{port}")

    def db_report(self, contacts: list[Contact], since: str) -> dict:
        keys = {
            "sids": [c.key for c in contacts if c.kind in ("sms", "voice")],
            "tokens": [c.key for c in contacts if c.kind == "web"],
            "since": since,
            "late_sids": sorted(late_sms(contacts)),
        }
        keys_file = self.log_dir / "fault-keys.json"
        keys_file.write_text(json.dumps(keys))
        script = DB_REPORT.replace("KEYS_FILE", repr(str(keys_file)))
        for _ in range(3):
            try:
                output = manage(self.stack.env, "shell", "-c", script, capture=True)
                return json.loads(output.strip().splitlines()[-1])
            except (subprocess.CalledProcessError, json.JSONDecodeError, IndexError):
                time.sleep(2)
        return {}

    def sends_per_notification(self, notifications: list[list]) -> Counter:
        """How many times the stub accepted each notification: an SMS by its number and text (the text carries
        the notification's one-time code), a call by the notification id in its TwiML URL."""
        by_text = Counter((m["to"], m["body"]) for m in self.stub.accepted_messages())
        by_call = Counter(
            urllib.parse.parse_qs(urllib.parse.urlsplit(c["url"] or "").query).get("notification", [""])[0]
            for c in self.stub.accepted_calls()
        )
        counts = Counter()
        for pk, channel, to, body, *_ in notifications:
            counts[pk] = by_call.get(str(pk), 0) if channel == "voice" else by_text.get((to, body), 0)
        return counts

    def settle(self, outcome: Outcome, since: str, started: float, *, until: Callable[[dict], bool] | None = None):
        """Poll until everything answered or stored is stored, triaged, assigned and notified (or the limit)."""
        deadline = started + SETTLE_LIMIT
        while True:
            restart_dead(self.stack, self.log_dir)
            report = self.db_report(outcome.contacts, since)
            answered = len({c.key for c in outcome.contacts if 200 <= c.status < 300})
            done = bool(report) and (
                report["stored"] >= answered
                and report["triaged"] == report["assigned"] == report["notified"] == report["cases"]
                and report["stuck_sending"] == 0
                and (until is None or until(report))
            )
            if done or time.perf_counter() > deadline:
                outcome.report = report
                outcome.recovered_in = time.perf_counter() - started if done else None
                break
            time.sleep(2)
        counts = self.sends_per_notification(outcome.report.get("notifications", []))
        outcome.notifications_sent_twice = sum(1 for n in counts.values() if n > 1)
        return outcome

    def now_iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 1))

    # --- The scenarios ---

    def two_quick_sms(self, rounds: int = 30) -> Outcome:
        since, contacts = self.now_iso(), []
        for _ in range(rounds):
            number = self.contacts.number()
            contacts += send_together(self.port, [self.contacts.sms(number), self.contacts.sms(number)], [0, 0.025])
            time.sleep(0.2)
        outcome = Outcome("same caller twice 25 ms apart", f"x{rounds} pairs, new number each", contacts)
        return self.settle(outcome, since, time.perf_counter())

    def five_copies(self, rounds: int = 35) -> Outcome:
        since, contacts, differing = self.now_iso(), [], 0
        for n in range(rounds):
            original = self.contacts.sms() if n % 2 == 0 else self.contacts.voice()
            copies = [Contact(original.kind, original.key, original.path, original.body, original.headers)
                      for _ in range(5)]  # fmt: skip
            send_together(self.port, copies, [0] * 5)
            differing += len({(c.status, c.answer) for c in copies}) > 1
            contacts += copies
            time.sleep(0.2)
        outcome = Outcome("same webhook 5 copies at once", f"x{rounds} (SMS and calls)", contacts)
        outcome.extra = f"rounds with differing answers: {differing}"
        self.settle(outcome, since, time.perf_counter())
        # Five copies of one contact are one contact: stored once each is the goal.
        outcome.report["stored"] = outcome.report.get("stored", 0)
        return outcome

    def _under_fault(self, name: str, note: str, start_fault, end_fault, fault_seconds: float, rate: float = 5.0):
        """Load before, during and after a fault; the fault starts 3 s into the load and lasts fault_seconds."""
        since = self.now_iso()
        timer = {}

        def fault() -> None:
            time.sleep(3)
            timer["start"] = time.perf_counter()
            start_fault()
            time.sleep(fault_seconds)
            end_fault()
            timer["end"] = time.perf_counter()

        thread = threading.Thread(target=fault, daemon=True)
        thread.start()
        contacts = send_at_rate(self.port, self.contacts.mix, rate, fault_seconds + 8)
        thread.join(fault_seconds + 30)
        outcome = Outcome(name, note, contacts, fault_window=(timer["start"], timer["end"]))
        return self.settle(outcome, since, timer["end"])

    # docker-compose.yml keeps the broker and the cache in one Redis: when it freezes or dies, both go.
    def redis_frozen(self, servers: list[ThrowawayRedis], seconds: float) -> Outcome:
        what = "Redis frozen (SIGSTOP)" if len(servers) > 1 else "cache frozen (SIGSTOP), broker up"
        return self._under_fault(
            what, f"{seconds:.0f} s, 5 contacts/s", lambda: [r.signal(signal.SIGSTOP) for r in servers],
            lambda: [r.signal(signal.SIGCONT) for r in servers], seconds,
        )  # fmt: skip

    def redis_killed(self, servers: list[ThrowawayRedis], seconds: float) -> Outcome:
        what = "Redis killed" if len(servers) > 1 else "cache killed, broker up"
        return self._under_fault(
            what, f"down {seconds:.0f} s then restarted empty, 5 contacts/s", lambda: [r.kill() for r in servers],
            lambda: [r.start() for r in servers], seconds,
        )  # fmt: skip

    def postgres_stopped(self, postgres: ThrowawayPostgres, seconds: float) -> Outcome:
        return self._under_fault(
            "PostgreSQL stopped", f"{seconds:.0f} s, 5 contacts/s", postgres.stop, postgres.start, seconds
        )

    def logged_at_twilio(self, n: int) -> Contact:
        """The n-th contact of the mix; an SMS or call is first listed at the stub, as Twilio logs a contact before
        it calls our webhook."""
        contact = self.contacts.mix(n)
        if contact.kind in ("sms", "voice"):
            params = dict(urllib.parse.parse_qsl(contact.body.decode()))
            kind, status = ("sms", "received") if contact.kind == "sms" else ("call", "completed")
            self.stub.inbound(kind, from_=params["From"], to=HELPLINE_NUMBER, body=params.get("Body", ""),
                              status=status, sid=contact.key)  # fmt: skip
        return contact

    def web_killed(self, seconds: float) -> Outcome:
        """gunicorn SIGKILLed and kept down, then started again. Twilio keeps taking the SMS and calls meanwhile
        and lists them in its log (the stub is told of each before its webhook is posted, as Twilio logs a contact
        before it calls us); the web form's citizens see an error. Everything Twilio took must be stored once the
        worker reads its log (helpline/intake/recovery.py: contacts older than two minutes, looked for every
        minute), so this one settles minutes after the fault, not seconds."""
        since = self.now_iso()
        timer = {}

        def fault() -> None:
            time.sleep(3)
            timer["start"] = time.perf_counter()
            kill_process_tree(self.stack, "web")
            time.sleep(seconds)
            restart(self.stack, "web", self.log_dir)
            wait_for(self.port)
            timer["end"] = time.perf_counter()

        thread = threading.Thread(target=fault, daemon=True)
        thread.start()
        contacts = send_at_rate(self.port, self.logged_at_twilio, 5.0, seconds + 8)
        thread.join(seconds + 60)
        outcome = Outcome("web killed", f"down {seconds:.0f} s then restarted, 5 contacts/s; SMS and calls in "
                          "Twilio's log", contacts, fault_window=(timer["start"], timer["end"]))  # fmt: skip
        twilio_took = len({c.key for c in contacts if c.kind in ("sms", "voice")})
        answered_web = len({c.key for c in contacts if c.kind == "web" and 200 <= c.status < 300})
        failed = sum(1 for c in contacts if not 200 <= c.status < 300)
        outcome.extra = (f"{twilio_took} SMS and calls Twilio took, {failed} webhooks and form posts not answered "
                         "(the form's citizens saw an error)")  # fmt: skip
        return self.settle(outcome, since, timer["end"], until=lambda r: r["stored"] >= twilio_took + answered_web)

    def web_frozen(self, seconds: float) -> Outcome:
        """gunicorn and its workers SIGSTOPped (a host swapping, a stop-the-world pause), then SIGCONTinued: the
        requests wait in the listen queue, and those that waited longer than Twilio's 15 s are answered too late.
        Twilio lists every SMS and call (as in web_killed) and, for each SMS its webhook did not answer in time,
        an error alert in its debugger (the stub is told after the answer came late or never). Everything must be
        stored once, and each of those citizens must get the receipt Twilio dropped, by SMS
        (helpline/intake/recovery.py)."""
        since = self.now_iso()
        timer = {}

        def web_processes() -> list[int]:
            web = self.stack.processes["web"].pid
            return [web, *descendants(web)]

        def fault() -> None:
            time.sleep(3)
            timer["start"] = time.perf_counter()
            frozen = web_processes()
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            time.sleep(seconds)
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            timer["end"] = time.perf_counter()

        thread = threading.Thread(target=fault, daemon=True)
        thread.start()
        contacts = send_at_rate(self.port, self.logged_at_twilio, 5.0, seconds + 8)
        thread.join(seconds + 60)
        late = late_sms(contacts)
        for sid in late:
            self.stub.webhook_failed(sid, f"{self.contacts.base}/webhooks/twilio/sms/")
        outcome = Outcome("web frozen", f"SIGSTOP {seconds:.0f} s, 5 contacts/s; SMS and calls in Twilio's log, a "
                          "debugger alert for each SMS answered too late", contacts,
                          fault_window=(timer["start"], timer["end"]))  # fmt: skip
        twilio_took = len({c.key for c in contacts if c.kind in ("sms", "voice")})
        answered_web = len({c.key for c in contacts if c.kind == "web" and 200 <= c.status < 300})
        self.settle(outcome, since, timer["end"], until=lambda r: r["stored"] >= twilio_took + answered_web
                    and r["late_receipts"] >= len(late))  # fmt: skip
        outcome.extra = (f"{twilio_took} SMS and calls Twilio took; {len(late)} SMS answered after Twilio's 15 s or "
                         f"never, {outcome.report.get('late_receipts', '?')} of their citizens sent the receipt by SMS "
                         "since")  # fmt: skip
        return outcome

    def log_lines(self, *phrases: str) -> int:
        return sum(
            sum(1 for line in path.read_text(errors="replace").splitlines() if any(p in line for p in phrases))
            for path in self.log_dir.glob("*.log")
        )

    def workers_killed(self, kills: int = 8) -> Outcome:
        """Workers SIGKILLed while busy: the stub holds each send 2.5 s, so kills land inside Twilio calls."""
        since = self.now_iso()
        found, resent = "the lost worker had sent it", "lost before the provider had it"
        before = self.log_lines(found), self.log_lines(resent)
        self.stub.delay_seconds = 2.5
        timer = {}

        def killer() -> None:
            time.sleep(4)
            timer["start"] = time.perf_counter()
            for n in range(kills):
                name = ("worker", "critical-worker", "alerts-worker")[n % 3]
                kill_process_tree(self.stack, name)
                restart(self.stack, name, self.log_dir)
                time.sleep(4)
            timer["end"] = time.perf_counter()

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        contacts = send_at_rate(self.port, lambda n: self.contacts.mix(n, critical_every=3), 3.0, kills * 4 + 6)
        thread.join(120)
        self.stub.delay_seconds = 0.0
        outcome = Outcome("worker SIGKILLed while busy", f"{kills} kills 4 s apart, 3 workers in turn, 3 contacts/s",
                          contacts, fault_window=(timer["start"], timer["end"]))  # fmt: skip
        self.settle(outcome, since, timer["end"])
        outcome.extra = (
            f"sends interrupted by a kill: {self.log_lines(found) - before[0]} found at Twilio (not sent again), "
            f"{self.log_lines(resent) - before[1]} not there (sent once after); "
            f"{outcome.report.get('settled_by_callback', '?')} recorded as sent by Twilio's status callback before "
            f"their worker did; status callbacks, by our answer: {dict(self.stub.callback_answers)}"
        )
        return outcome

    def twilio_down(self, seconds: float) -> Outcome:
        """Twilio answers 503 to everything; contacts keep coming for the first minute."""
        since = self.now_iso()
        self.stub.outage(503, 20503, "Service Unavailable")
        started = time.perf_counter()
        contacts = send_at_rate(self.port, self.contacts.mix, 1.0, min(60.0, seconds))
        remaining = seconds - (time.perf_counter() - started)
        if remaining > 0:
            time.sleep(remaining)
        report = self.db_report(contacts, since)
        failed_before = report.get("failed_while_waiting", 0)
        self.stub.recover()
        ended = time.perf_counter()
        outcome = Outcome("Twilio answering 503", f"{seconds:.0f} s, 1 contact/s for the first minute", contacts,
                          fault_window=(started, ended))  # fmt: skip
        def is_over(report: dict) -> bool:
            keys = [n[6] for n in report["notifications"]]
            was_alerted = any(k.startswith("delivery-alert:") for k in keys)
            return report["failed_while_waiting"] == 0 and (
                not was_alerted or any(k.startswith("delivery-recovere") for k in keys)
            )

        self.settle(outcome, since, ended, until=is_over)
        alerts = [n for n in outcome.report.get("notifications", []) if n[6].startswith("delivery-alert:")]
        clear = [n for n in outcome.report.get("notifications", []) if n[6].startswith("delivery-recovere")]
        outcome.extra = (
            f"staff alerts failed for good while their case waited: {failed_before} at the end of the outage, "
            f"{outcome.report.get('failed_while_waiting', '?')} after recovery; supervisors alerted: {len(alerts)} "
            f"messages, all-clear: {len(clear)}"
        )
        return outcome


# --- Printing -------------------------------------------------------------------------------------------------


def print_table(outcomes: list[Outcome]) -> None:
    columns = ["scenario", "sent", "2xx", "stored", "dup", "triaged", "dup", "assigned", "dup", "notified",
               "sent twice", "p50 ms", "p99 ms", "recovered"]  # fmt: skip
    rows = []
    for outcome in outcomes:
        report = outcome.report
        unique = {c.key for c in outcome.contacts}
        start, end = outcome.fault_window
        during = [c.latency_ms for c in outcome.contacts if start <= c.sent_at <= end] if end else []
        during = during or [c.latency_ms for c in outcome.contacts]
        rows.append([
            outcome.name, f"{len(unique)}" + (f" ({len(outcome.contacts)} req)" if len(unique) < len(outcome.contacts)
                                               else ""),
            str(sum(1 for c in outcome.contacts if 200 <= c.status < 300)),
            str(report.get("stored", "?")), str(report.get("stored_twice", "?")),
            f"{report.get('triaged', '?')}/{report.get('cases', '?')}", str(report.get("triaged_twice", "?")),
            str(report.get("assigned", "?")), str(report.get("assigned_twice", "?")), str(report.get("notified", "?")),
            str(outcome.notifications_sent_twice),
            f"{statistics.median(during):.0f}", f"{percentile(during, 0.99):.0f}",
            f"{outcome.recovered_in:.0f} s" if outcome.recovered_in is not None else f">{SETTLE_LIMIT:.0f} s",
        ])  # fmt: skip
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    print()
    print("  ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))
    print()
    for outcome in outcomes:
        statuses = dict(Counter(c.status for c in outcome.contacts))
        extra = f"; {outcome.extra}" if outcome.extra else ""
        print(f"- {outcome.name} ({outcome.note}): answers {statuses}{extra}")
    print("\nsent: distinct contacts (requests); stored: contacts found in the database (a web inquiry by a token in"
          " its text); dup: stored/triaged/assigned more than once (a case handed on to a colleague is not a duplicate"
          " assignment); notified: cases whose assignment SMS or call Twilio"
          " took; sent twice: staff notifications the Twilio stub accepted more than once; p50/p99: intake latency of"
          " contacts sent during the fault (0 = no answer within 20 s counts as 20 s); recovered: from the fault's end"
          " until every contact answered 2xx was stored, triaged, assigned and notified.")  # fmt: skip


SCENARIOS = [
    "two-sms", "five-copies", "redis-frozen", "redis-killed", "cache-frozen", "cache-killed", "pg-stopped",
    "workers-killed", "twilio-503", "web-killed", "web-frozen",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--redis-freeze-seconds", type=float, default=30.0)
    parser.add_argument("--redis-down-seconds", type=float, default=20.0)
    parser.add_argument("--postgres-down-seconds", type=float, default=20.0)
    parser.add_argument("--twilio-down-seconds", type=float, default=200.0)
    parser.add_argument("--web-down-seconds", type=float, default=30.0)
    parser.add_argument("--web-frozen-seconds", type=float, default=30.0)
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")

    work = Path(tempfile.mkdtemp(prefix="helpline-faults-"))
    log_dir = work / "logs"
    log_dir.mkdir()
    postgres, redis, cache = ThrowawayPostgres(work), ThrowawayRedis(work / "broker"), ThrowawayRedis(work / "cache")
    port = free_port()
    stack = None
    print(f"logs and servers in {work}")
    try:
        postgres.create()
        postgres.create_database()
        redis.start()
        cache.start()
        with TwilioStub() as stub:
            stub.call_back_with(AUTH_TOKEN)  # as Twilio does: a send that outlived its worker is settled by them
            env = {
                **os.environ, "DATABASE_URL": postgres.url, "CELERY_BROKER_URL": f"{redis.url}/0",
                "CACHE_URL": f"{cache.url}/1", "VAR_DIR": str(work / "var"), "SECRET_KEY": "faults-only",
                "INTAKE_SPOOL_DIR": str(work / "spool"),
                "ALLOWED_HOSTS": "127.0.0.1,localhost", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_PHONE_NUMBER": HELPLINE_NUMBER, "SMS_BACKEND": "twilio", "TWILIO_API_BASE_URL": stub.url,
                "SMS_PER_SECOND": "100000", "CALLS_PER_SECOND": "100000", "INQUIRY_THROTTLE_RATE": "100000000/minute",
                "DJANGO_SETTINGS_MODULE": "helpline.project.settings", "LOG_LEVEL": "WARNING", "CONN_MAX_AGE": "60",
            }  # fmt: skip
            print(f"PostgreSQL on {postgres.port}, Redis on {redis.port} (cache {cache.port}), web on {port}, "
                  f"Twilio stub at {stub.url}")
            manage(env, "migrate", "--noinput", "-v", "0")
            manage(env, "load_demo_data", capture=True)
            # The ladder stays out of the way: these scenarios measure intake and the first alert.
            manage(env, "shell", "-c", "from notifications.models import EscalationPolicy as P; "
                                       "P.objects.update(acknowledge_within_minutes=120)")  # fmt: skip
            # Nobody on duty is ever full either: a case waiting because everyone is at their maximum is capacity
            # (benchmarks/run.py --surge measures that), and here it would read as a contact the fault lost.
            manage(env, "shell", "-c", "from helpline.roster.models import StaffProfile as S; "
                                       "S.objects.update(max_open_cases=100000)")  # fmt: skip
            stack = Stack(port, env)
            stack.start(log_dir)
            wait_for(port)
            time.sleep(5)  # workers and beat connect
            suite = Suite(stack, stub, log_dir, port)
            runs: dict[str, Callable[[], Outcome]] = {
                "two-sms": suite.two_quick_sms,
                "five-copies": suite.five_copies,
                "redis-frozen": lambda: suite.redis_frozen([redis, cache], args.redis_freeze_seconds),
                "redis-killed": lambda: suite.redis_killed([redis, cache], args.redis_down_seconds),
                "cache-frozen": lambda: suite.redis_frozen([cache], args.redis_freeze_seconds),
                "cache-killed": lambda: suite.redis_killed([cache], args.redis_down_seconds),
                "pg-stopped": lambda: suite.postgres_stopped(postgres, args.postgres_down_seconds),
                "workers-killed": suite.workers_killed,
                "twilio-503": lambda: suite.twilio_down(args.twilio_down_seconds),
                "web-killed": lambda: suite.web_killed(args.web_down_seconds),
                "web-frozen": lambda: suite.web_frozen(args.web_frozen_seconds),
            }
            outcomes = []
            for name in chosen:
                print(f"{time.strftime('%H:%M:%S')} {name} ...", flush=True)
                outcome = runs[name]()
                dead = restart_dead(stack, log_dir)
                if dead:
                    outcome.extra += f"{'; ' if outcome.extra else ''}processes found dead and restarted: {dead}"
                outcomes.append(outcome)
                print_table(outcomes[-1:])
            print("\n=== all scenarios ===")
            print_table(outcomes)
    finally:
        if stack is not None:
            stack.stop()
        redis.kill()
        cache.kill()
        postgres.stop()
        if os.environ.get("KEEP_FAULT_LOGS") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")


if __name__ == "__main__":
    main()
