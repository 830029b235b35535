"""How a notification leaves the building: Twilio, the console (development) or memory (tests).

Each backend answers with a SendResult; errors are sorted into transient (worth a retry: network, 5xx, 429, Twilio
refusing our account) and permanent (invalid number 21211, unsubscribed 21610, ...), which fail at once and let the
escalation go on.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils.module_loading import import_string
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from helpline.cases.models import mask_phone

logger = logging.getLogger(__name__)

# Twilio error codes that no retry can fix.
PERMANENT_TWILIO_ERRORS = frozenset({"21211", "21214", "21408", "21610", "21612", "21614", "21606", "21660"})
# The error code of a send whose connection failed: Twilio may or may not have taken the message.
NETWORK_ERROR = "network"
# Twilio refusing our account, not the message: credentials that do not authenticate (20003) or a suspended
# account (20005). Every send fails alike until someone fixes the settings, so it is an outage: retried, and
# never the recipient's phone's fault. (Taken as permanent, each staff alert failed for good on its first try and
# every recipient was passed over by assignment for an hour.)
ACCOUNT_ERRORS = frozenset({"20003", "20005"})


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: int
    to: str
    body: str
    channel: str  # "sms" or "voice"
    # Another sender for alerts about failing deliveries: a second number or a Messaging Service SID ("MG...").
    sender: str = ""


@dataclass(frozen=True)
class SendResult:
    ok: bool
    provider_sid: str = ""
    transient: bool = False
    error_code: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Lookup:
    """What the provider says about a send a lost worker may or may not have made. `known` is False when the
    provider could not be asked: then nobody can tell, and nothing is sent again yet."""

    known: bool
    provider_sid: str = ""

    @property
    def was_sent(self) -> bool:
        return bool(self.provider_sid)


def _described(message: OutgoingMessage) -> str:
    """What a log may say about a message: its notification, the masked number and the length, never the words
    (a staff reply quotes the citizen's situation; the full text is on the case page and in the admin)."""
    return f"notification {message.notification_id} to {mask_phone(message.to)}, {len(message.body)} characters"


class ConsoleBackend:
    """Development: logs that a message would be sent (not its words). Never reaches a phone."""

    def send(self, message: OutgoingMessage) -> SendResult:
        logger.warning("[console %s] %s", message.channel, _described(message))
        return SendResult(ok=True, provider_sid=f"console-{uuid.uuid4().hex}")

    def find_sent(self, message: OutgoingMessage, *, since: dt.datetime, known_sids: frozenset[str]) -> Lookup:
        return Lookup(known=True)  # a log line reaches no phone: sending it again harms nobody


class DrillBackend:
    """Where a drill case's notifications go, whatever SMS_BACKEND says: logged, never sent to a phone."""

    def send(self, message: OutgoingMessage) -> SendResult:
        logger.info("[drill %s, not sent] %s", message.channel, _described(message))
        return SendResult(ok=True, provider_sid=f"drill-{uuid.uuid4().hex}")

    def find_sent(self, message: OutgoingMessage, *, since: dt.datetime, known_sids: frozenset[str]) -> Lookup:
        return Lookup(known=True)


class MemoryBackend:
    """Tests: keeps what was sent in `outbox`; `fail_next` makes the next sends fail as a provider would."""

    outbox: list[OutgoingMessage] = []
    _failures: list[SendResult] = []
    _sids: dict[int, str] = {}
    _lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls.outbox.clear()
            cls._failures.clear()
            cls._sids.clear()

    @classmethod
    def fail_next(cls, *results: SendResult) -> None:
        with cls._lock:
            cls._failures.extend(results)

    def send(self, message: OutgoingMessage) -> SendResult:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            self.outbox.append(message)
            sid = self._sids[message.notification_id] = f"SM{uuid.uuid4().hex}"
        return SendResult(ok=True, provider_sid=sid)

    def find_sent(self, message: OutgoingMessage, *, since: dt.datetime, known_sids: frozenset[str]) -> Lookup:
        with self._lock:
            return Lookup(known=True, provider_sid=self._sids.get(message.notification_id, ""))


# Twilio's Smart Encoding sends these look-alikes as their GSM-7 forms; NFKD already folds the rest it rewrites
# (the ellipsis, the unusual spaces).
_SMART_ENCODED = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"',
                                "«": '"', "»": '"', "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-"})  # fmt: skip
# What a trial account puts before every body it sends.
TWILIO_TRIAL_PREFIX = "Sent from your Twilio trial account - "


