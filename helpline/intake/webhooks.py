"""Twilio's webhooks for the SOS line: SMS and voice. Each checks Twilio's signature, stores what arrived through a
service, and answers with TwiML at once; Twilio gives up on a webhook after 15 seconds, so nothing here waits
for the broker or for Twilio. When storing fails (the database is away), each spools what arrived and answers as
usual (helpline.intake.spool): a Twilio webhook never gets a 500."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from helpline.cases import intake, selectors
from helpline.cases.language import detect_language, detect_script
from helpline.drill.marker import is_drill_request
from helpline.intake import replies, services, spool, staff_phones
from helpline.intake.spool import spool_on_failure
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


def _sms_body(request: HttpRequest) -> str:
    """The SMS text, at most SMS_MAX_LENGTH characters: Twilio never sends more in one webhook (it joins a long
    SMS up to 1,600), so a longer body was not typed on a phone. Its start is kept, not the whole request refused:
    whatever of it came from a person still reaches a worker."""
    body = _param(request, "Body")
    if len(body) > settings.SMS_MAX_LENGTH:
        logger.warning("signed SMS body of %s characters cut to %s", len(body), settings.SMS_MAX_LENGTH)
        body = body[: settings.SMS_MAX_LENGTH]
    return body


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.POST.get(name, "")
    return int(value) if value.isascii() and value.isdigit() else None


def _twiml(response: MessagingResponse | VoiceResponse) -> HttpResponse:
    return HttpResponse(str(response), content_type="text/xml; charset=utf-8")


def _missing(*names: str) -> HttpResponse:
    return HttpResponseBadRequest("Missing Twilio parameter(s): " + ", ".join(names))


# --- SMS ---------------------------------------------------------------------------------------------------


def _sms_reply(
    kind: str, *, reference: str, is_new_case: bool, language: str, script: str, notice: str = ""
) -> HttpResponse:
    """`notice`: the supervisors' surge notice, after the receipt (the spool's answer, with no database, has none)."""
    if kind == "opt_out":
        text = replies.sms_opt_out_reply(language=language, script=script)
    elif kind == "opt_in":
        text = replies.sms_opt_in_reply(language=language, script=script)
    else:
        text = replies.sms_case_reply(reference=reference, is_new_case=is_new_case, language=language, script=script)
        text = f"{text} {notice}" if notice else text
    response = MessagingResponse()
    response.message(text)
    return _twiml(response)


def _spool_sms(request: HttpRequest) -> HttpResponse:
    """The SMS kept in the spool under a reserved reference, answered as a new case's first SMS would be."""
    body = _sms_body(request)
    message_sid = _param(request, "MessageSid") or f"spooled-{uuid.uuid4()}"
    contact = spool.spool_contact(
        "sms",
        message_sid,
        {
            "message_sid": message_sid, "from_number": _param(request, "From"), "body": body,
            "num_media": _int_param(request, "NumMedia") or 0, "is_drill": is_drill_request(request),
        },
        reference=intake.reserve_spool_reference(),
    )  # fmt: skip
    if staff_phones.was_staff_phone(_param(request, "From")):
        # A staff command (a silent alarm, a check-out, OK): answered by the replay, never with a citizen's
        # receipt, which someone watching a worker's phone on a home visit would read.
        return _twiml(MessagingResponse())
    return _sms_reply(
        intake.sms_kind_of(body), reference=contact.reference, is_new_case=True,
        language=detect_language(body), script=detect_script(body),
    )  # fmt: skip


