"""Twilio's webhooks for the SOS line: SMS and voice. Each checks Twilio's signature, stores what arrived through a
service, and answers with TwiML at once; Twilio gives up on a webhook after 15 seconds, so nothing here waits
for the broker or for Twilio."""
from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from helpline.cases import intake, selectors
from helpline.drill.marker import is_drill_request
from helpline.intake import replies, services
from helpline.roster.models import StaffProfile

logger = logging.getLogger(__name__)


def public_url(request: HttpRequest) -> str:
    """The URL Twilio called and signed: PUBLIC_BASE_URL plus path and query (Django may sit behind a proxy)."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + request.get_full_path()
    return request.build_absolute_uri()


def is_signed_by_twilio(request: HttpRequest) -> bool:
    """True only for a valid X-Twilio-Signature. With no auth token configured nothing is valid: fail closed."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.TWILIO_AUTH_TOKEN or not signature:
        return False
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(public_url(request), request.POST, signature)


def twilio_webhook(view):
    """POST only, no CSRF token (Twilio has none), and a 403 with nothing stored unless Twilio signed it."""

    @csrf_exempt
    @require_POST
    @wraps(view)
    def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_signed_by_twilio(request):
            logger.warning("rejected an unsigned or forged webhook on %s", request.path)
            return HttpResponseForbidden("Invalid or missing X-Twilio-Signature.")
        return view(request, *args, **kwargs)

    return checked


def _param(request: HttpRequest, name: str) -> str:
    # PostgreSQL cannot store NUL; nothing a citizen means is lost by dropping it.
    return request.POST.get(name, "").replace("\x00", "")


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.POST.get(name, "")
    return int(value) if value.isdigit() else None


def _twiml(response: MessagingResponse | VoiceResponse) -> HttpResponse:
    return HttpResponse(str(response), content_type="text/xml; charset=utf-8")


def _missing(*names: str) -> HttpResponse:
    return HttpResponseBadRequest("Missing Twilio parameter(s): " + ", ".join(names))


# --- SMS ---------------------------------------------------------------------------------------------------


@twilio_webhook
def inbound_sms(request: HttpRequest) -> HttpResponse:
    message_sid, from_number = _param(request, "MessageSid"), _param(request, "From")
    missing = [name for name, value in (("MessageSid", message_sid), ("From", from_number)) if not value]
    if missing:
        return _missing(*missing)
    received = services.receive_sms(
        message_sid=message_sid,
        from_number=from_number,
        body=_param(request, "Body"),
        num_media=_int_param(request, "NumMedia") or 0,
        is_drill=is_drill_request(request),
    )
    response = MessagingResponse()
    if received.intake is None:
        response.message(received.staff_reply)
        return _twiml(response)
    outcome = received.intake
    if outcome.kind == "opt_out":
        text = replies.sms_opt_out_reply(language=outcome.language, script=outcome.script)
    elif outcome.kind == "opt_in":
        text = replies.sms_opt_in_reply(language=outcome.language, script=outcome.script)
    else:
        text = replies.sms_case_reply(
            reference=outcome.case.reference,
            is_new_case=outcome.is_new_case,
            language=outcome.language,
            script=outcome.script,
        )
    response.message(text)
    return _twiml(response)


# --- Voice -------------------------------------------------------------------------------------------------


def _say(response: VoiceResponse | Gather, text: str, language: str) -> None:
    voice = settings.TWILIO_SAY_VOICES.get(language, {})
    response.say(text, language=voice.get("language"), voice=voice.get("voice") or None)


def _absolute(request: HttpRequest, route: str) -> str:
    path = reverse(route)
    return (settings.PUBLIC_BASE_URL + path) if settings.PUBLIC_BASE_URL else request.build_absolute_uri(path)


@twilio_webhook
def inbound_call(request: HttpRequest) -> HttpResponse:
    call_sid = _param(request, "CallSid")
    if not call_sid:
        return _missing("CallSid")
    intake.record_incoming_call(
        call_sid=call_sid, from_number=_param(request, "From"), is_drill=is_drill_request(request)
    )
    response = VoiceResponse()
    greeting = replies.voice_greeting()
    gather = Gather(num_digits=1, action=_absolute(request, "webhooks:voice-language"), method="POST", timeout=6)
    _say(gather, greeting["bs"], "bs")
    _say(gather, greeting["en"], "en")
    response.append(gather)
    # No key pressed: carry on in Bosnian rather than leave the caller in silence.
    response.redirect(_absolute(request, "webhooks:voice-language"), method="POST")
    return _twiml(response)


@twilio_webhook
def call_language_chosen(request: HttpRequest) -> HttpResponse:
    call_sid = _param(request, "CallSid")
    if not call_sid:
        return _missing("CallSid")
    language = "en" if _param(request, "Digits") == "2" else "bs"
    case = intake.record_call_language(call_sid=call_sid, language=language)
    if case is None:
        case = intake.record_incoming_call(call_sid=call_sid, from_number=_param(request, "From"))
    return _twiml(_connect_or_voicemail(request, case, language, attempt=0))


