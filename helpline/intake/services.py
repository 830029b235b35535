"""What intake decides before it stores a contact: is this SMS a staff command or a citizen, which triage queue a
message rides (the quick danger check), and which language a contact is in. Views and webhooks only parse and
answer; the storing itself is helpline.cases.intake."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from helpline.cases import intake
from helpline.cases.compiled_reads import CompiledRead
from helpline.cases.dispatch import CRITICAL_QUEUE
from helpline.cases.encryption import phone_index
from helpline.cases.language import detect_language, in_readers_script
from helpline.cases.models import Case, Message
from helpline.intake import staff_phones
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import on_duty, staff_by_id, staff_ids_with_phone_index, voice_hunt_list
from helpline.visits.services import handle_visit_sms
from helpline.welfare.services import answer_welfare_reply, welfare_business_with_phone_index
from notifications import acknowledgement, crisis, outbox, surge
from notifications.models import NotificationKind, StaffSmsCommand
from triage.services import queue_for_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmsReceived:
    """A citizen's SMS stored (`intake` set), or a staff command answered (`staff_reply` set)."""

    intake: intake.SmsIntake | None = None
    staff_reply: str = ""
    staff: StaffProfile | None = None  # the staff member whose command it was


def receive_sms(
    *, message_sid: str, from_number: str, body: str, num_media: int = 0, is_drill: bool = False,
    reserved_reference: str | None = None,
) -> SmsReceived:
    """A registered staff phone sends commands (OK 4821), never a citizen case; everyone else's SMS is stored.
    `reserved_reference` is the reference a spooled SMS was answered with (see helpline.intake.spool)."""
    staff_phones.keep_up_to_date()  # for the spool, which answers while the database does not
    phone = intake.normalise_phone(from_number)
    staff_id, welfare_business = _who_is_texting(phone, message_sid=message_sid, is_drill=is_drill)
    staff = staff_by_id(staff_id) if staff_id is not None else None
    if staff is not None:
        return SmsReceived(staff_reply=_answer_staff_command(staff, body, message_sid=message_sid), staff=staff)
    if phone is not None and welfare_business:
        # An answer to an open welfare check ("1" safe, "2" help) is matched to the campaign that asked.
        welfare_reply = answer_welfare_reply(
            phone, body, message_sid=message_sid, reserved_reference=reserved_reference
        )
        if welfare_reply is not None:
            remember_answered(message_sid)
            return SmsReceived(staff_reply=welfare_reply)
    stored = intake.record_inbound_sms(
        message_sid=message_sid, from_number=from_number, body=body, num_media=num_media, is_drill=is_drill,
        triage_queue=queue_for_text(body), reserved_reference=reserved_reference,
    )  # fmt: skip
    if stored.case is None:
        remember_answered(message_sid)
    return SmsReceived(intake=stored)


# SMS answered without a message stored under their SID (a welfare "Da" asked again for 1 or 2; STOP or START from
# a number with no open case): remembered, so that the reading of Twilio's log (helpline/intake/recovery.py) does not
# take them for SMS no webhook received and store them again as a citizen's case. In the cache: should it be down,
# such an SMS may be stored once more as a message.
ANSWERED_KEY = "intake:answered-sms:{sid}"
ANSWERED_FOR_SECONDS = 2 * 24 * 3600


def remember_answered(message_sid: str) -> None:
    """Once the transaction it was answered in commits (at once outside one): the recovery of a missed SMS stores
    and answers it in one transaction, and one rolled back must leave it to be tried again, not remembered."""
    if message_sid:
        key = ANSWERED_KEY.format(sid=message_sid)
        transaction.on_commit(lambda: cache.set(key, 1, timeout=ANSWERED_FOR_SECONDS))


def answered_sids(sids: list[str]) -> set[str]:
    found = cache.get_many([ANSWERED_KEY.format(sid=sid) for sid in sids])
    return {key.rsplit(":", 1)[1] for key in found}


def receive_spooled_sms(*, reserved_reference: str, **sms) -> SmsReceived:
    """An SMS the spool kept while the database was away, stored now. A staff command ("SAFE 1234" at the end of
    a home visit, "OK 4821") was answered with nothing then, so that nobody watching the phone read a citizen's
    receipt; its answer goes out now by SMS, once however often the replay runs. A silent alarm's answer is
    nothing, and stays nothing."""
    received = receive_sms(**sms, reserved_reference=reserved_reference)
    if received.staff is not None and received.staff_reply and sms.get("message_sid"):
        outbox.queue_notification(
            key=f"command-reply:{sms['message_sid']}", to_number=str(received.staff.phone or ""),
            body=received.staff_reply, kind=NotificationKind.COMMAND_REPLY, recipient=received.staff.user,
        )  # fmt: skip
    return received


def _answer_staff_command(staff: StaffProfile, body: str, *, message_sid: str) -> str:
    """Run a staff phone's command once per MessageSid: a copy of the same SMS (Twilio's retry, the spool's replay)
    gets the answer the first one got and changes nothing. A command that fails keeps no record, so its retry runs."""
    outbox.phone_receives(staff.user_id)  # it sends, so it works
    if not message_sid:
        return _run_staff_command(staff, body)
    with transaction.atomic():
        # A copy arriving while the first is being answered waits here on the unique key, then reads its answer.
        command, first = StaffSmsCommand.objects.get_or_create(message_sid=message_sid, defaults={"staff": staff})
        if not first:
            return command.reply
        command.reply = _run_staff_command(staff, body)
        command.save(update_fields=["reply"])
        return command.reply


def _run_staff_command(staff: StaffProfile, body: str) -> str:
    # Home-visit commands first (VISIT, SAFE <PIN>, POMOC); "" is the silent alarm: no visible answer.
    visit_reply = handle_visit_sms(staff, body)
    if visit_reply is not None:
        return visit_reply
    return acknowledgement.handle_staff_sms(staff, body)