@twilio_webhook
@spool_on_failure(_spool_sms)
def inbound_sms(request: HttpRequest) -> HttpResponse:
    message_sid, from_number = _param(request, "MessageSid"), _param(request, "From")
    missing = [name for name, value in (("MessageSid", message_sid), ("From", from_number)) if not value]
    if missing:
        return _missing(*missing)
    received = services.receive_sms(
        message_sid=message_sid,
        from_number=from_number,
        body=_sms_body(request),
        num_media=_int_param(request, "NumMedia") or 0,
        is_drill=is_drill_request(request),
    )
    if received.intake is None:
        response = MessagingResponse()
        if received.staff_reply:  # an empty reply (a silent alarm) sends nothing back
            response.message(received.staff_reply)
        return _twiml(response)
    outcome = received.intake
    return _sms_reply(
        outcome.kind, reference=outcome.case.reference if outcome.case else "", is_new_case=outcome.is_new_case,
        language=outcome.language, script=outcome.script,
        notice=services.surge_notice(outcome.script, outcome.language),
    )  # fmt: skip


# --- Voice -------------------------------------------------------------------------------------------------


def _say(response: VoiceResponse | Gather, text: str, language: str) -> None:
    voice = settings.TWILIO_SAY_VOICES.get(language, {})
    response.say(text, language=voice.get("language"), voice=voice.get("voice") or None)


def _absolute(request: HttpRequest, route: str) -> str:
    path = reverse(route)
    return (settings.PUBLIC_BASE_URL + path) if settings.PUBLIC_BASE_URL else request.build_absolute_uri(path)


def _spooled_call(request: HttpRequest) -> spool.SpooledContact:
    """The call as spooled (once per CallSid), with the reference reserved for it."""
    call_sid = _param(request, "CallSid") or f"spooled-{uuid.uuid4()}"
    payload = {"call_sid": call_sid, "from_number": _param(request, "From"), "is_drill": is_drill_request(request)}
    return spool.spool_contact("call", call_sid, payload, reference=intake.reserve_spool_reference())


def _spool_call(request: HttpRequest) -> HttpResponse:
    _spooled_call(request)
    return _twiml(_greeting(request))


@twilio_webhook
@spool_on_failure(_spool_call)
def inbound_call(request: HttpRequest) -> HttpResponse:
    call_sid = _param(request, "CallSid")
    if not call_sid:
        return _missing("CallSid")
    intake.record_incoming_call(
        call_sid=call_sid, from_number=_param(request, "From"), is_drill=is_drill_request(request)
    )
    return _twiml(_greeting(request))


def _greeting(request: HttpRequest) -> VoiceResponse:
    response = VoiceResponse()
    greeting = replies.voice_greeting()
    gather = Gather(num_digits=1, action=_absolute(request, "webhooks:voice-language"), method="POST", timeout=6)
    _say(gather, greeting["bs"], "bs")
    _say(gather, greeting["en"], "en")
    response.append(gather)
    # No key pressed: carry on in Bosnian rather than leave the caller in silence.
    response.redirect(_absolute(request, "webhooks:voice-language"), method="POST")
    return response


def _chosen_language(request: HttpRequest) -> str:
    return "en" if _param(request, "Digits") == "2" else "bs"


def _spool_call_language(request: HttpRequest) -> HttpResponse:
    """Nobody can be rung without the roster: the caller leaves a voicemail, under the call's reserved reference."""
    call = _spooled_call(request)
    language = _chosen_language(request)
    spool.spool_contact("call_language", call.key, {"call_sid": call.key, "language": language})
    return _twiml(_voicemail(request, call.reference, language))


@twilio_webhook
@spool_on_failure(_spool_call_language)
def call_language_chosen(request: HttpRequest) -> HttpResponse:
    call_sid = _param(request, "CallSid")
    if not call_sid:
        return _missing("CallSid")
    language = _chosen_language(request)
    case = intake.record_call_language(call_sid=call_sid, language=language)
    if case is None:
        spooled = spool.spooled("call", call_sid)
        if spooled is not None:
            # The call rang during an outage and waits in the spool: stored as the spool keeps it, so that a drill
            # stays a drill and the case has the reference the caller may already have heard.
            intake.record_incoming_call(**spooled.payload, reserved_reference=spooled.reference)
        else:
            intake.record_incoming_call(
                call_sid=call_sid, from_number=_param(request, "From"), is_drill=is_drill_request(request)
            )
        case = intake.record_call_language(call_sid=call_sid, language=language)
    return _twiml(_connect_or_voicemail(request, case, language, hunt=services.hunt_for(case), attempt=0))


