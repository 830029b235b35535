"""How a notification leaves the building: Twilio, the console (development) or memory (tests).

Each backend answers with a SendResult; errors are sorted into transient (worth a retry: network, 5xx, 429) and
permanent (invalid number 21211, unsubscribed 21610, ...), which fail at once and let the escalation go on.
"""
from __future__ import annotations

import logging
import threading
import uuid
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


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: int
    to: str
    body: str
    channel: str  # "sms" or "voice"


@dataclass(frozen=True)
class SendResult:
    ok: bool
    provider_sid: str = ""
    transient: bool = False
    error_code: str = ""
    detail: str = ""


class ConsoleBackend:
    """Development: writes what would be sent to the log. Never reaches a phone."""

    def send(self, message: OutgoingMessage) -> SendResult:
        logger.warning("[console %s to %s] %s", message.channel, mask_phone(message.to), message.body)
        return SendResult(ok=True, provider_sid=f"console-{uuid.uuid4().hex}")


class DrillBackend:
    """Where a drill case's notifications go, whatever SMS_BACKEND says: logged, never sent to a phone."""

    def send(self, message: OutgoingMessage) -> SendResult:
        logger.info("[drill %s to %s, not sent] %s", message.channel, mask_phone(message.to), message.body)
        return SendResult(ok=True, provider_sid=f"drill-{uuid.uuid4().hex}")


class MemoryBackend:
    """Tests: keeps what was sent in `outbox`; `fail_next` makes the next sends fail as a provider would."""

    outbox: list[OutgoingMessage] = []
    _failures: list[SendResult] = []
    _lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls.outbox.clear()
            cls._failures.clear()

    @classmethod
    def fail_next(cls, *results: SendResult) -> None:
        with cls._lock:
            cls._failures.extend(results)

    def send(self, message: OutgoingMessage) -> SendResult:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            self.outbox.append(message)
        return SendResult(ok=True, provider_sid=f"SM{uuid.uuid4().hex}")


class RedirectedHttpClient(TwilioHttpClient):
    """Sends every Twilio API request to another origin: a local stub in tests, never the internet."""

    def __init__(self, base_url: str, **kwargs) -> None:
        super().__init__(timeout=kwargs.pop("timeout", 10), **kwargs)
        self.base = urlsplit(base_url)

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        url = urlunsplit((self.base.scheme, self.base.netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)


class TwilioBackend:
    def __init__(self) -> None:
        http_client = (
            RedirectedHttpClient(settings.TWILIO_API_BASE_URL)
            if settings.TWILIO_API_BASE_URL
            else TwilioHttpClient(timeout=10)
        )
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
                    status_callback=self._callback("/webhooks/twilio/voice/staff-call/status/"),
                    status_callback_method="POST",
                )
            else:
                created = self.client.messages.create(
                    to=message.to,
                    from_=settings.TWILIO_PHONE_NUMBER,
                    body=message.body,
                    status_callback=self._callback("/webhooks/twilio/message-status/"),
                )
        except TwilioRestException as error:
            code = str(error.code or "")
            transient = error.status >= 500 or error.status == 429
            if code in PERMANENT_TWILIO_ERRORS:
                transient = False
            error_code = code or str(error.status)
            return SendResult(ok=False, transient=transient, error_code=error_code, detail=error.msg[:500])
        except (TwilioException, OSError) as error:  # network trouble: try again later
            return SendResult(ok=False, transient=True, error_code="network", detail=str(error)[:500])
        return SendResult(ok=True, provider_sid=created.sid)


BACKENDS = {
    "twilio": "notifications.backends.TwilioBackend",
    "console": "notifications.backends.ConsoleBackend",
    "memory": "notifications.backends.MemoryBackend",
}


def get_backend():
    return import_string(BACKENDS.get(settings.SMS_BACKEND, settings.SMS_BACKEND))()
