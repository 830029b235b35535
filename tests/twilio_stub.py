"""A local stand-in for Twilio's REST API: records each request, answers with queued responses, keeps the messages
and calls it accepted (so they can be listed as Twilio lists them), and can play an outage or a slow answer."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


def _listed_time(value: str) -> dt.datetime:
    return parsedate_to_datetime(value)


def _within(generated: str, query: dict[str, str]) -> bool:
    """An alert generated inside the StartDate and EndDate asked for (ISO 8601, as the Monitor API takes them)."""
    at = _listed_time(generated)
    start, end = query.get("StartDate"), query.get("EndDate")
    return (not start or at >= dt.datetime.fromisoformat(start)) and (not end or at <= dt.datetime.fromisoformat(end))


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    at: float = field(default_factory=time.time)


class TwilioStub:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        # What Twilio accepted: one dict per message or call, as the list endpoints return them.
        self.accepted: list[dict] = []
        self._answers: list[tuple[int, dict]] = []
        self._outage: tuple[int, dict] | None = None
        self.outage_covers_lookups = True
        # Lookups (the list endpoints) answer 503 while sends are taken: Twilio cannot be asked what it has.
        self.lookups_unavailable = False
        self.alerts_unavailable = False
        # Messaging Services ("MG..." -> their pool of numbers), as the Messaging API lists a service's numbers.
        self.messaging_services: dict[str, list[str]] = {}
        # The debugger's error alerts (`webhook_failed`), as the Monitor API lists them.
        self.alerts: list[dict] = []
        # Seconds to hold each create request after accepting it: a worker can be killed "inside the call".
        self.delay_seconds = 0.0
        # Called (in the stub's thread) as each DELETE arrives, before it is answered: something happening to the
        # client while it waits for Twilio.
        self.on_delete: Callable[[], None] | None = None
        # How many of the next accepted creates lose their answer (the connection drops): "Twilio took it, the
        # client never heard".
        self.hang_up_after_accepting = 0
        self.connections = 0  # TCP connections clients opened: a kept client sends many requests over one
        self.in_flight = 0  # create requests being answered now
        self.most_in_flight = 0  # the most at any one time: sends that waited side by side
        self._lock = threading.Lock()
        # Twilio's status callbacks, when a test or the benchmark asks for them (`call_back_with`): each accepted
        # message's StatusCallback gets "sent" then "delivered", each call's "completed", signed with the auth token.
        self._callback_token = ""
        self._callbacks: ThreadPoolExecutor | None = None
        self.callback_answers: Counter = Counter()  # the status codes our webhooks answered the callbacks with
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # as Twilio's API: the connection stays open for the client's next request
            # Headers and body leave in two writes; with Nagle's algorithm the body waited for the client's delayed
            # ACK, 40 ms a request on a kept connection.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with stub._lock:
                    stub.connections += 1

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                with stub._lock:
                    stub.requests.append(Recorded("POST", self.path, form))
                    if stub._outage is not None:
                        status, body = stub._outage
                    else:
                        status, body = stub._answers.pop(0) if stub._answers else (201, {})
                    if status < 300:
                        is_call = self.path.endswith("/Calls.json")
                        body = {
                            "sid": f"{'CA' if is_call else 'SM'}{uuid.uuid4().hex}", "status": "queued",
                            "to": form.get("To"), "from": form.get("From") or form.get("MessagingServiceSid"),
                            "body": "" if is_call else form.get("Body", ""), "parent_call_sid": None,
                            "direction": "outbound-api",  # as Twilio lists what was created through the API
                            "url": form.get("Url"),
                            "date_created": format_datetime(dt.datetime.now(dt.UTC)),
                            "kind": "call" if is_call else "sms", **body,
                        }  # fmt: skip
                        stub.accepted.append(body)
                    delay = stub.delay_seconds if status < 300 else 0
                    hang_up = status < 300 and stub.hang_up_after_accepting > 0
                    stub.hang_up_after_accepting -= hang_up
                    stub.in_flight += 1
                    stub.most_in_flight = max(stub.most_in_flight, stub.in_flight)
                try:
                    if delay:
                        time.sleep(delay)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1
                try:
                    if hang_up:
                        self.close_connection = True
                    else:
                        self._answer(status, body)
                finally:
                    if status < 300:  # as Twilio: the callbacks follow the answer, even one the caller never read
                        stub._call_back_later(form, body)

            def do_DELETE(self) -> None:
                """Deleting a resource (a voicemail recording): 204, or the queued answer or outage."""
                with stub._lock:
                    stub.requests.append(Recorded("DELETE", self.path, {}))
                    on_delete = stub.on_delete
                    if stub._outage is not None:
                        status, body = stub._outage
                    else:
                        status, body = stub._answers.pop(0) if stub._answers else (204, {})
                if on_delete is not None:
                    on_delete()
                if status == 204:
                    self.send_response(204)
                    self.end_headers()
                    return
                self._answer(status, body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with stub._lock:
                    stub.requests.append(Recorded("GET", self.path, query))
                    if stub._outage is not None and stub.outage_covers_lookups:
                        self._answer(*stub._outage)
                        return
                    if stub.lookups_unavailable:
                        self._answer(503, {"code": 20503, "message": "Service Unavailable", "status": 503,
                                           "more_info": ""})  # fmt: skip
                        return
                    if url.path == "/v1/Alerts":
                        if stub.alerts_unavailable:  # the Monitor API down while the rest of Twilio answers
                            self._answer(503, {"code": 20503, "message": "Service Unavailable", "status": 503,
                                               "more_info": ""})  # fmt: skip
                            return
                        alerts = [alert for alert in stub.alerts if _within(alert["date_generated"], query)]
                        self._answer(200, {"alerts": alerts, "meta": {
                            "key": "alerts", "page": 0, "page_size": len(alerts), "next_page_url": None}})
                        return
                    if url.path.startswith("/v1/Services/") and url.path.endswith("/PhoneNumbers"):
                        self._answer(*stub._pool_of(url.path.split("/")[3]))
                        return
                    kind, key = ("call", "calls") if url.path.endswith("/Calls.json") else ("sms", "messages")
                    found = [
                        dict(resource) for resource in reversed(stub.accepted)
                        if resource["kind"] == kind
                        and resource["to"] == query.get("To", resource["to"])
                        and resource["from"] == query.get("From", resource["from"])
                    ]  # fmt: skip
                # Pages as Twilio's: PageSize records from Page, and the next page's address while more remain.
                size, page = int(query.get("PageSize", 50)), int(query.get("Page", 0))
                rest = found[(page + 1) * size :]
                next_page = None
                if rest:
                    following = {**query, "Page": str(page + 1), "PageSize": str(size)}
                    next_page = f"{url.path}?{urlencode(following)}"
                self._answer(
                    200,
                    {key: found[page * size : (page + 1) * size], "page": page, "page_size": size,
                     "next_page_uri": next_page},
                )  # fmt: skip

            def _answer(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client is gone (a killed worker): Twilio kept the message
                    self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def call_back_with(self, auth_token: str, *, senders: int = 4) -> None:
        """From now on, post Twilio's status callbacks for what is accepted, signed with `auth_token`."""
        self._callback_token = auth_token
        self._callbacks = ThreadPoolExecutor(senders, thread_name_prefix="status-callback")

    def _call_back_later(self, form: dict, resource: dict) -> None:
        url = form.get("StatusCallback")
        if self._callbacks is None or not url:
            return
        if resource["kind"] == "call":
            updates = [{"CallSid": resource["sid"], "CallStatus": "completed"}]
        else:
            updates = [{"MessageSid": resource["sid"], "MessageStatus": status} for status in ("sent", "delivered")]
        self._callbacks.submit(self._post_callbacks, url, updates)

    def _post_callbacks(self, url: str, updates: list[dict]) -> None:
        from twilio.request_validator import RequestValidator

        validator = RequestValidator(self._callback_token)
        for params in updates:
            request = urllib.request.Request(  # noqa: S310 - the StatusCallback our own code gave, http(s)
                url, data=urlencode(params).encode(), method="POST",
                headers={"X-Twilio-Signature": validator.compute_signature(url, params)},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310 - as above
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = "no answer"
            with self._lock:
                self.callback_answers[status] += 1

    def dialled_leg(self, *, to: str, caller_id: str) -> dict:
        """A leg Twilio dials for a <Dial> in a call's TwiML (a citizen's call forwarded to staff, shown with the
        SOS number as caller ID): listed among the calls from that number, though nobody created it through the
        API. Returns it as the list endpoint does."""
        leg = {
            "sid": f"CA{uuid.uuid4().hex}", "status": "in-progress", "to": to, "from": caller_id, "body": "",
            "parent_call_sid": f"CA{uuid.uuid4().hex}", "direction": "outbound-dial", "url": None,
            "date_created": format_datetime(dt.datetime.now(dt.UTC)), "kind": "call",
        }  # fmt: skip
        with self._lock:
            self.accepted.append(leg)
        return dict(leg)

    def _pool_of(self, service_sid: str) -> tuple[int, dict]:
        if service_sid not in self.messaging_services:
            return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404,
                         "more_info": ""}  # fmt: skip
        numbers = [
            {"sid": f"PN{index:032d}", "service_sid": service_sid, "phone_number": number, "country_code": "BA"}
            for index, number in enumerate(self.messaging_services[service_sid])
        ]
        return 200, {"phone_numbers": numbers, "meta": {"key": "phone_numbers", "page": 0, "page_size": len(numbers),
                                                         "next_page_url": None}}  # fmt: skip

    def webhook_failed(self, sid: str, url: str, *, error_code: str = "11200") -> None:
        """Twilio's request to `url` about the SMS or call `sid` failed (11200: no usable answer within 15 s, or an
        error), and its debugger lists the alert."""
        now = format_datetime(dt.datetime.now(dt.UTC))
        with self._lock:
            self.alerts.append({
                "sid": f"NO{uuid.uuid4().hex}", "resource_sid": sid, "request_url": url, "error_code": error_code,
                "log_level": "error", "request_method": "POST", "date_created": now, "date_generated": now,
                "alert_text": "Msg=Request timeout", "account_sid": "AC" + "0" * 32,
            })  # fmt: skip

    def inbound(
        self, kind: str, *, from_: str, to: str, body: str = "", status: str = "received", ago_seconds: float = 0,
        duration: int | None = None, sid: str = "",
    ) -> dict:
        """An SMS or call that reached our number (`kind` "sms" or "call"), listed as Twilio lists it although no
        webhook of ours ever received it; a call with a final status ended `duration` seconds after it started.
        Returns it as the list endpoint does."""
        started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago_seconds)
        resource = {
            "sid": sid or f"{'CA' if kind == 'call' else 'SM'}{uuid.uuid4().hex}", "status": status, "to": to,
            "from": from_, "body": body if kind == "sms" else "", "parent_call_sid": None, "direction": "inbound",
            "url": None, "num_media": "0", "duration": None if duration is None else str(duration),
            "date_created": format_datetime(started), "date_sent": format_datetime(started),
            "start_time": format_datetime(started), "kind": kind,
            # A call's end: given once it has a final status, its duration after its start.
            "end_time": format_datetime(started + dt.timedelta(seconds=duration or 0))
            if kind == "call" and status in ("completed", "busy", "no-answer", "canceled", "failed") else None,
        }  # fmt: skip
        with self._lock:
            # Newest first as Twilio lists them: kept in the order of their time, whatever order a test adds them.
            self.accepted.append(resource)
            self.accepted.sort(key=lambda listed: _listed_time(listed["date_created"]))
        return dict(resource)

    def answer(self, status: int, body: dict | None = None) -> None:
        """Queue the answer to the next request (default: 201 with a fresh SID)."""
        self._answers.append((status, body or {}))

    def error(self, status: int, code: int, message: str = "error") -> None:
        self.answer(status, {"code": code, "message": message, "status": status, "more_info": ""})

    def outage(self, status: int = 503, code: int = 20503, message: str = "Service Unavailable") -> None:
        """Answer every request with this error until `recover()`."""
        with self._lock:
            self._outage = (status, {"code": code, "message": message, "status": status, "more_info": ""})

    def recover(self) -> None:
        with self._lock:
            self._outage = None

    @property
    def messages(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    @property
    def calls(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Calls.json")]

    @property
    def deletions(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "DELETE"]

    @property
    def lookups(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET"]

    def accepted_messages(self) -> list[dict]:
        with self._lock:
            return [dict(resource) for resource in self.accepted if resource["kind"] == "sms"]

    def accepted_calls(self) -> list[dict]:
        with self._lock:
            return [dict(resource) for resource in self.accepted if resource["kind"] == "call"]

    def __enter__(self) -> TwilioStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._callbacks is not None:
            self._callbacks.shutdown(wait=False, cancel_futures=True)