# Compiled once per process: compiling these two queries cost more CPU than PostgreSQL spent answering them.
_STAFF_WITH_NUMBER = CompiledRead(staff_ids_with_phone_index)
_WELFARE_BUSINESS = CompiledRead(
    lambda index, *message_sid: welfare_business_with_phone_index(index, message_sid=next(iter(message_sid), None))
)


def _who_is_texting(phone: str | None, *, message_sid: str, is_drill: bool) -> tuple[int | None, bool]:
    """The staff member whose registered phone this is (their id), and whether a welfare check may be waiting for
    this SMS, asked in one read: both are asked of every citizen's SMS, and both nearly always say no (two reads
    were a seventh of the webhook's CPU)."""
    if phone is None:
        return None, False
    index = phone_index(phone)
    staff_sql, staff_params = _STAFF_WITH_NUMBER.sql_with_params(index)
    if is_drill:  # a drill's SMS never answers a welfare check
        welfare_sql, welfare_params = "SELECT 1 WHERE 1 = 0", ()
    else:
        welfare_sql, welfare_params = _WELFARE_BUSINESS.sql_with_params(index, *([message_sid] if message_sid else []))
    with connection.cursor() as cursor:  # the ORM's own two queries, asked as one SELECT
        cursor.execute(f"SELECT ({staff_sql}), EXISTS ({welfare_sql})", (*staff_params, *welfare_params))
        staff_id, welfare_business = cursor.fetchone()
    return staff_id, bool(welfare_business)


@dataclass(frozen=True)
class WebInquiryReceived:
    case: Case
    token: str  # the citizen's secret code, shown once
    in_danger: bool  # the quick danger check fired: the answer starts with what to do right now
    is_new: bool = True  # False: a resend of an inquiry stored before (the same idempotency key and words)


def receive_web_inquiry(
    *, message: str, language: str | None = None, is_drill: bool = False, **contact
) -> WebInquiryReceived:
    """The case's language is the language the citizen wrote in, never the language of the page they used; an API
    client may state it explicitly. `contact` may carry an idempotency_key, a spool's reserved_reference and the
    per-address limit the sender passed (over_address_limit)."""
    queue = queue_for_text(message)
    stored = intake.record_web_inquiry(
        message=message, language=language or detect_language(message), is_drill=is_drill, triage_queue=queue,
        **contact,
    )  # fmt: skip
    return WebInquiryReceived(stored.case, stored.token, in_danger=queue == CRITICAL_QUEUE, is_new=stored.is_new)


def receive_follow_up(case: Case, text: str, *, idempotency_key: str | None = None, over_address_limit: str = ""):
    return intake.add_citizen_follow_up(
        case, text, triage_queue=queue_for_text(text), idempotency_key=idempotency_key,
        over_address_limit=over_address_limit,
    )  # fmt: skip


def surge_notice(script: str, language: str = "") -> str:
    """The supervisors' notice for citizens while surge mode is on, in the citizen's language (its English text,
    when given, for those who wrote in English) and script ("" otherwise). Read
    after the contact is stored: a database that fails here leaves out the notice, never the answer (the contact
    would go to the spool a second time and its citizen be given a reference to a copy)."""
    try:
        notice = surge.citizen_notice(language).strip()
    except DatabaseError:
        logger.warning("the surge notice could not be read; answered without it")
        return ""
    except Exception:  # any other fault here too: the contact is stored, and its answer must go out
        logger.exception("the surge notice failed; answered without it")
        return ""
    return in_readers_script(notice, script=script, language=language)


def reads_as_danger(text: str) -> bool:
    """The request path's quick danger check (the critical rules only): whether the citizen's first screen must
    say what to do right now, before anything else."""
    return queue_for_text(text) == CRITICAL_QUEUE


def hunt_for(case: Case) -> list[int]:
    """Whom this live call will ring, in order, fixed when the first person is rung: read again at each step,
    the order would change with every case assigned meanwhile, and the hunt would ring someone twice and skip
    someone else."""
    return [person.pk for person in voice_hunt_list(case, timezone.now())]


# A caller waits through every word: the newest events only, should several be declared at once.
CRISIS_ANSWERS_SPOKEN = 2


def crisis_answers_for_callers(language: str) -> list[str]:
    """What the active crisis events tell citizens, for a caller nobody could take: the newest first, in English
    for a caller who chose English when the supervisor wrote one, else the Latin text (a voice reads it aloud;
    a call has no script). A call is not grouped into an event (there are no words to match), so a caller in a
    flood hears the delay and the help points here or not at all. Nothing when the database cannot say: the
    voicemail in an outage must still be taken."""
    try:
        events = crisis.active_events()
    except DatabaseError:
        logger.warning("could not read the crisis events for a caller's voicemail; said without them")
        return []
    newest = sorted(events, key=lambda event: event.pk, reverse=True)[:CRISIS_ANSWERS_SPOKEN]
    return [(event.answer_english if language == "en" else "").strip() or event.answer.strip() for event in newest]


def who_to_ring(hunt: list[int], attempt: int) -> tuple[int, StaffProfile] | None:
    """From position `attempt` of the call's hunt, the first person still on duty with a phone, with their
    position; None when the hunt is exhausted (voicemail)."""
    reachable = {person.pk: person for person in on_duty(timezone.now()).exclude(phone="").filter(pk__in=hunt)}
    for position in range(attempt, len(hunt)):
        if hunt[position] in reachable:
            return position, reachable[hunt[position]]
    return None


def accept_live_call(case: Case, staff: StaffProfile, call: Message) -> None:
    acknowledgement.accept_call(case, staff, call=call)