def _connect_or_voicemail(request: HttpRequest, case, language: str, *, hunt: list[int], attempt: int) -> VoiceResponse:
    """Ring the next person in the call's hunt; when nobody is left (or nobody is on duty), take a voicemail. The
    hunt travels in Dial's action URL, so each step rings the next person of the same list."""
    next_to_ring = services.who_to_ring(hunt, attempt)
    response = VoiceResponse()
    if next_to_ring is not None:
        position, staff = next_to_ring
        if attempt == 0:
            _say(response, replies.voice_connecting(language=language), language)
        dial = Dial(
            timeout=settings.VOICE_RING_SECONDS,
            action=_absolute(request, "webhooks:voice-dial-result")
            + f"?attempt={position}&hunt={','.join(map(str, hunt))}",
            method="POST",
            caller_id=settings.TWILIO_PHONE_NUMBER or None,
            answer_on_bridge=True,
        )
        # The whisper asks the worker to press 1, so a voicemail box that picks up never counts as an answer. It
        # names the caller's call: the key press answers that call, not the case (the citizen may call again).
        target = urlencode({"case": case.reference, "staff": staff.pk, "call": _param(request, "CallSid")})
        whisper = _absolute(request, "webhooks:voice-whisper") + f"?{target}"
        dial.number(str(staff.phone), url=whisper, method="POST")
        response.append(dial)
        return response
    return _voicemail(request, case.reference, language, services.crisis_answers_for_callers(language))


def _number_withheld(request: HttpRequest) -> bool:
    return intake.normalise_phone(_param(request, "From")) is None


def _voicemail(
    request: HttpRequest, reference: str, language: str, crisis_answers: Sequence[str] = ()
) -> VoiceResponse:
    """`crisis_answers`: left out on the spool's paths, where the database has just failed: asking it again for
    the events could make the caller wait for its timeout twice."""
    response = VoiceResponse()
    withheld = _number_withheld(request)
    prompt = replies.voice_voicemail_prompt(
        reference=reference, language=language, number_withheld=withheld, crisis_answers=crisis_answers
    )
    _say(response, prompt, language)
    response.record(
        action=_absolute(request, "webhooks:voice-recorded"),
        method="POST",
        max_length=settings.VOICEMAIL_MAX_SECONDS,
        play_beep=True,
        recording_status_callback=_absolute(request, "webhooks:voice-recording"),
        recording_status_callback_method="POST",
        recording_status_callback_event="completed",
    )
    _say(response, replies.voice_goodbye(language=language, number_withheld=withheld), language)
    return response


def _spooled_language(request: HttpRequest) -> str:
    """The language the caller chose, when the choice waits in the spool; Bosnian otherwise (as the greeting)."""
    chosen = spool.spooled("call_language", _param(request, "CallSid"))
    return chosen.payload.get("language", "bs") if chosen is not None else "bs"


def _spool_dial_result(request: HttpRequest) -> HttpResponse:
    return _twiml(_voicemail(request, _spooled_call(request).reference, _spooled_language(request)))


@twilio_webhook
@spool_on_failure(_spool_dial_result)
def dial_result(request: HttpRequest) -> HttpResponse:
    """Dial's action: the person rung has hung up, or never took the call. Done if they pressed 1; otherwise
    ring the next one, and after the last, voicemail."""
    call = selectors.call_message(_param(request, "CallSid"))
    if call is None:
        return _missing("CallSid")
    case = call.case
    if selectors.call_was_answered(call):
        response = VoiceResponse()
        response.hangup()
        return _twiml(response)
    attempt_text = request.GET.get("attempt", "0")
    attempt = int(attempt_text) if attempt_text.isascii() and attempt_text.isdigit() else 0
    hunt = [int(pk) for pk in request.GET.get("hunt", "").split(",") if pk.isascii() and pk.isdigit()]
    if not hunt:  # a URL given before the hunt travelled in it: the list as it stands now
        hunt = services.hunt_for(case)
    return _twiml(_connect_or_voicemail(request, case, case.language, hunt=hunt, attempt=attempt + 1))