def _folded(text: str) -> str:
    """A body as compared with what Twilio lists: Smart Encoding may have rewritten look-alike characters, so
    accents, case and runs of spaces do not count. Letters of every script stay: folded to ASCII, a Cyrillic reply
    was left as "." and matched any other message to the number."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SMART_ENCODED))
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(bare.casefold().split())


def is_same_text(listed_body: str, ours: str) -> bool:
    """Whether a message Twilio lists is ours: the whole body, as sent or behind the trial account's notice. A
    part would not do: "Da" is inside every "Dakle", and what a message shares with another is no proof."""
    folded = _folded(ours)
    if not folded:
        return False  # nothing to recognise it by
    return _folded(listed_body) in (folded, _folded(TWILIO_TRIAL_PREFIX + ours))


# Twilio lists a number's messages and calls newest first, a page at a time. The lookup reads every page back to
# the notification's time, not a fixed number: in a surge one person on duty receives hundreds of alerts, and a
# lookup that stopped at the newest 50 took an interrupted alert for one never sent and sent it again.
LOOKUP_PAGE = 200


def _newest_since(resources: Iterable, since: dt.datetime, at: str = "date_created") -> Iterator:
    """The resources (newest first, by their `at` time) at or after `since`, read lazily: no page is fetched after
    the first older resource, nor after the caller has found what it looked for."""
    for resource in resources:
        when = getattr(resource, at, None) or resource.date_created
        if when is not None and when < since:
            return
        yield resource


@dataclass(frozen=True)
class InboundContact:
    """An SMS or a call that reached the SOS number, as Twilio's log lists it."""

    kind: str  # "sms" or "call"
    sid: str
    from_number: str
    created: dt.datetime
    body: str = ""
    num_media: int = 0
    status: str = ""  # a call's: ringing, in-progress, completed, busy, no-answer, canceled, failed
    duration: int | None = None  # a call's, in seconds
    ended: dt.datetime | None = None  # a call's end, once it has ended


@dataclass(frozen=True)
class FailedWebhook:
    """A request Twilio made to one of our webhooks that failed, as its debugger's alerts list it."""

    sid: str  # the SMS or call it was about
    url: str  # the URL Twilio asked
    error_code: str  # 11200 (no usable answer: a timeout past 15 s, a 5xx), 11205 (no connection), ...


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


