"""Storing what a citizen sent, on every channel: one transaction per contact, triage rung after commit.

Each function stores what arrived (caller, case, message, timeline) in one transaction and rings triage only after
that transaction commits, so a contact is durable before anything else happens and a dead broker loses nothing.
The caller decides the triage queue (the request path's quick danger check lives in triage, a layer above).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import phonenumbers
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.crypto import salted_hmac

from helpline.cases import citizen_code, selectors
from helpline.cases.dispatch import CRITICAL_QUEUE, TRIAGE_QUEUE, enqueue_after_commit
from helpline.cases.encryption import phone_index
from helpline.cases.language import (
    cyrillic_to_latin,
    detect_language,
    detect_script,
    language_evidence,
    script_evidence,
)
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
    GivenReference,
    Message,
)
from helpline.cases.services import change_case_status, limit_contact, record_event, timeline_written_together

logger = logging.getLogger(__name__)

TRIAGE_TASK = "helpline.casework.tasks.triage_case"

# Twilio's standard opt-out and opt-in keywords; a citizen may also type them in Cyrillic (СТОП).
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})

# What Twilio puts in From when the caller withheld their number, or the network gave none: the words spelt on a
# keypad (ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN, UNAVAILABLE). Taken for a number, each joined every stranger
# who called that way into one caller's case.
WITHHELD_NUMBERS = frozenset({
    "anonymous", "restricted", "unknown", "unavailable", "blocked",
    "+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253",
})  # fmt: skip


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


# Letters and digits nobody confuses when reading a reference aloud or copying it (no 0/O, 1/I/L, U).
_SPOOL_REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def reserve_spool_reference() -> str:
    """SOS-2026-S7KX3M: a reference handed out while the database is unreachable, for a contact kept in the spool.

    It needs no database and no coordination between web processes: the "S" keeps it apart from the numbered
    references, and six random characters (about 7 * 10^8 choices) make a clash between spooled contacts
    vanishingly rare; the replay gives a fresh reference in that rare case rather than mix two people's cases.
    """
    suffix = "".join(secrets.choice(_SPOOL_REFERENCE_ALPHABET) for _ in range(6))
    return f"SOS-{timezone.localdate().year}-S{suffix}"


def new_case_reference() -> str | RawSQL:
    """The next reference as `next_case_reference` gives it, or on PostgreSQL the SQL that draws it from the year's
    sequence inside the case's INSERT, which returns it (`models.ReferenceField`). Must run inside a transaction."""
    year = timezone.localdate().year
    if connection.vendor != "postgresql" or year not in SEQUENCE_YEARS:
        return next_case_reference()
    # The same text as next_case_reference: at least five digits, more once a year passes 99,999 cases.
    return RawSQL(  # the prefix and the sequence's name are bound parameters
        "(SELECT %s || CASE WHEN n < 100000 THEN lpad(n::text, 5, '0') ELSE n::text END FROM nextval(%s::regclass) n)",
        [f"SOS-{year:d}-", f"helpline_case_reference_{year:d}"],
    )


def _reference_for_new_case(reserved: str | None) -> str | RawSQL:
    if reserved and not Case.objects.filter(reference=reserved).exists():
        return reserved
    return new_case_reference()


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


# Insert a caller not yet known; never an UPDATE, so intake takes no lock on an existing caller's row (a triage
# worker may be reading it). DO NOTHING covers a caller created outside intake's locks (the admin): no failing
# statement, so the database log never records one with the number in it.
_INSERT_CALLER_SQL = (
    "INSERT INTO helpline_caller (phone, phone_index, name, has_opted_out, created_at) VALUES (%s, %s, '', false, %s) "
    "ON CONFLICT (phone_index) DO NOTHING RETURNING id, phone, phone_index, name, has_opted_out, created_at"
)


_CALLER_SQL = (
    "SELECT id, phone, phone_index, name, has_opted_out, created_at FROM helpline_caller WHERE phone_index = %s"
)


def _lock_id(key: str) -> int:
    # pg_advisory_xact_lock takes a signed 64-bit number; a hash of the key spreads keys over that space.
    return int.from_bytes(hashlib.sha256(b"helpline-intake:" + key.encode()).digest()[:8], "big", signed=True)