def _hunt_target(request: HttpRequest):
    case = selectors.case_by_reference(request.GET.get("case", ""))
    staff_id = request.GET.get("staff", "")
    if not (staff_id.isascii() and staff_id.isdigit()):
        return case, None
    staff = StaffProfile.objects.filter(pk=staff_id).select_related("user").first()
    return case, staff


def _hunted_call(request: HttpRequest, case):
    """The caller's call this worker was rung for. A URL given before the call travelled in it (a deploy during
    the ring) names none: the case's latest call is that one."""
    call = selectors.call_message(request.GET.get("call", "")) if request.GET.get("call") else None
    return call if call is not None and call.case_id == case.pk else selectors.latest_call_on(case)


def _hang_up(request: HttpRequest) -> HttpResponse:
    """The worker's leg, when the case cannot be read: not an answer, so the caller's hunt moves on."""
    response = VoiceResponse()
    response.hangup()
    return _twiml(response)


@twilio_webhook
@spool_on_failure(_hang_up)
def whisper(request: HttpRequest) -> HttpResponse:
    """Played to the worker who picked up, before the caller is connected."""
    case, staff = _hunt_target(request)
    response = VoiceResponse()
    if case is None or staff is None:
        response.hangup()
        return _twiml(response)
    target = urlencode({"case": case.reference, "staff": staff.pk, "call": request.GET.get("call", "")})
    accept_url = _absolute(request, "webhooks:voice-whisper-accept") + f"?{target}"
    gather = Gather(num_digits=1, action=accept_url, method="POST", timeout=8)
    language = settings.LANGUAGE_CODE
    _say(gather, replies.voice_whisper(reference=case.reference, priority=case.priority), language)
    response.append(gather)
    response.hangup()  # no key pressed: not an answer; the caller's hunt moves on
    return _twiml(response)


@twilio_webhook
@spool_on_failure(_hang_up)
def whisper_accept(request: HttpRequest) -> HttpResponse:
    case, staff = _hunt_target(request)
    response = VoiceResponse()
    call = _hunted_call(request, case) if case is not None else None
    if call is None or staff is None or _param(request, "Digits") != "1":
        response.hangup()
        return _twiml(response)
    services.accept_live_call(case, staff, call)
    return _twiml(response)  # an empty response ends the whisper and bridges the two calls


def _spool_voicemail_left(request: HttpRequest) -> None:
    """The voicemail as Record's action reports it, spooled behind its call and ahead of the call's "completed"
    (which Twilio posts before the recording's own callback, and which, replayed first, would call the call
    missed). Under a key of its own: the recording's callback may still bring an address this one lacked."""
    recording_sid, seconds = _param(request, "RecordingSid"), _int_param(request, "RecordingDuration")
    if recording_sid and seconds:
        payload = {
            "call_sid": _param(request, "CallSid"), "recording_sid": recording_sid,
            "recording_url": _param(request, "RecordingUrl"), "seconds": seconds,
        }  # fmt: skip
        spool.spool_contact("voicemail", f"recorded:{recording_sid}", payload)


def _goodbye(request: HttpRequest) -> HttpResponse:
    _spool_voicemail_left(request)
    response = VoiceResponse()
    language = _spooled_language(request)  # a caller who pressed 2 for English hears the goodbye in English
    _say(response, replies.voice_goodbye(language=language, number_withheld=_number_withheld(request)), language)
    response.hangup()
    return _twiml(response)


