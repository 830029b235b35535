"""The welfare call's TwiML: the campaign's question spoken, a key press (1 safe, 2 help), and the call's final
status (a number that does not exist marks the register entry for correction). The check travels in the URL."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from twilio.twiml.voice_response import Gather, VoiceResponse

from helpline.intake.webhooks import _absolute, _missing, _param, _say, _twiml, twilio_webhook
from helpline.welfare import selectors, services

app_name = "welfare-webhooks"


def _whole_number(raw: str, *, default: int) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() else default


def _check_id(request: HttpRequest) -> int | None:
    raw = request.GET.get("check", "")
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _ask(request: HttpRequest, check_id: int, *, attempt: int) -> VoiceResponse:
    response = VoiceResponse()
    spoken = selectors.spoken_question(check_id)
    if spoken is None:
        response.hangup()
        return response
    text, language = spoken
    answer = _absolute(request, "welfare-webhooks:answer") + f"?check={check_id}&attempt={attempt}"
    gather = Gather(num_digits=1, action=answer, method="POST", timeout=8)
    _say(gather, text, language)
    response.append(gather)
    if attempt < 2:  # nothing pressed: ask once more, then leave it to the visit
        response.redirect(_absolute(request, "welfare-webhooks:call") + f"?check={check_id}&attempt={attempt + 1}")
    return response


@twilio_webhook
def welfare_call(request: HttpRequest) -> HttpResponse:
    check_id = _check_id(request)
    attempt = _whole_number(request.GET.get("attempt", "1"), default=1)
    if check_id is None:
        return _twiml(VoiceResponse())
    return _twiml(_ask(request, check_id, attempt=attempt))


@twilio_webhook
def welfare_call_answer(request: HttpRequest) -> HttpResponse:
    check_id, call_sid = _check_id(request), _param(request, "CallSid")
    if check_id is None or not call_sid:
        return _missing("check", "CallSid")
    said = services.record_key_press(check_id, _param(request, "Digits"), call_sid=call_sid)
    if said is None:  # another key: the question again
        attempt = request.GET.get("attempt", "1")
        return _twiml(_ask(request, check_id, attempt=_whole_number(attempt, default=1) + 1))
    response = VoiceResponse()
    spoken = selectors.spoken_question(check_id)
    _say(response, said, spoken[1] if spoken else "bs")
    response.hangup()
    return _twiml(response)


@twilio_webhook
def welfare_call_status(request: HttpRequest) -> HttpResponse:
    check_id, status = _check_id(request), _param(request, "CallStatus")
    if check_id is None or not status:
        return _missing("check", "CallStatus")
    services.record_call_outcome(check_id, status)
    return HttpResponse(status=204)


urlpatterns = [
    path("call/", welfare_call, name="call"),
    path("call/answer/", welfare_call_answer, name="answer"),
    path("call/status/", welfare_call_status, name="status"),
]