def _serialise_contacts_on(key: str) -> None:
    """Hold, until the transaction ends, a lock that every intake of the same number (or the same webhook, or the
    same idempotency key) takes first, and takes alone: such contacts then run one after the other.

    This is what keeps two texts sent 25 ms apart from a new number from deadlocking over the new caller, the
    new case and the one-open-case constraint, and what lets a retried webhook find the first copy's rows instead
    of hitting a unique key. SQLite needs nothing: it serialises writers already (BEGIN IMMEDIATE).
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(key)])


def _caller_for(phone_e164: str | None, *, known_to_be_new: bool = False) -> Caller | None:
    """The caller with this number, created if new; `is_new` tells the intake it need not look for an open case.
    Call it under `_serialise_contacts_on(phone)`, so no other intake is creating the same caller meanwhile.
    `known_to_be_new`: a read under that lock found no caller with this number."""
    if phone_e164 is None:
        return None
    index = phone_index(phone_e164)
    if connection.vendor == "postgresql":
        # Most contacts come from a known number. Read as written SQL, like the insert below: the ORM's building of
        # the query cost twice the read itself, on every SMS and call.
        caller = None if known_to_be_new else next(iter(Caller.objects.raw(_CALLER_SQL, [index])), None)
        if caller is None:
            encrypted_phone = Caller._meta.get_field("phone").get_prep_value(phone_e164)
            inserted = list(Caller.objects.raw(_INSERT_CALLER_SQL, [encrypted_phone, index, timezone.now()]))
            caller = inserted[0] if inserted else Caller.objects.get(phone_index=index)
            caller.is_new = bool(inserted)
            return caller
        caller.is_new = False
        return caller
    caller, created = Caller.objects.get_or_create(phone_index=index, defaults={"phone": phone_e164})
    caller.is_new = created
    return caller


# After the number's lock, one read answers both questions every SMS and call asks: was this webhook stored already
# (a retry), and who is calling. The caller's columns are NULL when the number is new.
_STORED_AND_CALLER_SQL = (
    "SELECT c.id, c.phone, c.phone_index, c.name, c.has_opted_out, c.created_at, "
    "(SELECT m.id FROM helpline_message m WHERE m.twilio_sid = %s ORDER BY m.id LIMIT 1) AS stored_message_id "
    "FROM (SELECT 1) AS one LEFT JOIN helpline_caller c ON c.phone_index = %s"
)


def _stored_contact_and_caller(twilio_sid: str, phone_e164: str | None) -> tuple[Message | None, Caller | None]:
    """The message a retried webhook was stored as (then no caller is needed), else the caller, created if new
    (`_caller_for`). Call it under `_serialise_contacts_on(phone)`, as `_caller_for`."""
    if phone_e164 is None or connection.vendor != "postgresql":
        stored = _stored_contact(twilio_sid)
        return stored, None if stored is not None else _caller_for(phone_e164)
    row = next(iter(Caller.objects.raw(_STORED_AND_CALLER_SQL, [twilio_sid, phone_index(phone_e164)])))
    if row.stored_message_id is not None:
        return Message.objects.select_related("case").filter(pk=row.stored_message_id).first(), None
    if row.pk is None:
        return None, _caller_for(phone_e164, known_to_be_new=True)
    row.is_new = False
    return None, row


def _stored_contact(twilio_sid: str) -> Message | None:
    """The message a Twilio webhook was stored as (with its case), if this is a retry of one already stored.
    Asked for every SMS and call, and nearly always no: a plain read of the id answers that at half the CPU of
    reading the message joined to its case, which only a retry then costs."""
    message_id = Message.objects.filter(twilio_sid=twilio_sid).values_list("pk", flat=True).first()
    if message_id is None:
        return None
    return Message.objects.select_related("case").filter(pk=message_id).first()


def _create_case(
    *, channel: str, caller: Caller | None, text: str = "", reserved_reference: str | None = None, **fields: Any
) -> Case:
    case = Case.objects.create(
        reference=_reference_for_new_case(reserved_reference),
        channel=channel,
        caller=caller,
        triage_requested_at=timezone.now(),
        language=fields.pop("language", None) or detect_language(text),
        script=fields.pop("script", None) or detect_script(text),
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


def follow_the_citizens_words(case: Case, text: str) -> None:
    """A message that joins a case may say what its first did not: the language read from everything the citizen
    has written (a first "Hello" or "2" says nothing, the next sentence does), and the script of the latest text
    with letters enough to tell (a caller who then writes in Cyrillic is answered in Cyrillic)."""
    changes: dict[str, str] = {}
    script = script_evidence(text)
    if script and script != case.script:
        changes["script"] = script
    if language_evidence(text) not in (None, case.language):
        written = case.messages.filter(direction=Direction.INBOUND).values_list("body", flat=True)
        language = language_evidence(" ".join(body for body in written if body))
        if language and language != case.language:
            changes["language"] = language
    if changes:
        Case.objects.filter(pk=case.pk).update(**changes)
        for field, value in changes.items():
            setattr(case, field, value)


def _open_or_create_case(
    *, channel: str, caller: Caller | None, text: str, is_drill: bool, reserved_reference: str | None = None,
    sounds_critical: bool = False, **known: str,
) -> tuple[Case, bool]:
    """The caller's open case, locked, or a new one. Anonymous contacts always get a new case."""
    if caller is not None and not getattr(caller, "is_new", False):
        existing = selectors.open_case_for_caller(caller, lock=True, is_drill=is_drill)
        if existing is not None:
            return existing, False
    case = _create_case(
        channel=channel, caller=caller, text=text, is_drill=is_drill, reserved_reference=reserved_reference,
        sounds_critical=sounds_critical, **known,
    )  # fmt: skip
    return case, True


