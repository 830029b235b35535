"""Twilio's callbacks about what we sent: delivery status of SMS, and the call to a worker about a critical case."""
import logging

from django.http import HttpRequest, HttpResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

from helpline.intake import visit_webhooks
from helpline.intake.spool import spool_on_failure
from helpline.intake.webhooks import _absolute, _missing, _param, _say, _twiml, twilio_webhook
from helpline.welfare import services as welfare_services
from notifications import acknowledgement, outbox, texts
from notifications.models import Notification

logger = logging.getLogger(__name__)


@twilio_webhook
def message_status(request: HttpRequest) -> HttpResponse:
    sid, status = _param(request, "MessageSid"), _param(request, "MessageStatus")
    if not sid or not status:
        return _missing(*[name for name, value in (("MessageSid", sid), ("MessageStatus", status)) if not value])
    token, error_code = _token(request), _param(request, "ErrorCode")
    if token is not None and token < 0:  # a welfare question (welfare/sending.py sends it as -check id)
        welfare_services.record_question_delivery(check_id=-token, provider_sid=sid, status=status,
                                                  error_code=error_code)  # fmt: skip
    else:
        outbox.record_delivery_status(provider_sid=sid, status=status, error_code=error_code, notification_id=token)
    return HttpResponse(status=204)


def _token(request: HttpRequest) -> int | None:
    """What the callback URL we gave Twilio names (`?n=`): a notification, which finds a message or call that
    Twilio took although the worker sending it was killed before it wrote the SID down; or, negative, a welfare
    check's question."""
    raw = request.GET.get("n", "")
    digits = raw.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        return None
    return int(raw)


def _notification(request: HttpRequest) -> Notification | None:
    raw = request.GET.get("notification", "")
    if not (raw.isascii() and raw.isdigit()):
        return None
    return Notification.objects.select_related("case").filter(pk=raw).first()


def _take_it_by_sms(request: HttpRequest) -> HttpResponse:
    """The call's notification cannot be read (the database is away for a moment): the worker hears how to take
    the case by SMS, whose message reached them with its code, rather than Twilio's "application error"."""
    response = VoiceResponse()
    _say(response, texts.staff_call_while_unavailable(), "bs")
    response.hangup()
    return _twiml(response)


@twilio_webhook
@spool_on_failure(_take_it_by_sms)
def staff_call(request: HttpRequest) -> HttpResponse:
    """What a worker hears when called about a critical case: a summary, and press 1 to take it."""
    notification = _notification(request)
    if notification is not None and visit_webhooks.is_visit_call(notification):
        return visit_webhooks.visit_call(request, notification)  # a home visit's alarm, not a case
    response = VoiceResponse()
    if notification is None or notification.case is None:
        response.hangup()
        return _twiml(response)
    if notification.recipient_id is None:  # a fallback number: the facts, nothing to press (no key takes a case)
        _say(response, texts.staff_call_to_fallback(notification.case), "bs")
        response.hangup()
        return _twiml(response)
    accept = _absolute(request, "webhooks:staff-call-accept") + f"?notification={notification.pk}"
    gather = Gather(num_digits=1, action=accept, method="POST", timeout=10)
    _say(gather, texts.staff_call(notification.case), "bs")
    response.append(gather)
    response.hangup()
    return _twiml(response)


@twilio_webhook
@spool_on_failure(_take_it_by_sms)
def staff_call_accept(request: HttpRequest) -> HttpResponse:
    notification = _notification(request)
    response = VoiceResponse()
    if notification is not None and _param(request, "Digits") == "1":
        case = acknowledgement.acknowledged_by_key_press(notification.pk)
        if case is not None and case.assigned_to_id == notification.recipient_id:
            _say(response, texts.acknowledged(case), "bs")
        elif case is not None:  # never silence: they must not believe the case is theirs
            _say(response, texts.taken_by_someone_else(case), "bs")
    response.hangup()
    return _twiml(response)


def _status_not_stored(request: HttpRequest) -> HttpResponse:
    # Twilio does not retry a status callback, so a 503 would keep nothing either; the ladder's steps do not wait
    # for it (an unanswered call is followed by the next step at its due time).
    logger.warning(
        "status %s of the staff call for notification %s not stored (database unavailable)",
        _param(request, "CallStatus") or "-", request.GET.get("n", "-"),
    )
    return HttpResponse(status=204)


@twilio_webhook
@spool_on_failure(_status_not_stored)
def staff_call_status(request: HttpRequest) -> HttpResponse:
    sid, status = _param(request, "CallSid"), _param(request, "CallStatus")
    if not sid or not status:
        return _missing("CallSid", "CallStatus")
    outbox.record_staff_call_outcome(provider_sid=sid, call_status=status, notification_id=_token(request))
    return HttpResponse(status=204)