def _connect_or_voicemail(request: HttpRequest, case, language: str, *, attempt: int) -> VoiceResponse:
    """Ring the next person in the hunt list; when nobody is left (or nobody is on duty), take a voicemail."""
    staff = services.who_to_ring(case, attempt)
    response = VoiceResponse()
    if staff is not None:
        if attempt == 0:
            _say(response, replies.voice_connecting(language=language), language)
        dial = Dial(
            timeout=settings.VOICE_RING_SECONDS,
            action=_absolute(request, "webhooks:voice-dial-result") + f"?attempt={attempt}",
            method="POST",
            caller_id=settings.TWILIO_PHONE_NUMBER or None,
            answer_on_bridge=True,
        )
        # The whisper asks the worker to press 1, so a voicemail box that picks up never counts as an answer.
        whisper = _absolute(request, "webhooks:voice-whisper") + f"?case={case.reference}&staff={staff.pk}"
        dial.number(str(staff.phone), url=whisper, method="POST")
        response.append(dial)
        return response
    _say(response, replies.voice_voicemail_prompt(reference=case.reference, language=language), language)
    response.record(
        action=_absolute(request, "webhooks:voice-recorded"),
        method="POST",
        max_length=settings.VOICEMAIL_MAX_SECONDS,
        play_beep=True,
        recording_status_callback=_absolute(request, "webhooks:voice-recording"),
        recording_status_callback_method="POST",
        recording_status_callback_event="completed",
    )
    _say(response, replies.voice_goodbye(language=language), language)
    return response


@twilio_webhook
def dial_result(request: HttpRequest) -> HttpResponse:
    """Dial's action: the person rung has hung up, or never took the call. Done if they pressed 1; otherwise
    ring the next one, and after the last, voicemail."""
    case = selectors.case_for_call(_param(request, "CallSid"))
    if case is None:
        return _missing("CallSid")
    if services.live_call_was_accepted(case):
        response = VoiceResponse()
        response.hangup()
        return _twiml(response)
    attempt = int(request.GET.get("attempt", "0")) if request.GET.get("attempt", "0").isdigit() else 0
    return _twiml(_connect_or_voicemail(request, case, case.language, attempt=attempt + 1))


def _hunt_target(request: HttpRequest):
    case = selectors.case_by_reference(request.GET.get("case", ""))
    staff_id = request.GET.get("staff", "")
    staff = StaffProfile.objects.filter(pk=staff_id).select_related("user").first() if staff_id.isdigit() else None
    return case, staff


@twilio_webhook
def whisper(request: HttpRequest) -> HttpResponse:
    """Played to the worker who picked up, before the caller is connected."""
    case, staff = _hunt_target(request)
    response = VoiceResponse()
    if case is None or staff is None:
        response.hangup()
        return _twiml(response)
    accept_url = _absolute(request, "webhooks:voice-whisper-accept") + f"?case={case.reference}&staff={staff.pk}"
    gather = Gather(num_digits=1, action=accept_url, method="POST", timeout=8)
    language = settings.LANGUAGE_CODE
    _say(gather, replies.voice_whisper(reference=case.reference, priority=case.priority), language)
    response.append(gather)
    response.hangup()  # no key pressed: not an answer; the caller's hunt moves on
    return _twiml(response)


@twilio_webhook
def whisper_accept(request: HttpRequest) -> HttpResponse:
    case, staff = _hunt_target(request)
    response = VoiceResponse()
    if case is None or staff is None or _param(request, "Digits") != "1":
        response.hangup()
        return _twiml(response)
    services.accept_live_call(case, staff)
    return _twiml(response)  # an empty response ends the whisper and bridges the two calls


@twilio_webhook
def voicemail_recorded(request: HttpRequest) -> HttpResponse:
    """Record's action: the caller finished speaking. The recording itself arrives on the status callback."""
    case = selectors.case_for_call(_param(request, "CallSid"))
    language = case.language if case is not None else "bs"
    response = VoiceResponse()
    _say(response, replies.voice_goodbye(language=language), language)
    response.hangup()
    return _twiml(response)


@twilio_webhook
def voicemail_recording_status(request: HttpRequest) -> HttpResponse:
    call_sid, recording_sid = _param(request, "CallSid"), _param(request, "RecordingSid")
    missing = [name for name, value in (("CallSid", call_sid), ("RecordingSid", recording_sid)) if not value]
    if missing:
        return _missing(*missing)
    if _param(request, "RecordingStatus") not in ("", "completed"):
        return HttpResponse(status=204)
    seconds = _int_param(request, "RecordingDuration")
    if seconds == 0:
        # The caller hung up at the tone: nothing to attach, the call status callback records the missed call.
        return HttpResponse(status=204)
    intake.attach_voicemail(
        call_sid=call_sid, recording_sid=recording_sid, recording_url=_param(request, "RecordingUrl"), seconds=seconds
    )
    return HttpResponse(status=204)


@twilio_webhook
def call_status(request: HttpRequest) -> HttpResponse:
    call_sid, status = _param(request, "CallSid"), _param(request, "CallStatus")
    missing = [name for name, value in (("CallSid", call_sid), ("CallStatus", status)) if not value]
    if missing:
        return _missing(*missing)
    intake.record_call_status(call_sid=call_sid, call_status=status, duration=_int_param(request, "CallDuration"))
    return HttpResponse(status=204)