def _schedule_triage(case: Case, queue: str = TRIAGE_QUEUE, *, is_new: bool = False) -> None:
    """Ring triage after commit. A message that reads as critical goes on the critical queue, so a surge of
    normal cases never stands in front of it. (A new case was stamped as requested when it was inserted.)"""
    if not is_new:
        sounds_critical = {"sounds_critical": True} if queue == CRITICAL_QUEUE else {}
        Case.objects.filter(pk=case.pk).update(triage_requested_at=timezone.now(), **sounds_critical)
    enqueue_after_commit(TRIAGE_TASK, case.pk, queue=queue, on_failure=partial(_doorbell_not_rung, case.pk))


def _doorbell_not_rung(case_id: int) -> None:
    """The broker did not take the triage doorbell (down or frozen): no stamp, so the next sweep rings it at once
    instead of after its grace. After a frozen Redis that grace was most of the time to recover."""
    Case.objects.filter(pk=case_id).update(triage_requested_at=None)


T = TypeVar("T")

# How often an intake transaction is tried before the request gives up (and the surface spools the contact), and
# the pause before each retry: a deadlock victim or a dropped connection usually succeeds at once on the next try,
# and the whole budget stays far below Twilio's 15 s.
INTAKE_ATTEMPTS = 4
_RETRY_PAUSES = (0.02, 0.05, 0.15)


