"""Storing what a citizen sent, on every channel: one transaction per contact, triage rung after commit.

Each function stores what arrived (caller, case, message, timeline) in one transaction and rings triage only after
that transaction commits, so a contact is durable before anything else happens and a dead broker loses nothing.
The caller decides the triage queue (the request path's quick danger check lives in triage, a layer above).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import phonenumbers
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from helpline.cases import selectors
from helpline.cases.dispatch import TRIAGE_QUEUE, enqueue_after_commit
from helpline.cases.language import cyrillic_to_latin, detect_language, detect_script
from helpline.cases.models import (
    OPEN_STATUSES,
    ActorKind,
    Caller,
    Case,
    CaseReferenceSequence,
    CaseStatus,
    Channel,
    Direction,
    EventKind,
    Message,
)
from helpline.cases.services import change_case_status, record_event

logger = logging.getLogger(__name__)

TRIAGE_TASK = "helpline.casework.tasks.triage_case"

# Twilio's standard opt-out and opt-in keywords; a citizen may also type them in Cyrillic (СТОП).
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})

# What Twilio puts in From when the caller withheld their number.
WITHHELD_NUMBERS = frozenset({"anonymous", "restricted", "unknown", "+266696687", "+7378742833", "+2562533"})


# --- Shared intake steps -----------------------------------------------------------------------------------


# The table name is our own constant, not input; the year is a bound parameter.
_NEXT_REFERENCE_SQL = (
    "INSERT INTO helpline_casereferencesequence (year, last_number) VALUES (%s, 1) "
    "ON CONFLICT (year) DO UPDATE SET last_number = helpline_casereferencesequence.last_number + 1 "
    "RETURNING last_number"
)
# Years with a PostgreSQL sequence of their own (migration 0006).
SEQUENCE_YEARS = range(2025, 2126)


def next_case_reference() -> str:
    """SOS-2026-00042: the year (local time) and a per-year number. Must run inside a transaction.

    On PostgreSQL the number comes from the year's sequence: no lock, so concurrent intakes never wait for each
    other; a rolled-back intake leaves a gap. Elsewhere a counter row, locked until commit, gives the number.
    """
    year = timezone.localdate().year
    if connection.vendor == "postgresql" and year in SEQUENCE_YEARS:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT nextval('helpline_case_reference_{year:d}')")  # an int, never input
            number = cursor.fetchone()[0]
    elif connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_NEXT_REFERENCE_SQL, [year])
            number = cursor.fetchone()[0]
    else:
        CaseReferenceSequence.objects.get_or_create(year=year)
        CaseReferenceSequence.objects.filter(year=year).update(last_number=F("last_number") + 1)
        number = CaseReferenceSequence.objects.filter(year=year).values_list("last_number", flat=True).get()
    return f"SOS-{year}-{number:05d}"


def normalise_phone(raw: str | None) -> str | None:
    """The number in E.164, or None for a withheld, empty or invalid number (the contact is then anonymous)."""
    if not raw or raw.strip().lower() in WITHHELD_NUMBERS:
        return None
    try:
        parsed = phonenumbers.parse(raw, "BA")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# One statement instead of get_or_create's four (select, savepoint, insert, release); a concurrent first contact
# from the same number simply finds the row. `inserted` is true when this statement created the caller.
_UPSERT_CALLER_SQL = (
    "INSERT INTO helpline_caller (phone, name, has_opted_out, created_at) VALUES (%s, '', false, %s) "
    "ON CONFLICT (phone) DO UPDATE SET phone = EXCLUDED.phone "
    "RETURNING id, phone, name, has_opted_out, created_at, (xmax = 0) AS inserted"
)


def _caller_for(phone_e164: str | None) -> Caller | None:
    """The caller with this number, created if new. On PostgreSQL the caller carries `is_new`: a caller created
    just now can have no open case, so the intake skips looking for one."""
    if phone_e164 is None:
        return None
    if connection.vendor == "postgresql":
        caller = next(iter(Caller.objects.raw(_UPSERT_CALLER_SQL, [phone_e164, timezone.now()])))
        caller.is_new = caller.inserted
        return caller
    caller, created = Caller.objects.get_or_create(phone=phone_e164)
    caller.is_new = created
    return caller


def _create_case(*, channel: str, caller: Caller | None, text: str = "", **fields: Any) -> Case:
    case = Case.objects.create(
        reference=next_case_reference(),
        channel=channel,
        caller=caller,
        triage_requested_at=timezone.now(),
        language=fields.pop("language", None) or detect_language(text),
        script=detect_script(text),
        **fields,
    )
    record_event(
        case,
        EventKind.CREATED,
        actor_kind=ActorKind.CITIZEN,
        channel=channel,
        anonymous=caller is None and not case.contact_phone,
    )
    return case


def _open_or_create_case(*, channel: str, caller: Caller | None, text: str, is_drill: bool) -> tuple[Case, bool]:
    """The caller's open case, locked, or a new one. Anonymous contacts always get a new case."""
    if caller is not None and not getattr(caller, "is_new", False):
        existing = selectors.open_case_for_caller(caller, lock=True, is_drill=is_drill)
        if existing is not None:
            return existing, False
    return _create_case(channel=channel, caller=caller, text=text, is_drill=is_drill), True


