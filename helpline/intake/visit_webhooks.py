"""Calls the service places about a home visit: to the worker ("press 1 if you are safe") and to supervisors
("press 1 to take it"). Twilio asks the staff-call webhook what to say; it hands visit calls here."""
from django.http import HttpRequest, HttpResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

from helpline.intake.webhooks import _absolute, _param, _say, _twiml, twilio_webhook
from helpline.visits import services, texts
from notifications.models import Notification


def is_visit_call(notification: Notification) -> bool:
    return notification.idempotency_key.startswith(services.VISIT_KEY_PREFIX)


def visit_call(request: HttpRequest, notification: Notification) -> HttpResponse:
    """What the called person hears. The worker is never told of an alarm (their call step never runs in one)."""
    visit = services.visit_of_notification(notification)
    response = VoiceResponse()
    if visit is None or not visit.is_open:
        response.hangup()
        return _twiml(response)
    if notification.recipient_id is None:  # a fallback number: the facts, nothing to press
        _say(response, texts.call_to_fallback(visit), "bs")
        response.hangup()
        return _twiml(response)
    is_worker = notification.recipient_id == visit.worker.user_id
    answer = _absolute(request, "visit-webhooks:call-answer") + f"?notification={notification.pk}"
    # The worker proves it is them with the check-out PIN (and #): a 1 is all anyone holding the phone needs.
    with_pin = is_worker and services.has_pins(visit.worker)
    gather = Gather(action=answer, method="POST", timeout=15, **(
        {"finish_on_key": "#", "num_digits": 6} if with_pin else {"num_digits": 1}
    ))  # fmt: skip
    said = texts.call_to_worker_for_pin(visit) if with_pin else texts.call_to_worker(visit)
    _say(gather, said if is_worker else texts.call_to_supervisor(visit), "bs")
    response.append(gather)
    response.hangup()
    return _twiml(response)


@twilio_webhook
def visit_call_answer(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("notification", "")
    notification = Notification.objects.filter(pk=raw).first() if raw.isascii() and raw.isdigit() else None
    response = VoiceResponse()
    digits = _param(request, "Digits")
    visit = services.visit_of_notification(notification) if notification is not None else None
    if visit is not None and notification.recipient_id == visit.worker.user_id and services.has_pins(visit.worker):
        # The check-out PIN confirms and extends; the duress PIN answers the same and raises the alarm.
        if services.confirm_safe_by_call(notification.pk, pin=digits):
            _say(response, texts.safe_confirmed(), "bs")
        else:
            _say(response, texts.wrong_pin(), "bs")
    elif notification is not None and digits == "1":
        if visit is not None and notification.recipient_id == visit.worker.user_id:
            if services.confirm_safe_by_call(notification.pk):
                _say(response, texts.safe_confirmed(), "bs")
        elif services.acknowledged_by_key_press(notification.pk):
            visit.refresh_from_db()
            _say(response, texts.taken_by_you(visit), "bs")
        elif visit is not None:
            visit.refresh_from_db()
            if visit.acknowledged_by_id is not None:  # someone else took it first: say so, never silence
                _say(response, texts.taken_by_someone_else(visit), "bs")
    response.hangup()
    return _twiml(response)
