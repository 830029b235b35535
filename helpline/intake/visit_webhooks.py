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
    gather = Gather(num_digits=1, action=answer, method="POST", timeout=10)
    _say(gather, texts.call_to_worker(visit) if is_worker else texts.call_to_supervisor(visit), "bs")
    response.append(gather)
    response.hangup()
    return _twiml(response)


@twilio_webhook
def visit_call_answer(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("notification", "")
    notification = Notification.objects.filter(pk=raw).first() if raw.isascii() and raw.isdigit() else None
    response = VoiceResponse()
    if notification is not None and _param(request, "Digits") == "1":
        visit = services.visit_of_notification(notification)
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