def _schedule_triage(case: Case, queue: str = TRIAGE_QUEUE, *, is_new: bool = False) -> None:
    """Ring triage after commit. A message that reads as critical goes on the critical queue, so a surge of
    normal cases never stands in front of it. (A new case was stamped as requested when it was inserted.)"""
    if not is_new:
        Case.objects.filter(pk=case.pk).update(triage_requested_at=timezone.now())
    enqueue_after_commit(TRIAGE_TASK, case.pk, queue=queue)


def _with_retry_on_race(record):
    """Run an intake transaction; a unique-constraint race with a concurrent copy of the same contact is retried.

    Twilio may deliver one webhook twice at once, and one caller may text twice at once: the loser of the race
    sees the winner's rows on the next attempt.
    """
    for attempt in range(3):
        try:
            with transaction.atomic():
                return record()
        except IntegrityError:
            if attempt == 2:
                raise
            logger.info("intake race lost, retrying (attempt %s)", attempt + 1)
    raise AssertionError("unreachable")


# --- SMS ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsIntake:
    """What an inbound SMS did: the case it joined (None for an opt-out with no open case) and what it was."""

    case: Case | None
    kind: str  # "message", "opt_out" or "opt_in"
    language: str
    script: str
    is_new_case: bool = False


def _sms_keyword(body: str) -> str:
    return cyrillic_to_latin(body).strip().strip(".!").upper()


def record_inbound_sms(
    *, message_sid: str, from_number: str, body: str, num_media: int = 0, is_drill: bool = False,
    triage_queue: str = TRIAGE_QUEUE,
) -> SmsIntake:
    """Store an inbound SMS on the sender's open case (or a new one) and schedule triage after commit.

    A MessageSid already stored returns the same outcome without storing anything again.
    """
    keyword = _sms_keyword(body)
    language, script = detect_language(body), detect_script(body)
    queue = triage_queue

    def record() -> SmsIntake:
        already = Message.objects.select_related("case").filter(twilio_sid=message_sid).first()
        if already is not None:
            # Twilio retried: answer exactly as the first time.
            opened_the_case = not already.case.messages.filter(pk__lt=already.pk).exists()
            return SmsIntake(
                already.case, _sms_kind(keyword), already.case.language, already.case.script, opened_the_case
            )
        caller = _caller_for(normalise_phone(from_number))
        if keyword in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS and caller is not None:
            return _record_opt_change(caller, keyword, message_sid, body, language, script)
        case, is_new = _open_or_create_case(channel=Channel.SMS, caller=caller, text=body, is_drill=is_drill)
        message = Message.objects.create(
            case=case, direction=Direction.INBOUND, channel=Channel.SMS, body=body, twilio_sid=message_sid
        )
        if not is_new:
            record_event(
                case, EventKind.MESSAGE_RECEIVED, actor_kind=ActorKind.CITIZEN, message_id=message.pk,
                channel=Channel.SMS, num_media=num_media,
            )  # fmt: skip
        _schedule_triage(case, queue, is_new=is_new)
        return SmsIntake(case, "message", case.language, case.script, is_new_case=is_new)

    outcome = _with_retry_on_race(record)
    if outcome.case is not None:
        logger.info("sms stored on %s (new case: %s)", outcome.case.reference, outcome.is_new_case)
    return outcome


