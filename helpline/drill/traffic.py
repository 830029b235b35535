"""An open-loop load of realistic contacts against a running helpline: used by the benchmark and by drills.

Contacts are sent at planned times whatever the server does, and latency counts from the planned time, so a slow
server cannot hide its queue (no coordinated omission). The mix: 60 % SMS, 15 % calls, 25 % web inquiries, signed
as Twilio signs them; a few per cent read as critical.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MESSAGES = Path(__file__).resolve().parents[2] / "triage" / "evaluation" / "messages.jsonl"


@dataclass
class Sent:
    kind: str
    planned: float
    latency_ms: float = 0.0
    status: int = 0
    key: str = ""  # MessageSid, CallSid or the inquiry reference
    is_critical: bool = False


class Client:
    """One keep-alive connection per thread to the web server."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.local = threading.local()

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        for _ in range(2):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = self.local.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self.local.connection = None
        return 0, b""


class Contacts:
    """A realistic mix: 60 % SMS, 15 % calls, 25 % web inquiries; a few per cent read as critical."""

    def __init__(
        self,
        *,
        auth_token: str,
        signing_base: str,
        critical_share: float,
        seed: int = 7,
        headers: dict[str, str] | None = None,
        fresh_headers=None,
        number_prefix: str = "+3876",
        sms_share: float = 0.60,
        voice_share: float = 0.15,
    ) -> None:
        from twilio.request_validator import RequestValidator

        self.base = signing_base.rstrip("/")  # the public origin Twilio would sign, as the server checks it
        self.validator = RequestValidator(auth_token)
        self.random = random.Random(seed)  # noqa: S311 - a reproducible load, not secrecy
        rows = [json.loads(line) for line in MESSAGES.read_text(encoding="utf-8").splitlines()]
        self.critical = [r["text"] for r in rows if r["priority"] == "critical"]
        self.calm = [r["text"] for r in rows if r["priority"] in ("normal", "low", "high")]
        self.critical_share = critical_share
        self.headers = headers or {}
        # Made anew for each contact: a drill marker carries a nonce and is accepted once.
        self.fresh_headers = fresh_headers or dict
        self.number_prefix = number_prefix
        self.sms_below, self.voice_below = sms_share, sms_share + voice_share

    def next(self) -> tuple[str, str, bytes, dict, bool, str]:
        is_critical = self.random.random() < self.critical_share
        text = self.random.choice(self.critical if is_critical else self.calm)
        roll = self.random.random()
        number = f"{self.number_prefix}{self.random.randint(1000000, 9999999)}"
        if roll < self.sms_below:
            sid = "SM" + uuid.uuid4().hex
            params = {"MessageSid": sid, "From": number, "To": "+38733000111", "Body": text, "NumMedia": "0"}
            return ("sms", "/webhooks/twilio/sms/", *self._signed("/webhooks/twilio/sms/", params), is_critical, sid)
        if roll < self.voice_below:
            sid = "CA" + uuid.uuid4().hex
            params = {"CallSid": sid, "From": number, "To": "+38733000111", "CallStatus": "ringing"}
            return ("voice", "/webhooks/twilio/voice/", *self._signed("/webhooks/twilio/voice/", params), False, sid)
        body = json.dumps({"message": text, "safe_contact": {"text": False}}).encode()
        headers = {"Content-Type": "application/json", **self.headers, **self.fresh_headers()}
        return ("web", "/api/v1/inquiries/", body, headers, is_critical, "")

    def _signed(self, path: str, params: dict) -> tuple[bytes, dict]:
        signature = self.validator.compute_signature(self.base + path, params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
                   **self.headers, **self.fresh_headers()}  # fmt: skip
        return urllib.parse.urlencode(params).encode(), headers


def closed_loop_rate(client: Client, make_request, seconds: float, threads: int = 32) -> float:
    """As many requests as `threads` senders get through in `seconds`: this stack's throughput."""
    stop_at = time.perf_counter() + seconds
    done = Counter()

    def run() -> None:
        while time.perf_counter() < stop_at:
            path, body, headers = make_request()
            status, _ = client.post(path, body, headers)
            done[status] += 1

    workers = [threading.Thread(target=run) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ok = sum(n for status, n in done.items() if 200 <= status < 300)
    return ok / (time.perf_counter() - started)


def open_loop(client: Client, contacts: Contacts, rate: float, seconds: float, threads: int = 96) -> list[Sent]:
    """Send at planned times (rate per second) regardless of responses; latency from the planned time."""
    total = int(rate * seconds)
    plan = [i / rate for i in range(total)]
    sent: list[Sent] = []
    lock = threading.Lock()
    next_index = iter(range(total))
    start = time.perf_counter() + 0.5

    def run() -> None:
        while True:
            with lock:
                index = next(next_index, None)
                if index is None:
                    return
                kind, path, body, headers, is_critical, key = contacts.next()
            planned = start + plan[index]
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            status, answer = client.post(path, body, headers)
            latency = (time.perf_counter() - planned) * 1000
            if kind == "web" and status == 201:
                key = json.loads(answer)["reference"]
            with lock:
                sent.append(Sent(kind, planned - start, latency, status, key, is_critical))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sent
