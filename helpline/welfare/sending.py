"""How a welfare question leaves the building: an SMS through the account's Messaging Service (or the helpline's
number), and a call whose TwiML asks for a key press. Drill campaigns go to the drill backend, never to a phone."""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException

from notifications.backends import (
    PERMANENT_TWILIO_ERRORS,
    DrillBackend,
    OutgoingMessage,
    SendResult,
    TwilioBackend,
    get_backend,
)

CALL_PATH = "/webhooks/twilio/welfare/call/"
CALL_STATUS_PATH = "/webhooks/twilio/welfare/call/status/"


def sending_rate() -> float:
    """Messages a second the account takes: a long code about one (SMS_PER_SECOND); a Messaging Service spreads
    sends over its pool of numbers, each at that rate."""
    numbers = settings.WELFARE_SENDING_NUMBERS if settings.WELFARE_MESSAGING_SERVICE_SID else 1
    return max(settings.SMS_PER_SECOND * max(numbers, 1), 0.01)


def seconds_between_sends() -> dt.timedelta:
    return dt.timedelta(seconds=1 / sending_rate())


def _backend(is_drill: bool):
    return DrillBackend() if is_drill else get_backend()


def send_question(check_id: int, to: str, body: str, *, is_drill: bool) -> SendResult:
    # A negative id keeps welfare sends apart from the outbox's notification ids in backends that key on them.
    sender = settings.WELFARE_MESSAGING_SERVICE_SID or ""
    return _backend(is_drill).send(OutgoingMessage(-check_id, to, body, "sms", sender=sender))


def place_call(check_id: int, to: str, body: str, *, is_drill: bool) -> SendResult:
    """A call that speaks the question and waits for 1 or 2 (helpline/intake/welfare_webhooks.py)."""
    backend = _backend(is_drill)
    if not isinstance(backend, TwilioBackend):
        return backend.send(OutgoingMessage(-check_id, to, body, "voice"))
    base = settings.PUBLIC_BASE_URL
    try:
        created = backend.client.calls.create(
            to=to, from_=settings.TWILIO_PHONE_NUMBER, url=f"{base}{CALL_PATH}?check={check_id}", method="POST",
            status_callback=f"{base}{CALL_STATUS_PATH}?check={check_id}", status_callback_method="POST",
            timeout=settings.WELFARE_CALL_RING_SECONDS,
        )  # fmt: skip
    except TwilioRestException as error:
        code = str(error.code or error.status)
        transient = (error.status >= 500 or error.status == 429) and code not in PERMANENT_TWILIO_ERRORS
        return SendResult(ok=False, transient=transient, error_code=code, detail=(error.msg or "")[:500])
    except (TwilioException, OSError) as error:
        return SendResult(ok=False, transient=True, error_code="network", detail=str(error)[:500])
    return SendResult(ok=True, provider_sid=created.sid)