def _sms_kind(keyword: str) -> str:
    if keyword in OPT_OUT_KEYWORDS:
        return "opt_out"
    if keyword in OPT_IN_KEYWORDS:
        return "opt_in"
    return "message"


def _record_opt_change(
    caller: Caller, keyword: str, message_sid: str, body: str, language: str, script: str
) -> SmsIntake:
    opting_out = keyword in OPT_OUT_KEYWORDS
    Caller.objects.filter(pk=caller.pk).update(has_opted_out=opting_out)
    case = selectors.open_case_for_caller(caller, lock=True)
    if case is not None:
        message = Message.objects.create(
            case=case, direction=Direction.INBOUND, channel=Channel.SMS, body=body, twilio_sid=message_sid
        )
        record_event(
            case,
            EventKind.OPTED_OUT if opting_out else EventKind.OPTED_IN,
            actor_kind=ActorKind.CITIZEN,
            message_id=message.pk,
        )
        language, script = case.language, case.script
    return SmsIntake(case, "opt_out" if opting_out else "opt_in", language, script)


# --- Voice -------------------------------------------------------------------------------------------------


def record_incoming_call(*, call_sid: str, from_number: str, is_drill: bool = False) -> Case:
    """Store a call as a message on the caller's open case (or a new case). Idempotent on CallSid."""

    def record() -> Case:
        already = Message.objects.select_related("case").filter(twilio_sid=call_sid).first()
        if already is not None:
            return already.case
        caller = _caller_for(normalise_phone(from_number))
        case, _is_new = _open_or_create_case(channel=Channel.VOICE, caller=caller, text="", is_drill=is_drill)
        message = Message.objects.create(
            case=case, direction=Direction.INBOUND, channel=Channel.VOICE, twilio_sid=call_sid, call_status="ringing"
        )
        record_event(case, EventKind.CALL_RECEIVED, actor_kind=ActorKind.CITIZEN, message_id=message.pk)
        _schedule_triage(case)
        return case

    case = _with_retry_on_race(record)
    logger.info("call stored on %s", case.reference)
    return case


@transaction.atomic
def record_call_language(*, call_sid: str, language: str) -> Case | None:
    """The caller chose a language on the keypad; later prompts and replies use it."""
    message = selectors.call_message(call_sid, lock=True)
    if message is None:
        return None
    case = message.case
    if case.language != language:
        Case.objects.filter(pk=case.pk).update(language=language)
        case.language = language
        record_event(case, EventKind.LANGUAGE_CHOSEN, actor_kind=ActorKind.CITIZEN, language=language)
    return case


@transaction.atomic
def attach_voicemail(*, call_sid: str, recording_sid: str, recording_url: str, seconds: int | None) -> Case | None:
    """Attach a finished voicemail recording to its call. Twilio may report it twice; it is attached once."""
    message = selectors.call_message(call_sid, lock=True)
    if message is None:
        logger.warning("voicemail for a call we never stored; ignored")
        return None
    if message.recording_sid == recording_sid:
        return message.case
    message.recording_sid = recording_sid
    message.recording_url = recording_url
    message.recording_seconds = seconds
    message.save(update_fields=["recording_sid", "recording_url", "recording_seconds"])
    record_event(
        message.case, EventKind.VOICEMAIL_RECEIVED, actor_kind=ActorKind.CITIZEN, message_id=message.pk,
        seconds=seconds,
    )  # fmt: skip
    _schedule_triage(message.case)
    return message.case


