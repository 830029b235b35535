#!/usr/bin/env python
"""Intake under the faults that used to lose contacts, against the real stack on this machine.

Starts gunicorn and a Celery worker (triage, critical, default queues) on a throwaway PostgreSQL database and a
Redis database of their own, then prints one line per scenario:
1. pairs: two SMS from a new number 0, 25 and 50 ms apart (30 pairs each): answered 2xx, both stored, one case;
2. copies: the same SMS webhook five times at once (35 rounds): answered 2xx, alike, stored once;
3. hung Redis: a second web process whose broker and cache are a server that accepts and never answers;
   SMS, calls and web inquiries: latency p50/p99/max and how many were stored;
4. database down: the web reaches PostgreSQL through a local proxy that is then shut (every connection refused);
   contacts sent meanwhile, answered 2xx, spooled; then the proxy reopens, `manage.py replay_intake_spool` runs, and
   the database is counted: stored exactly once, lost, doubled.

    .venv/bin/python benchmarks/intake_faults.py [--database-url postgres://...] [--redis-url redis://.../4]
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpline.cases.figures import percentile  # noqa: E402
from tests.intake_faults import HungServer  # noqa: E402 - the same frozen-Redis stand-in the tests use

BIN = ROOT / ".venv" / "bin"
AUTH_TOKEN = "intake-faults-auth-token"  # noqa: S105 - signs local test webhooks only
PUBLIC_BASE_URL = "https://sos.example.test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def number(scenario: int, n: int) -> str:
    """A distinct Bosnian mobile number per scenario and contact (the database is new for every run)."""
    return f"+3876{scenario}{n:06d}"


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port}")


class SwitchableProxy:
    """A TCP proxy to PostgreSQL that can be shut (listener closed, every connection cut) and reopened: a
    PostgreSQL stop and start as the web process sees it, without touching the shared server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def shut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone would leave it accepting.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()


class Web:
    """Posts signed webhooks and inquiries to one web process, timing each answer."""

    def __init__(self, port: int) -> None:
        self.port = port

    def post(self, path: str, body: str, headers: dict[str, str]) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), time.perf_counter() - started
        except OSError:
            return 0, b"", time.perf_counter() - started
        finally:
            connection.close()

    def twilio(self, path: str, params: dict[str, str]) -> tuple[int, bytes, float]:
        from twilio.request_validator import RequestValidator

        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + path, params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        return self.post(path, urllib.parse.urlencode(params), headers)

    def sms(self, sid: str, number: str, body: str = "Pomoć, molim vas") -> tuple[int, bytes, float]:
        return self.twilio("/webhooks/twilio/sms/", {
            "MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": number, "To": "+38733000111", "Body": body,
            "NumMedia": "0",
        })  # fmt: skip

    def call(self, sid: str, number: str) -> tuple[int, bytes, float]:
        return self.twilio("/webhooks/twilio/voice/", {
            "CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": number, "To": "+38733000111",
            "CallStatus": "ringing",
        })  # fmt: skip

    def inquiry(self, key: str, message: str = "Treba mi pomoć") -> tuple[int, bytes, float]:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        return self.post("/api/v1/inquiries/", json.dumps({"message": message}), headers)