def _store(record: Callable[[], T]) -> T:
    """Run one intake transaction, retrying it on a transient database error: a deadlock, a serialization
    failure, a connection lost (PostgreSQL restarted), or a unique key lost to a writer outside the intake locks.

    Inside a transaction someone else opened there is nothing to retry: that transaction is already lost.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            return record()
    for attempt in range(1, INTAKE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return record()
        except (OperationalError, InterfaceError, IntegrityError) as error:
            if attempt == INTAKE_ATTEMPTS:
                raise
            # The class and SQLSTATE only: the error's text can quote a citizen's number or message.
            logger.warning(
                "intake transaction failed (%s %s), retrying (attempt %s of %s)",
                type(error).__name__, getattr(error.__cause__, "sqlstate", None) or "", attempt + 1, INTAKE_ATTEMPTS,
            )  # fmt: skip
            _drop_broken_connection()
            time.sleep(_RETRY_PAUSES[attempt - 1] * (1 + random.random()))  # noqa: S311 (jitter, not a secret)
    raise AssertionError("unreachable")


def _drop_broken_connection() -> None:
    """A connection PostgreSQL closed (a restart) stays broken; closing it makes the next query reconnect."""
    if connection.connection is None:
        return
    try:
        usable = connection.is_usable()
    except Exception:  # asking a dead connection fails too
        usable = False
    if not usable:
        try:
            connection.close()
        except Exception:  # close() forgets the connection even when closing it fails
            logger.info("closed a broken database connection")


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
    triage_queue: str = TRIAGE_QUEUE, reserved_reference: str | None = None, known_language: str = "",
    known_script: str = "",
) -> SmsIntake:
    """Store an inbound SMS on the sender's open case (or a new one) and schedule triage after commit.

    A MessageSid already stored returns the same outcome without storing anything again. A spooled SMS brings the
    reference it was answered with: a new case takes it, and a case it joins records it on the timeline.
    `known_language` and `known_script` (a register's, for a welfare answer) are a new case's when the text
    ("2") cannot tell; a message joining a case may correct its language and script (follow_the_citizens_words).
    """
    keyword = _sms_keyword(body)
    language, script = detect_language(body), detect_script(body)
    queue = triage_queue
    phone = normalise_phone(from_number)

    def record() -> SmsIntake:
        # Copies of one webhook come from one number, so the number's lock serialises them too.
        _serialise_contacts_on(f"phone:{phone}" if phone else f"sid:{message_sid}")
        already, caller = _stored_contact_and_caller(message_sid, phone)
        if already is not None:
            _answered_with(reserved_reference, already.case)  # a retry spooled in an outage had a reference too
            # Twilio retried: answer exactly as the first time.
            opened_the_case = not already.case.messages.filter(pk__lt=already.pk).exists()
            return SmsIntake(
                already.case, _sms_kind(keyword), already.case.language, already.case.script, opened_the_case
            )
        # STOP always stops. START or YES only means "send to me again" from someone who had stopped: from anyone
        # else it is an answer ("Yes, you can call now") and is stored, triaged and passed on like any message.
        opting_in = keyword in OPT_IN_KEYWORDS and caller is not None and caller.has_opted_out
        if (keyword in OPT_OUT_KEYWORDS and caller is not None) or opting_in:
            return _record_opt_change(caller, keyword, message_sid, body, language, script)
        known = {"language": language_evidence(body) or known_language, "script": script_evidence(body) or known_script}
        case, is_new = _open_or_create_case(
            channel=Channel.SMS, caller=caller, text=body, is_drill=is_drill, reserved_reference=reserved_reference,
            sounds_critical=queue == CRITICAL_QUEUE, **{field: value for field, value in known.items() if value},
        )  # fmt: skip
        message = Message.objects.create(
            case=case, direction=Direction.INBOUND, channel=Channel.SMS, body=body, twilio_sid=message_sid
        )
        if not is_new:
            record_event(
                case, EventKind.MESSAGE_RECEIVED, actor_kind=ActorKind.CITIZEN, message_id=message.pk,
                channel=Channel.SMS, num_media=num_media, **_answered_with(reserved_reference, case),
            )  # fmt: skip
            follow_the_citizens_words(case, body)
        _schedule_triage(case, queue, is_new=is_new)
        return SmsIntake(case, "message", case.language, case.script, is_new_case=is_new)

    outcome = _store(record)
    if outcome.case is not None:
        logger.info("sms stored on %s (new case: %s)", outcome.case.reference, outcome.is_new_case)
    return outcome


def _answered_with(reserved_reference: str | None, case: Case) -> dict[str, str]:
    """A spooled contact that joined a case with another reference was answered with the reserved one: it is kept
    as another name of the case (citizens quote it), and the timeline says so."""
    if reserved_reference and reserved_reference != case.reference:
        GivenReference.objects.get_or_create(reference=reserved_reference, defaults={"case": case})
        return {"answered_with_reference": reserved_reference}
    return {}


def sms_kind_of(body: str) -> str:
    """"opt_out", "opt_in" or "message": what an SMS is, read from its text alone (no database needed)."""
    return _sms_kind(_sms_keyword(body))


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
    # The case row first, then the caller's: the order triage and the console lock them in.
    case = selectors.open_case_for_caller(caller, lock=True)
    Caller.objects.filter(pk=caller.pk).update(has_opted_out=opting_out)
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
    else:
        # "STOP" says nothing of its writer's language: with no open case (usually it comes after one was
        # resolved), the caller's latest case tells, else it is Bosnian in Latin.
        latest = Case.objects.filter(caller=caller).order_by("-created_at").values("language", "script").first()
        if latest is not None:
            language, script = latest["language"], latest["script"]
    return SmsIntake(case, "opt_out" if opting_out else "opt_in", language, script)


def date_contact_as_received(sid: str | None, came_at: dt.datetime) -> None:
    """An SMS or call stored late (from the spool) takes the time it came in; so does its case, when it opened it."""
    message = Message.objects.filter(twilio_sid=sid).only("pk", "case_id", "created_at").first() if sid else None
    if message is not None:
        _date_as_received(message, came_at)


def date_inquiry_as_received(idempotency_key: str, came_at: dt.datetime) -> None:
    message = (
        Message.objects.filter(case__idempotency_key=idempotency_key, direction=Direction.INBOUND)
        .only("pk", "case_id", "created_at").order_by("pk").first()
    )  # fmt: skip
    if message is not None:
        _date_as_received(message, came_at)


def _date_as_received(message: Message, came_at: dt.datetime) -> None:
    if message.created_at <= came_at:
        return  # stored before the outage (a copy of a contact the database had taken)
    Message.objects.filter(pk=message.pk).update(created_at=came_at)
    opened_its_case = not Message.objects.filter(case_id=message.case_id, pk__lt=message.pk).exists()
    if opened_its_case:
        Case.objects.filter(pk=message.case_id, created_at__gt=came_at).update(created_at=came_at)


# --- Voice -------------------------------------------------------------------------------------------------


def record_incoming_call(
    *, call_sid: str, from_number: str, is_drill: bool = False, reserved_reference: str | None = None,
    known_language: str = "", known_script: str = "",
) -> Case:
    """Store a call as a message on the caller's open case (or a new case). Idempotent on CallSid. A new case takes
    `known_language` and `known_script` when given (a welfare register's: a call has no words to read them from)."""
    phone = normalise_phone(from_number)

    def record() -> Case:
        _serialise_contacts_on(f"phone:{phone}" if phone else f"sid:{call_sid}")
        already, caller = _stored_contact_and_caller(call_sid, phone)
        if already is not None:
            _answered_with(reserved_reference, already.case)  # the caller may have heard a reserved reference
            return already.case
        known = {field: value for field, value in (("language", known_language), ("script", known_script)) if value}
        # A new case's "created" and "call received" go in one INSERT (nothing here reads them back).
        with timeline_written_together():
            case, is_new = _open_or_create_case(
                channel=Channel.VOICE, caller=caller, text="", is_drill=is_drill, reserved_reference=reserved_reference,
                **known,
            )  # fmt: skip
            message = Message.objects.create(
                case=case, direction=Direction.INBOUND, channel=Channel.VOICE, twilio_sid=call_sid,
                call_status="ringing",
            )  # fmt: skip
            record_event(
                case, EventKind.CALL_RECEIVED, actor_kind=ActorKind.CITIZEN, message_id=message.pk,
                **_answered_with(reserved_reference, case),
            )  # fmt: skip
        _schedule_triage(case, is_new=is_new)
        return case

    case = _store(record)
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
    """Attach a finished voicemail recording to its call. Twilio may report it twice; it is attached once. The
    first report may come without the recording's address (the Record action's, before Twilio stored it): a later
    one that has it fills it in, or the console could never play the voicemail."""
    message = selectors.call_message(call_sid, lock=True)
    if message is None:
        logger.warning("voicemail for a call we never stored; ignored")
        return None
    if message.recording_sid == recording_sid:
        if recording_url and not message.recording_url:
            message.recording_url = recording_url
            message.recording_seconds = message.recording_seconds or seconds
            message.save(update_fields=["recording_url", "recording_seconds"])
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


# How a case taken by pressing 1 on a live call says so on its timeline (the acknowledgement's "via").
LIVE_CALL = "live call"
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
    if call_status in FINAL_CALL_STATUSES and not message.recording_sid and not selectors.call_was_answered(message):
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
    """The code as the citizen typed it: in any case, with or without spaces and dashes. A code handed out before
    codes were readable (a case-sensitive token) still opens its case exactly as it was given."""
    if not case.citizen_token_hash:
        return False
    readable = hmac.compare_digest(case.citizen_token_hash, _hash_token(citizen_code.normalise_code(token)))
    return readable or hmac.compare_digest(case.citizen_token_hash, _hash_token(token.strip()))


@dataclass(frozen=True)
class WebIntake:
    case: Case
    token: str  # shown to the citizen once; only its hash is stored
    is_new: bool = True  # False: a resend of an inquiry already stored under its idempotency key


class IdempotencyKeyReused(Exception):
    """The idempotency key already names another inquiry, with another message: not a retry of this one."""


def token_for_idempotency_key(key: str) -> str:
    """The secret code of the inquiry sent with this idempotency key. Derived (with SECRET_KEY), not stored, so a
    retried submission is answered with the same code as the first, and a spooled inquiry keeps the code its
    citizen was shown."""
    digest = salted_hmac("helpline.cases.intake.web-inquiry-token", key, algorithm="sha256").digest()
    return citizen_code.code_from_bytes(digest)


def _first_inbound_text(case: Case) -> str:
    first = case.messages.filter(direction=Direction.INBOUND).order_by("pk").first()
    return first.body if first else ""


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
    over_address_limit: str = "",
    is_drill: bool = False,
    triage_queue: str = TRIAGE_QUEUE,
    idempotency_key: str | None = None,
    reserved_reference: str | None = None,
    citizen_token: str | None = None,
) -> WebIntake:
    """A web inquiry always opens its own case: whoever knows a phone number must not read that person's case.

    The phone given is kept on the case for a call back and for linking repeat contacts, not as the case's caller.
    With an idempotency key, a retry (the same key and the same message) returns the first inquiry's case and
    code, and applies what the resend says that makes contacting the citizen safer (`limit_contact`: a No to calls
    pressed after the first Send); the same key with another message raises IdempotencyKeyReused.
    `over_address_limit` names the per-address limit the sender passed: the inquiry is stored all the same and
    marked so, apart from `suspected_automated` (the hidden trap field), because a shared address sends real
    messages over the limit.
    `citizen_token`: the code the citizen was already given (a spooled inquiry's), when not the key's own.
    """
    if citizen_token:
        token = citizen_token
    else:
        token = token_for_idempotency_key(idempotency_key) if idempotency_key else citizen_code.new_code()
    queue = triage_queue
    found_stored = False

    def record() -> Case:
        nonlocal found_stored
        if idempotency_key:
            _serialise_contacts_on(f"idempotency:{idempotency_key}")
            already = Case.objects.filter(idempotency_key=idempotency_key).first()
            if already is not None:
                if _first_inbound_text(already) != message:
                    raise IdempotencyKeyReused(idempotency_key)
                # A resend spooled in an outage was answered with a reference of its own: it opens this case too.
                _answered_with(reserved_reference, already)
                locked = Case.objects.for_change().get(pk=already.pk)
                limit_contact(
                    locked, safe_to_call=safe_to_call, safe_to_text=safe_to_text, safe_contact_note=safe_contact_note
                )
                found_stored = True
                return locked
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
            over_address_limit=bool(over_address_limit),
            citizen_token_hash=_hash_token(citizen_code.normalise_code(token)),
            is_drill=is_drill,
            idempotency_key=idempotency_key or None,
            reserved_reference=reserved_reference,
            sounds_critical=queue == CRITICAL_QUEUE,
        )
        Message.objects.create(case=case, direction=Direction.INBOUND, channel=Channel.WEB, body=message)
        if suspected_automated:
            record_event(case, EventKind.FLAGGED, reason="hidden form field filled in")
        if over_address_limit:
            record_event(case, EventKind.FLAGGED, reason="over the per-address limit", limit=over_address_limit)
        _schedule_triage(case, queue, is_new=True)
        return case

    case = _store(record)
    logger.info("web inquiry %s on %s", "found again" if found_stored else "stored", case.reference)
    return WebIntake(case, token, is_new=not found_stored)