@twilio_webhook
@spool_on_failure(_goodbye)
def voicemail_recorded(request: HttpRequest) -> HttpResponse:
    """Record's action: the caller finished speaking. The recording is attached here already (its status callback,
    which attaches it too, often comes after the call's "completed", which would have called the call missed)."""
    recording_sid, seconds = _param(request, "RecordingSid"), _int_param(request, "RecordingDuration")
    if recording_sid and seconds:
        attached = intake.attach_voicemail(
            call_sid=_param(request, "CallSid"), recording_sid=recording_sid,
            recording_url=_param(request, "RecordingUrl"), seconds=seconds,
        )  # fmt: skip
        if attached is None and spool.spooled("call", _param(request, "CallSid")) is not None:
            _spool_voicemail_left(request)  # the call waits in the spool: its voicemail waits behind it
    case = selectors.case_for_call(_param(request, "CallSid"))
    # No case: the call still waits in the spool (the database came back during it), and so may its language.
    language = case.language if case is not None else _spooled_language(request)
    response = VoiceResponse()
    _say(response, replies.voice_goodbye(language=language, number_withheld=_number_withheld(request)), language)
    response.hangup()
    return _twiml(response)


def _spool_recording(request: HttpRequest) -> HttpResponse:
    if not _is_a_voicemail(request):
        return HttpResponse(status=204)  # as the live path: kept, it made the missed call look answered
    recording_sid = _param(request, "RecordingSid") or f"spooled-{uuid.uuid4()}"
    payload = {
        "call_sid": _param(request, "CallSid"), "recording_sid": recording_sid,
        "recording_url": _param(request, "RecordingUrl"), "seconds": _int_param(request, "RecordingDuration"),
    }  # fmt: skip
    spool.spool_contact("voicemail", recording_sid, payload)
    return HttpResponse(status=204)


def _is_a_voicemail(request: HttpRequest) -> bool:
    """A finished recording with something in it. The caller who hung up at the tone left nothing to attach: the
    call status callback records the missed call, for a call back."""
    return _param(request, "RecordingStatus") in ("", "completed") and _int_param(request, "RecordingDuration") != 0


@twilio_webhook
@spool_on_failure(_spool_recording)
def voicemail_recording_status(request: HttpRequest) -> HttpResponse:
    call_sid, recording_sid = _param(request, "CallSid"), _param(request, "RecordingSid")
    missing = [name for name, value in (("CallSid", call_sid), ("RecordingSid", recording_sid)) if not value]
    if missing:
        return _missing(*missing)
    if not _is_a_voicemail(request):
        return HttpResponse(status=204)
    seconds = _int_param(request, "RecordingDuration")
    attached = intake.attach_voicemail(
        call_sid=call_sid, recording_sid=recording_sid, recording_url=_param(request, "RecordingUrl"), seconds=seconds
    )
    if attached is None and spool.spooled("call", call_sid) is not None:
        # The call waits in the spool (the database came back before the replay): its voicemail waits behind it,
        # or it was lost, and with a withheld number it was all the caller left.
        return _spool_recording(request)
    return HttpResponse(status=204)


def _spool_call_status(request: HttpRequest) -> HttpResponse:
    call_sid, status = _param(request, "CallSid"), _param(request, "CallStatus")
    payload = {"call_sid": call_sid, "call_status": status, "duration": _int_param(request, "CallDuration")}
    spool.spool_contact("call_status", f"{call_sid}:{status}", payload)
    return HttpResponse(status=204)


@twilio_webhook
@spool_on_failure(_spool_call_status)
def call_status(request: HttpRequest) -> HttpResponse:
    call_sid, status = _param(request, "CallSid"), _param(request, "CallStatus")
    missing = [name for name, value in (("CallSid", call_sid), ("CallStatus", status)) if not value]
    if missing:
        return _missing(*missing)
    recorded = intake.record_call_status(
        call_sid=call_sid, call_status=status, duration=_int_param(request, "CallDuration")
    )
    if recorded is None and spool.spooled("call", call_sid) is not None:
        return _spool_call_status(request)  # behind its call in the spool, as a voicemail is
    return HttpResponse(status=204)