def at_once(calls: list, offsets: list[float] | None = None) -> list:
    """Run the calls in threads released together, each after its offset in seconds."""
    offsets = offsets or [0.0] * len(calls)
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        if offsets[index]:
            time.sleep(offsets[index])
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def count(env: dict, sql: str) -> list:
    """Read the database with the service's own settings (psql may not be installed)."""
    script = (
        "import django, json; django.setup(); from django.db import connection;"
        f"cursor = connection.cursor(); cursor.execute({sql!r}); print(json.dumps(cursor.fetchall()))"
    )
    out = subprocess.run([str(BIN / "python"), "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def start_web(env: dict, port: int, logs: Path, name: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "helpline.project.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "8", "--timeout", "30", "--preload"],  # loaded before it listens
        cwd=ROOT, env=env, stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    wait_for_port(port)
    return process


def pairs(web: Web, env: dict, run_id: str) -> None:
    for gap_ms in (0, 25, 50):
        answers, numbers = [], []
        for pair in range(30):
            sender = number(1, gap_ms * 100 + pair)
            numbers.append(sender)
            sids = [f"SM{run_id}p{gap_ms}x{pair}x{i}" for i in (0, 1)]
            calls = [
                lambda sid=sid, sender=sender, i=i: web.sms(sid, sender, f"Poruka {i}") for i, sid in enumerate(sids)
            ]
            answers += at_once(calls, [0.0, gap_ms / 1000])
        ok = sum(1 for status, _, _ in answers if 200 <= status < 300)
        rows = count(env, (
            "SELECT count(m.id), count(DISTINCT m.case_id) FROM helpline_message m JOIN helpline_case c "
            f"ON c.id = m.case_id WHERE m.twilio_sid LIKE 'SM{run_id}p{gap_ms}x%'"
        ))[0]
        complete = count(env, (
            "SELECT count(*) FROM (SELECT c.caller_id FROM helpline_message m JOIN helpline_case c ON c.id = m.case_id "
            f"WHERE m.twilio_sid LIKE 'SM{run_id}p{gap_ms}x%' GROUP BY c.caller_id HAVING count(*) = 2 "
            "AND count(DISTINCT c.id) = 1) AS whole"
        ))[0][0]
        print(f"pairs {gap_ms:>2} ms apart x30: answered 2xx {ok}/60, messages stored {rows[0]}/60, "
              f"pairs stored whole on one case {complete}/30, cases {rows[1]}")


def copies(web: Web, env: dict, run_id: str) -> None:
    ok = alike = 0
    for round_number in range(35):
        sid, sender = f"SM{run_id}c{round_number}", number(2, round_number)
        answers = at_once([lambda sid=sid, sender=sender: web.sms(sid, sender)] * 5)
        ok += sum(1 for status, _, _ in answers if 200 <= status < 300)
        alike += len({body for _, body, _ in answers}) == 1
    stored, doubled = count(env, (
        "SELECT count(DISTINCT twilio_sid), count(*) - count(DISTINCT twilio_sid) FROM helpline_message "
        f"WHERE twilio_sid LIKE 'SM{run_id}c%'"
    ))[0]
    print(f"5 copies at once x35: answered 2xx {ok}/175, rounds answered alike {alike}/35, stored {stored}/35, "
          f"duplicates {doubled}")


def hung_redis(env: dict, logs: Path, run_id: str) -> None:
    with HungServer() as hung:
        port = free_port()
        web_env = {**env, "CELERY_BROKER_URL": hung.redis_url, "CACHE_URL": hung.redis_url}
        process = start_web(web_env, port, logs, "web-hung-redis")
        try:
            web, latencies, ok, slowest = Web(port), [], 0, {}
            for n in range(6):  # each process's first requests load code and open connections: not Redis's doing
                web.sms(f"SM{run_id}warm{n}", number(9, n)), web.call(f"CA{run_id}warm{n}", number(9, 100 + n))
                web.inquiry(f"{run_id}-warm{n}")
            for n in range(60):
                kind = n % 3
                if kind == 0:
                    status, _, seconds = web.sms(f"SM{run_id}h{n}", number(3, n))
                elif kind == 1:
                    status, _, seconds = web.call(f"CA{run_id}h{n}", number(4, n))
                else:
                    status, _, seconds = web.inquiry(f"{run_id}-h{n}")
                ok += 200 <= status < 300
                latencies.append(seconds)
                slowest[("sms", "call", "web")[kind]] = max(seconds, slowest.get(("sms", "call", "web")[kind], 0))
        finally:
            process.terminate()
            process.wait()
    stored = count(env, (
        f"SELECT (SELECT count(*) FROM helpline_message WHERE twilio_sid LIKE 'SM{run_id}h%' OR twilio_sid LIKE "
        f"'CA{run_id}h%') + (SELECT count(*) FROM helpline_case WHERE idempotency_key LIKE '{run_id}-h%')"
    ))[0][0]
    slowest_text = ", ".join(f"{kind} {seconds:.3f} s" for kind, seconds in slowest.items())
    print(f"hung Redis (broker and cache), 60 contacts: answered 2xx {ok}/60, stored {stored}/60, latency "
          f"p50 {percentile(latencies, 0.5):.3f} s, p99 {percentile(latencies, 0.99):.3f} s, "
          f"max {max(latencies):.3f} s (slowest: {slowest_text})")


def database_down(env: dict, logs: Path, run_id: str, database_url: str) -> None:
    parsed = urllib.parse.urlsplit(database_url)
    proxy = SwitchableProxy((parsed.hostname or "127.0.0.1", parsed.port or 5432))
    proxy.open()
    proxied = parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{proxy.port}").geturl()
    spool_dir = Path(tempfile.mkdtemp(prefix="intake-spool-"))
    web_env = {**env, "DATABASE_URL": proxied, "INTAKE_SPOOL_DIR": str(spool_dir)}
    port = free_port()
    process = start_web(web_env, port, logs, "web-database-down")
    web, sent, ok, latencies = Web(port), 0, 0, []
    try:
        web.sms(f"SM{run_id}warm", number(5, 0))  # the web's connections are open when PostgreSQL goes away
        proxy.shut()
        for n in range(60):
            kind = n % 3
            if kind == 0:
                status, _, seconds = web.sms(f"SM{run_id}d{n}", number(6, n))
            elif kind == 1:
                status, _, seconds = web.call(f"CA{run_id}d{n}", number(7, n))
            else:
                status, _, seconds = web.inquiry(f"{run_id}-d{n}")
            if kind == 0 and n % 2 == 0:  # Twilio (or a client) retries some: they must not be stored twice
                web.sms(f"SM{run_id}d{n}", number(6, n))
            sent += 1
            ok += 200 <= status < 300
            latencies.append(seconds)
        spooled = len(list(spool_dir.glob("*.json")))
        proxy.open()
        started = time.perf_counter()
        replay = subprocess.run(
            [str(BIN / "python"), "manage.py", "replay_intake_spool"], cwd=ROOT, env={**web_env, **env,
            "INTAKE_SPOOL_DIR": str(spool_dir)}, capture_output=True, text=True,
        )  # fmt: skip
        replay_seconds = time.perf_counter() - started
        again = subprocess.run(
            [str(BIN / "python"), "manage.py", "replay_intake_spool"], cwd=ROOT,
            env={**env, "INTAKE_SPOOL_DIR": str(spool_dir)}, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        process.terminate()
        process.wait()
        proxy.shut()
    stored, doubled = count(env, (
        f"SELECT count(DISTINCT twilio_sid), count(*) - count(DISTINCT twilio_sid) FROM helpline_message "
        f"WHERE twilio_sid LIKE 'SM{run_id}d%' OR twilio_sid LIKE 'CA{run_id}d%'"
    ))[0]
    web_cases = count(env, f"SELECT count(*) FROM helpline_case WHERE idempotency_key LIKE '{run_id}-d%'")[0][0]
    print(f"PostgreSQL unreachable, 60 contacts (+10 retried SMS): answered 2xx {ok}/60, latency p99 "
          f"{percentile(latencies, 0.99):.3f} s, spooled {spooled}; replay: {replay.stdout.strip()} in "
          f"{replay_seconds:.1f} s; second replay: {again.stdout.strip()}; stored {stored + web_cases}/60, "
          f"duplicates {doubled}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/helpline_intake_faults")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pairs", "copies", "hung", "down"])
    options = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="intake-faults-"))
    env = {
        **os.environ, "DATABASE_URL": options.database_url, "CELERY_BROKER_URL": options.redis_url,
        "CACHE_URL": options.redis_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "SECRET_KEY": "intake-faults-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
        "INQUIRY_THROTTLE_RATE": "100000/minute", "INTAKE_SPOOL_DIR": str(logs / "spool"), "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    parsed = urllib.parse.urlsplit(options.database_url)
    admin_url = parsed._replace(path="/postgres").geturl()
    name = parsed.path.lstrip("/")
    recreate = (
        f"import psycopg; c = psycopg.connect({admin_url!r}, autocommit=True);"
        f"c.execute('DROP DATABASE IF EXISTS {name} WITH (FORCE)'); c.execute('CREATE DATABASE {name}')"
    )
    subprocess.run([str(BIN / "python"), "-c", recreate], check=True)
    subprocess.run([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)

    port = free_port()
    web_process = start_web(env, port, logs, "web")
    worker = subprocess.Popen(
        [str(BIN / "celery"), "--app", "helpline", "worker", "--queues", "triage,critical,default",
         "--concurrency", "2", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    run_id = uuid.uuid4().hex[:6]
    print(f"logs in {logs}")
    try:
        web = Web(port)
        if "pairs" not in options.skip:
            pairs(web, env, run_id)
        if "copies" not in options.skip:
            copies(web, env, run_id)
        if "hung" not in options.skip:
            hung_redis(env, logs, run_id)
        if "down" not in options.skip:
            database_down(env, logs, run_id, options.database_url)
    finally:
        web_process.terminate()
        worker.terminate()
        web_process.wait()
        worker.wait()
    texts = [path.read_text(errors="replace") for path in logs.glob("*.log")]
    deadlocks = sum(text.count("deadlock detected") + text.count("40P01") for text in texts)
    retries = sum(text.count("intake transaction failed") for text in texts)
    errors = sum(text.count("Internal Server Error") for text in texts)
    print(f"web and worker logs: deadlocks {deadlocks}, intake transactions retried {retries} (the database-down "
          f"scenario retries by design), 500s logged {errors}")


if __name__ == "__main__":
    main()