def add_citizen_follow_up(
    case: Case, text: str, *, triage_queue: str = TRIAGE_QUEUE, idempotency_key: str | None = None,
    over_address_limit: str = "",
) -> Message:
    """A citizen writes again on their web case; a resolved or closed case is reopened, because they need us.
    With an idempotency key, a retry of the same follow-up returns the message stored the first time. Over a
    per-address limit the follow-up is stored all the same, and flagged on the timeline."""
    queue = triage_queue

    def record() -> Message:
        locked = Case.objects.for_change().get(pk=case.pk)
        if idempotency_key:
            # Other words under the same key (the page sent again after an edit) are a message of their own, not
            # a retry answered "sent" while the new words were dropped.
            earlier = locked.timeline.filter(kind=EventKind.MESSAGE_RECEIVED, details__idempotency_key=idempotency_key)
            for event in earlier.order_by("id"):
                stored = Message.objects.get(pk=event.details["message_id"])
                if stored.body == text:
                    return stored
        message = Message.objects.create(case=locked, direction=Direction.INBOUND, channel=Channel.WEB, body=text)
        follow_the_citizens_words(locked, text)
        record_event(
            locked, EventKind.MESSAGE_RECEIVED, actor_kind=ActorKind.CITIZEN, message_id=message.pk,
            **({"idempotency_key": idempotency_key} if idempotency_key else {}),
        )  # fmt: skip
        if over_address_limit:
            record_event(
                locked, EventKind.FLAGGED, reason="over the per-address limit", limit=over_address_limit,
                message_id=message.pk,
            )  # fmt: skip
        if locked.status not in OPEN_STATUSES:
            reopen_to = CaseStatus.ASSIGNED if locked.assigned_to_id else CaseStatus.TRIAGED
            change_case_status(
                locked, reopen_to, actor_kind=ActorKind.CITIZEN, reason="The citizen wrote again."
            )
        _schedule_triage(locked, queue)
        return message

    return _store(record)