class RedirectedHttpClient(TwilioHttpClient):
    """Sends every Twilio API request to another origin: a local stub in tests, never the internet."""

    def __init__(self, base_url: str, **kwargs) -> None:
        super().__init__(timeout=kwargs.pop("timeout", 10), **kwargs)
        self.base = urlsplit(base_url)

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        url = urlunsplit((self.base.scheme, self.base.netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)


def _read_the_environment_once(http_client: TwilioHttpClient, url: str) -> None:
    """requests reads the proxy and CA-bundle variables from the environment for every request (HTTPS_PROXY,
    NO_PROXY, REQUESTS_CA_BUNDLE): 0.2 ms of CPU a send here, of the 6 or so a send costs a worker. Every request goes
    to the one Twilio origin, so requests reads them here once, for that origin, as it would for each request;
    a changed environment needs a restart, as any setting does."""
    session = http_client.session
    if session is None:
        return
    found = session.merge_environment_settings(url, {}, None, None, None)
    http_client.proxy = found["proxies"]
    session.verify = found["verify"]
    session.trust_env = False


def is_account_refused(error: TwilioRestException) -> bool:
    """Whether Twilio refused a create for our account rather than for the message: an ACCOUNT_ERRORS code, or HTTP
    401, 403 or 404 (the account SID in the URL names no account) with no code about the message, its number or
    its sender (those are 21xxx and up; the API's own are 20xxx)."""
    code = str(error.code or "")
    return code in ACCOUNT_ERRORS or (error.status in (401, 403, 404) and (not code or code.startswith("20")))


def result_of_refused_create(error: TwilioRestException, *, what: str) -> SendResult:
    """A message or call Twilio refused, sorted: transient (5xx, 429, our account) or permanent."""
    code = str(error.code or "")
    error_code = code or str(error.status)
    if is_account_refused(error):
        logger.error("Twilio refused the helpline's account (HTTP %s, error %s) for %s: check TWILIO_ACCOUNT_SID and "
                     "TWILIO_AUTH_TOKEN and that the account is active. Messages wait and are sent once it works.",
                     error.status, error_code, what)  # fmt: skip
        return SendResult(ok=False, transient=True, error_code=error_code, detail=(error.msg or "")[:500])
    transient = (error.status >= 500 or error.status == 429) and code not in PERMANENT_TWILIO_ERRORS
    return SendResult(ok=False, transient=transient, error_code=error_code, detail=(error.msg or "")[:500])


class TwilioBackend:
    def __init__(self) -> None:
        http_client = (
            RedirectedHttpClient(settings.TWILIO_API_BASE_URL)
            if settings.TWILIO_API_BASE_URL
            else TwilioHttpClient(timeout=10)
        )
        _read_the_environment_once(http_client, settings.TWILIO_API_BASE_URL or "https://api.twilio.com")
        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)

    def _callback(self, path: str) -> str | None:
        return settings.PUBLIC_BASE_URL + path if settings.PUBLIC_BASE_URL else None

    def send(self, message: OutgoingMessage) -> SendResult:
        try:
            if message.channel == "voice":
                created = self.client.calls.create(
                    to=message.to,
                    from_=settings.TWILIO_PHONE_NUMBER,
                    url=self._callback(f"/webhooks/twilio/voice/staff-call/?notification={message.notification_id}"),
                    method="POST",
                    # The notification travels in the callback URL: a callback for a call whose SID a lost worker
                    # never recorded still finds its notification.
                    status_callback=self._callback(
                        f"/webhooks/twilio/voice/staff-call/status/?n={message.notification_id}"
                    ),
                    status_callback_method="POST",
                )
            else:
                sender = message.sender or settings.TWILIO_PHONE_NUMBER
                via = {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}
                created = self.client.messages.create(
                    to=message.to,
                    body=message.body,
                    # As for calls: the notification in the URL finds a message whose SID was never written down.
                    status_callback=self._callback(f"/webhooks/twilio/message-status/?n={message.notification_id}"),
                    **via,
                )
        except TwilioRestException as error:
            return result_of_refused_create(error, what=_described(message))
        except (TwilioException, OSError) as error:  # network trouble: try again later
            return SendResult(ok=False, transient=True, error_code=NETWORK_ERROR, detail=str(error)[:500])
        return SendResult(ok=True, provider_sid=created.sid)

    def inbound_since(self, since: dt.datetime, until: dt.datetime) -> list[InboundContact]:
        """Every SMS and call that reached our numbers from `since` to `until`, from Twilio's log: the SMS to every
        number `sms_numbers_we_answer_on` names, the calls to the SOS number. Raises TwilioException (or an OSError)
        when Twilio cannot be asked."""
        found = []
        for number in self.sms_numbers_we_answer_on():
            messages = self.client.messages.stream(
                to=number, date_sent_after=since, date_sent_before=until, page_size=LOOKUP_PAGE
            )
            found += [
                # Twilio lists and filters messages by the time they were sent, calls by their start.
                InboundContact(
                    "sms", m.sid, m.from_ or "", m.date_sent or m.date_created, body=m.body or "",
                    num_media=_int_or_none(m.num_media) or 0,
                )
                for m in _newest_since(messages, since, at="date_sent")
                if m.direction == "inbound"
            ]
        calls = self.client.calls.stream(
            to=settings.TWILIO_PHONE_NUMBER, start_time_after=since, start_time_before=until, page_size=LOOKUP_PAGE
        )
        found += [
            InboundContact(
                # twilio's CallInstance names it _from, its MessageInstance from_.
                "call", c.sid, c._from or "", c.start_time or c.date_created, status=c.status or "",
                duration=_int_or_none(c.duration), ended=c.end_time,
            )
            for c in _newest_since(calls, since, at="start_time")
            if c.direction == "inbound"
        ]
        return found

    def failed_webhooks_since(self, since: dt.datetime, until: dt.datetime) -> list[FailedWebhook]:
        """The requests to our webhooks Twilio gave up on from `since` to `until` (the error alerts of its debugger):
        a webhook that answered too late, with an error, or not at all. Raises TwilioException (or an OSError) when
        Twilio cannot be asked."""
        alerts = self.client.monitor.v1.alerts.stream(
            log_level="error", start_date=since, end_date=until, page_size=LOOKUP_PAGE
        )
        return [
            FailedWebhook(alert.resource_sid, alert.request_url or "", alert.error_code or "")
            for alert in alerts
            if alert.resource_sid
        ]

    def sms_numbers_we_answer_on(self) -> list[str]:
        """The numbers people text us on: the SOS number, and every number we send from and so may be answered on.
        Staff answer an alert ("OK", a silent alarm) to STAFF_ALERT_SENDER, supervisors DELIVERY_ALERT_SENDER's,
        the people a welfare campaign asked to WELFARE_MESSAGING_SERVICE_SID's. A sender that is a Messaging
        Service ("MG...") is its pool of numbers, asked of Twilio each time (numbers are added to a pool in the
        console, with no word to us), as a reply goes to the number of the pool that texted the person."""
        numbers = [settings.TWILIO_PHONE_NUMBER]
        for sender in (
            settings.STAFF_ALERT_SENDER, settings.DELIVERY_ALERT_SENDER, settings.WELFARE_MESSAGING_SERVICE_SID,
        ):  # fmt: skip
            senders = self._pool_of(sender) if sender.startswith("MG") else [sender]
            numbers += [number for number in senders if number.startswith("+") and number not in numbers]
        return numbers

    def _pool_of(self, service_sid: str) -> list[str]:
        try:
            pool = self.client.messaging.v1.services(service_sid).phone_numbers.stream(page_size=LOOKUP_PAGE)
            return [number.phone_number or "" for number in pool]
        except TwilioException as error:
            # A list request that fails raises TwilioException("Unable to fetch page", response), not
            # TwilioRestException with a status: the status is the response's.
            response = error.args[1] if len(error.args) > 1 else None
            if getattr(response, "status_code", None) != 404:
                raise  # Twilio cannot be asked now: the caller's next look covers this one's window
            # A Messaging Service that does not exist (a mistyped setting) must not keep the SOS number from being
            # read; its own sends fail, and say so, too.
            logger.error("Messaging Service %s is unknown to Twilio: SMS to its numbers cannot be read", service_sid)
            return []

    def find_sent(self, message: OutgoingMessage, *, since: dt.datetime, known_sids: frozenset[str]) -> Lookup:
        """Did Twilio take this message although nobody recorded its SID (a worker killed inside the call)?
        An SMS is recognised by its whole text (is_same_text); a call by its number and time, among the calls
        whose SID no notification has recorded."""
        try:
            if message.channel == "voice":
                calls = _newest_since(
                    self.client.calls.stream(to=message.to, from_=settings.TWILIO_PHONE_NUMBER, page_size=LOOKUP_PAGE),
                    since,
                )
                # The oldest unclaimed call we placed is the lost one. Only calls made through the API count: a
                # citizen's call put through to staff (intake's <Dial>) is listed from the SOS number too, as a leg
                # of the citizen's call, and was taken for the alert's call, which was then never placed.
                found = [
                    c for c in calls
                    if c.direction == "outbound-api" and not c.parent_call_sid and c.sid not in known_sids
                ]  # fmt: skip
                return Lookup(known=True, provider_sid=found[-1].sid if found else "")
            if not _folded(message.body):
                # Twilio refuses a message with no text, so it cannot have taken this one.
                logger.warning("notification %s has no text to find it by at Twilio", message.notification_id)
                return Lookup(known=True)
            for sent in _newest_since(self.client.messages.stream(to=message.to, page_size=LOOKUP_PAGE), since):
                if sent.sid not in known_sids and is_same_text(sent.body or "", message.body):
                    return Lookup(known=True, provider_sid=sent.sid)
            return Lookup(known=True)
        except (TwilioException, OSError) as error:
            logger.warning("could not look up notification %s at Twilio: %s", message.notification_id,
                           type(error).__name__)  # fmt: skip
            return Lookup(known=False)


BACKENDS = {
    "twilio": "notifications.backends.TwilioBackend",
    "console": "notifications.backends.ConsoleBackend",
    "memory": "notifications.backends.MemoryBackend",
}


def alerts_reach_no_phone_in_production() -> bool:
    """True when a production deployment sends through anything but Twilio: the console backend logs each staff
    alert and reports it sent, so cases go to people who never hear of them. A demo says DEPLOYMENT=demo."""
    return settings.DEPLOYMENT == "production" and settings.SMS_BACKEND != "twilio"


# One backend per thread, kept while the settings it was made from stand. A Twilio client made per message opened
# a new connection (in production a TLS handshake with api.twilio.com) for every SMS and call; a kept one sends
# over the connection its last message used. requests' sessions are not promised to be thread-safe, hence one per
# thread; and the process id is part of the key, so a forked worker never shares its parent's connection.
_kept = threading.local()


def get_backend():
    path = BACKENDS.get(settings.SMS_BACKEND, settings.SMS_BACKEND)
    made_from = (
        os.getpid(), path, settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_API_BASE_URL
    )
    kept = getattr(_kept, "backend", None)
    if kept is None or kept[0] != made_from:
        kept = (made_from, import_string(path)())
        _kept.backend = kept
    return kept[1]