# Call statuses after which nobody is on the line any more.
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})


@transaction.atomic
def record_call_status(*, call_sid: str, call_status: str, duration: int | None = None) -> Case | None:
    """Record how a call ended. A call that ended without a voicemail or a staff member is a missed call, and the
    case is marked for a call back (when the number is known)."""
    message = selectors.call_message(call_sid, lock=True)
    if message is None:
        logger.warning("status for a call we never stored; ignored")
        return None
    case = message.case
    if message.call_status in FINAL_CALL_STATUSES:
        return case  # a repeated callback changes nothing
    message.call_status = call_status
    message.save(update_fields=["call_status"])
    if call_status in FINAL_CALL_STATUSES and not message.recording_sid:
        can_call_back = case.caller_id is not None
        if can_call_back and not case.needs_callback:
            Case.objects.filter(pk=case.pk).update(needs_callback=True)
            case.needs_callback = True
        record_event(
            case, EventKind.CALL_MISSED, actor_kind=ActorKind.CITIZEN, message_id=message.pk,
            call_status=call_status, seconds=duration, can_call_back=can_call_back,
        )  # fmt: skip
    return case


# --- Web ---------------------------------------------------------------------------------------------------


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def citizen_token_matches(case: Case, token: str) -> bool:
    return bool(case.citizen_token_hash) and hmac.compare_digest(case.citizen_token_hash, _hash_token(token))


@dataclass(frozen=True)
class WebIntake:
    case: Case
    token: str  # shown to the citizen once; only its hash is stored


def record_web_inquiry(
    *,
    message: str,
    name: str = "",
    phone: str = "",
    email: str = "",
    language: str | None = None,
    safe_to_call: bool | None = None,
    safe_to_text: bool | None = None,
    safe_contact_note: str = "",
    suspected_automated: bool = False,
    is_drill: bool = False,
    triage_queue: str = TRIAGE_QUEUE,
) -> WebIntake:
    """A web inquiry always opens its own case: whoever knows a phone number must not read that person's case.

    The phone given is kept on the case for a call back and for linking repeat contacts, not as the case's caller.
    """
    token = secrets.token_urlsafe(24)
    queue = triage_queue

    def record() -> Case:
        case = _create_case(
            channel=Channel.WEB,
            caller=None,
            text=message,
            language=language,
            contact_name=name,
            contact_phone=phone or "",
            contact_email=email,
            safe_to_call=safe_to_call,
            safe_to_text=safe_to_text,
            safe_contact_note=safe_contact_note,
            suspected_automated=suspected_automated,
            citizen_token_hash=_hash_token(token),
            is_drill=is_drill,
        )
        Message.objects.create(case=case, direction=Direction.INBOUND, channel=Channel.WEB, body=message)
        if suspected_automated:
            record_event(case, EventKind.FLAGGED, reason="hidden form field filled in")
        _schedule_triage(case, queue, is_new=True)
        return case

    case = _with_retry_on_race(record)
    logger.info("web inquiry stored on %s", case.reference)
    return WebIntake(case, token)


def add_citizen_follow_up(case: Case, text: str, *, triage_queue: str = TRIAGE_QUEUE) -> Message:
    """A citizen writes again on their web case; a resolved or closed case is reopened, because they need us."""
    queue = triage_queue
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        message = Message.objects.create(case=locked, direction=Direction.INBOUND, channel=Channel.WEB, body=text)
        record_event(locked, EventKind.MESSAGE_RECEIVED, actor_kind=ActorKind.CITIZEN, message_id=message.pk)
        if locked.status not in OPEN_STATUSES:
            reopen_to = CaseStatus.ASSIGNED if locked.assigned_to_id else CaseStatus.TRIAGED
            change_case_status(
                locked, reopen_to, actor_kind=ActorKind.CITIZEN, reason="The citizen wrote again."
            )
        _schedule_triage(locked, queue)
    return message


