"""How a welfare question leaves the building: an SMS through the account's Messaging Service (or the helpline's
number), and a call whose TwiML asks for a key press. Drill campaigns go to the drill backend, never to a phone."""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException

from notifications import outbox
from notifications.backends import (
    DrillBackend,
    OutgoingMessage,
    SendResult,
    TwilioBackend,
    get_backend,
    result_of_refused_create,
)
from notifications.models import NotificationChannel

CALL_PATH = "/webhooks/twilio/welfare/call/"
CALL_STATUS_PATH = "/webhooks/twilio/welfare/call/status/"


def sending_rate() -> float:
    """Messages a second the account takes: a long code about one (SMS_PER_SECOND); a Messaging Service spreads
    sends over its pool of numbers, each at that rate."""
    numbers = settings.WELFARE_SENDING_NUMBERS if settings.WELFARE_MESSAGING_SERVICE_SID else 1
    return max(settings.SMS_PER_SECOND * max(numbers, 1), 0.01)


def seconds_between_sends() -> dt.timedelta:
    return dt.timedelta(seconds=1 / sending_rate())


def may_ask_now(*, is_drill: bool) -> bool:
    """Whether a question may go out this second. From the helpline's own number it takes that number's slot, as
    every SMS of the outbox does, and leaves the slot to a staff alert holding the line: sent beside the outbox at
    the number's whole rate, the questions filled Twilio's queue for the number, and an SMS about a critical case
    waited there behind them. It takes turns with the outbox's other messages (every odd second while it waits), so a
    broadcast's backlog does not hold the campaign back until it has all gone. A Messaging Service's numbers are
    the campaign's own; its schedule paces them."""
    if is_drill or settings.WELFARE_MESSAGING_SERVICE_SID:
        return True
    return outbox.take_send_slot(NotificationChannel.SMS, alert=False, takes_turns=True)


def may_call_now(*, is_drill: bool) -> bool:
    """Whether a welfare call may be placed this second: the account's calls a second are shared with the calls to
    staff about critical cases, which come first."""
    return is_drill or outbox.take_send_slot(NotificationChannel.VOICE, alert=False, takes_turns=True)


# The welfare tick runs every second (beat); twice a second's sends covers a tick that spans two seconds.
def questions_a_tick_can_send(limit: int) -> int:
    return limit if settings.WELFARE_MESSAGING_SERVICE_SID else min(limit, 2 * max(settings.SMS_PER_SECOND, 1))


def calls_a_tick_can_place(limit: int) -> int:
    return min(limit, 2 * max(settings.CALLS_PER_SECOND, 1))


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
        return result_of_refused_create(error, what=f"welfare check {check_id}'s call")
    except (TwilioException, OSError) as error:
        return SendResult(ok=False, transient=True, error_code="network", detail=str(error)[:500])
    return SendResult(ok=True, provider_sid=created.sid)
