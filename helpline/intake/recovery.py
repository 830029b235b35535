"""Contacts our webhooks never received, found in Twilio's log and stored as if they had arrived.

While the web is down (a failed deploy, an expired certificate, the host unreachable, gunicorn dead), Twilio still
takes every SMS and call to our numbers and lists them. Nothing a citizen sends may be lost: every minute the worker
asks Twilio for what reached the SOS number (and the SMS to every number we send from, which staff and the people a
welfare campaign asked answer: `TwilioBackend.sms_numbers_we_answer_on`) since its last look, and any SMS or
call whose SID we do not know is stored now through the same intake the webhook uses. The citizen, who heard or read
nothing from us, gets the answer the webhook would have given, by SMS; a call nobody answered becomes a missed call
to call back. A call we stored whose final status never reached us (a lost status callback) is settled too. A
webhook that was only slow, past Twilio's 15 s, still stores its contact, but Twilio drops its answer: the errors
Twilio's debugger lists for our SMS webhook name those SMS, and their receipts (or a staff command's answer) go out
by SMS too.

Only contacts older than RECOVERY_GRACE are looked at (a webhook may still be on its way, or in the spool). Each look
starts where the last one ended, or at the oldest contact it had to leave for later (a call still going on), less
RECOVERY_OVERLAP for clocks that disagree; that point is kept in the cache. A contact that fails to store is kept in
the spool (helpline/intake/spool.py), whose replay tries it again every few seconds for as long as it takes, and
answers it as a look would have; /healthz/ counts it meanwhile. Before, the next look tried it again until it fell
out of the window, a day on, and was then dropped with an ERROR in the log as its only trace. With
no last look (the first run, the cache emptied), the look goes back to the newest contact we stored before it, at
most RECOVERY_LOOKBACK: that is how far an outage of the web can have gone unnoticed; with nothing stored yet,
FIRST_LOOK (a new deployment on a number that had another service before imports at most its last quarter of an hour).

What a look costs: two or three list requests to Twilio when the numbers are quiet (and one for each Messaging
Service's pool); in a surge, every contact of the window (about three minutes: 30,000 at 10,000 a minute, 150 pages
of 200), and one read of their SIDs in the database.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from helpline.cases import intake
from helpline.cases.intake import FINAL_CALL_STATUSES
from helpline.cases.models import Case, Direction, Message
from helpline.intake import replies, services, spool
from helpline.roster.models import StaffProfile
from helpline.welfare.models import WelfareCheck
from notifications.backends import FailedWebhook, InboundContact, TwilioBackend, get_backend
from notifications.models import Notification, NotificationKind, StaffSmsCommand
from notifications.outbox import queue_notification

logger = logging.getLogger(__name__)

RECOVERY_GRACE = dt.timedelta(minutes=2)
RECOVERY_OVERLAP = dt.timedelta(minutes=1)
RECOVERY_LOOKBACK = dt.timedelta(hours=24)
# With no last look and nothing stored yet: a fresh deployment looks back this far, not a day.
FIRST_LOOK = dt.timedelta(minutes=15)
LAST_LOOK_KEY = "intake:recovery:looked-until"


@dataclass(frozen=True)
class Recovery:
    listed: int  # SMS and calls Twilio listed in the window
    stored_sms: int  # SMS no webhook of ours had received, stored now
    stored_calls: int  # calls likewise, each a missed call
    settled_calls: int  # calls we had, whose final status never reached us
    answered_late: int = 0  # SMS stored by a webhook Twilio gave up on, whose answer went out by SMS now


def recover_missed_contacts(now: dt.datetime | None = None) -> Recovery | None:
    """Look once (see the module); None when there is nowhere to look (not on Twilio) or Twilio cannot be asked."""
    backend = get_backend()
    if not isinstance(backend, TwilioBackend) or not settings.TWILIO_PHONE_NUMBER:
        return None
    now = now or timezone.now()
    since = _since(now)
    until = now - RECOVERY_GRACE
    try:
        listed = [contact for contact in backend.inbound_since(since, until) if contact.created <= until]
    except SoftTimeLimitExceeded:
        raise
    except Exception as error:  # Twilio down, refusing, or unreachable: the next look covers this one's window
        logger.warning("could not ask Twilio for contacts our webhooks missed (%s); the next look tries again",
                       type(error).__name__)  # fmt: skip
        return None
    listed.sort(key=lambda contact: contact.created)  # as they came: an SMS, then the same person's call
    known = _known_sids([contact.sid for contact in listed])
    stored_sms = stored_calls = settled_calls = 0
    # The next look starts here: no later than any contact this look had to leave for later, so that a long call
    # or a contact that failed to store is listed again (everything after it too, which costs reading only: what
    # was stored is known).
    next_since = until
    for contact in listed:
        try:
            if contact.kind == "sms":
                if contact.sid not in known:
                    _recover_sms(contact)
                    stored_sms += 1
                continue
            # A call still going on, or ended within the grace (its voicemail or final status may be on the way).
            # A call nobody answered (busy, no-answer, canceled, failed) has no end time at Twilio: its start counts.
            if contact.status not in FINAL_CALL_STATUSES or (contact.ended or contact.created) > until:
                next_since = min(next_since, contact.created)
                continue
            status_known = known.get(contact.sid)
            if status_known is None:
                _recover_call(contact)
                stored_calls += 1
            elif status_known not in (*FINAL_CALL_STATUSES, SPOOLED):
                intake.record_call_status(call_sid=contact.sid, call_status=contact.status, duration=contact.duration)
                settled_calls += 1
                logger.warning("call status recovered from Twilio's log: %s (its status callback never came)",
                               contact.status)  # fmt: skip
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # one contact that fails must not keep the others from being stored
            logger.exception("could not store a %s found in Twilio's log", contact.kind)
            if not _keep_for_the_replay(contact, settling=contact.sid in known):
                next_since = min(next_since, contact.created)
    # Kept as the last look's end; the next look starts RECOVERY_OVERLAP before it.
    cache.set(LAST_LOOK_KEY, next_since.isoformat(), timeout=None)
    answered = _answer_what_failed_webhooks_left_unanswered(backend, since, now)
    return Recovery(len(listed), stored_sms, stored_calls, settled_calls, answered)


# Twilio's debugger writes its alert about a failed webhook after a delay (it buffers them): each read of the alerts
# starts this long before the last one that succeeded ended. What was answered already is known by its key: read
# twice, an alert sends nothing twice. (In a surge whose webhooks time out by the thousand, a look reads its minute and
# these three again: about 200 pages at 10,000 a minute.)
ALERTS_OVERLAP = dt.timedelta(minutes=3)
ALERTS_LOOKED_KEY = "intake:recovery:alerts-looked-until"


def _answer_what_failed_webhooks_left_unanswered(backend: TwilioBackend, since: dt.datetime, now: dt.datetime) -> int:
    """An SMS our webhook stored, but whose answer Twilio never got (the webhook took longer than Twilio's 15 s in a
    surge, or failed after storing it): its citizen read no reference and no emergency numbers, and a staff
    command's sender no answer. Twilio's debugger lists such requests; their answers go out now by SMS, once, under
    the keys a contact no webhook received is answered under (so one both missed and listed there is answered
    once). Returns how many. Alerts are read from where the last read that succeeded ended (less ALERTS_OVERLAP),
    however long the Monitor API was down while the contacts' looks went on, but at most RECOVERY_LOOKBACK back, as
    far as a look at the contacts reads; with no last read, from the contacts' look."""
    looked = cache.get(ALERTS_LOOKED_KEY)
    start = max(now - RECOVERY_LOOKBACK, dt.datetime.fromisoformat(looked)) if looked else since
    try:
        failed = backend.failed_webhooks_since(start - ALERTS_OVERLAP, now)
    except SoftTimeLimitExceeded:
        raise
    except Exception as error:  # Twilio down or refusing: the next look reads these alerts again
        logger.warning("could not ask Twilio which webhooks failed (%s)", type(error).__name__)
        return 0
    answered = _answer_failed(failed)
    cache.set(ALERTS_LOOKED_KEY, now.isoformat(), timeout=None)
    return answered


def _answer_failed(failed: list[FailedWebhook]) -> int:
    sms_path = reverse("webhooks:sms")
    sids = {webhook.sid for webhook in failed if urlsplit(webhook.url).path == sms_path}
    if not sids:
        return 0
    keys = [f"{prefix}:{sid}" for sid in sids for prefix in (RECEIPT_KEY, COMMAND_REPLY_KEY)]
    sent = set(Notification.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True))
    answered = 0
    stored = Message.objects.filter(twilio_sid__in=sids, direction=Direction.INBOUND, case__isnull=False)
    for message in stored.select_related("case__caller"):
        if f"{RECEIPT_KEY}:{message.twilio_sid}" in sent or intake.sms_kind_of(message.body) != "message":
            continue  # answered already; or STOP and START, which Twilio answers itself
        case = message.case
        is_new_case = not case.messages.filter(direction=Direction.INBOUND, pk__lt=message.pk).exists()
        _send_receipt(message.twilio_sid, str(case.caller.phone if case.caller else ""), case, is_new_case=is_new_case,
                      language=case.language, script=case.script)  # fmt: skip
        answered += 1
    for command in StaffSmsCommand.objects.filter(message_sid__in=sids).exclude(reply="").select_related("staff"):
        if f"{COMMAND_REPLY_KEY}:{command.message_sid}" in sent:
            continue
        _send_command_reply(command.message_sid, command.staff, command.reply)
        answered += 1
    if answered:
        logger.warning("%d answers Twilio never got from our webhook (it gave up waiting) sent now by SMS", answered)
    return answered


def _since(now: dt.datetime) -> dt.datetime:
    earliest = now - RECOVERY_LOOKBACK
    last_look = cache.get(LAST_LOOK_KEY)
    if last_look:
        return max(earliest, dt.datetime.fromisoformat(last_look) - RECOVERY_OVERLAP)
    inbound = Message.objects.filter(direction=Direction.INBOUND, twilio_sid__isnull=False)
    newest = inbound.aggregate(at=Max("created_at"))["at"]
    if newest is None:
        return now - FIRST_LOOK
    return max(earliest, min(newest - RECOVERY_OVERLAP, now - FIRST_LOOK))


SPOOLED = "spooled"  # a contact waiting in the spool: its replay stores it, and settles its call


def _known_sids(sids: list[str]) -> dict[str, str]:
    """Each SID already handled, with the call status we have for it ("" for an SMS): waiting in the spool, stored
    as a contact, a staff command or a welfare answer (by a webhook or an earlier look), or answered without being
    stored (services.remember_answered). The spool
    is asked first: its replay stores a contact before it deletes the file, so a contact is always in one or the
    other."""
    known = dict.fromkeys(spool.spooled_among(sids, ("sms", "call", *RECOVERED_KINDS.values())), SPOOLED)
    for sid, status in Message.objects.filter(twilio_sid__in=sids).values_list("twilio_sid", "call_status"):
        known.setdefault(sid, status or "")
    for answered in (
        StaffSmsCommand.objects.filter(message_sid__in=sids).values_list("message_sid", flat=True),
        WelfareCheck.objects.filter(reply_sid__in=sids).values_list("reply_sid", flat=True),
        services.answered_sids([sid for sid in sids if sid not in known]),
    ):
        for sid in answered:
            known.setdefault(sid, "")
    return known


# The spool's kinds for a contact found here that could not be stored: replayed by `store_recovered` below.
RECOVERED_KINDS = {"sms": "recovered_sms", "call": "recovered_call"}


def _keep_for_the_replay(contact: InboundContact, *, settling: bool) -> bool:
    """Keep a contact that failed to store in the spool, to be stored and answered by its replay; False when the
    spool could not take it either (the next look then tries it again). A call we have, whose final status failed
    to store, is kept as the status callback that never came."""
    try:
        if settling:
            spool.spool_contact(
                "call_status", contact.sid,
                {"call_sid": contact.sid, "call_status": contact.status, "duration": contact.duration},
            )  # fmt: skip
        else:
            spool.spool_contact(RECOVERED_KINDS[contact.kind], contact.sid, _as_payload(contact))
    except Exception as error:
        logger.critical("could not keep a %s from Twilio's log in the spool either (%s); the next look tries again",
                        contact.kind, type(error).__name__)  # fmt: skip
        return False
    return True


def _as_payload(contact: InboundContact) -> dict:
    return {
        "kind": contact.kind, "sid": contact.sid, "from_number": contact.from_number,
        "created": contact.created.isoformat(), "body": contact.body, "num_media": contact.num_media,
        "status": contact.status, "duration": contact.duration,
        "ended": contact.ended.isoformat() if contact.ended else None,
    }  # fmt: skip


def store_recovered(payload: dict) -> str:
    """A contact from Twilio's log kept in the spool, stored and answered now as the look would have (the spool's
    replay calls this). Returns its case's reference ("" for a staff command or a welfare answer)."""
    contact = InboundContact(**{
        **payload,
        "created": dt.datetime.fromisoformat(payload["created"]),
        "ended": dt.datetime.fromisoformat(payload["ended"]) if payload.get("ended") else None,
    })  # fmt: skip
    if contact.kind == "call":
        return _recover_call(contact).reference
    stored = _recover_sms(contact)
    return stored.reference if stored is not None else ""


@transaction.atomic
def _recover_sms(contact: InboundContact) -> Case | None:
    """Stored, dated and answered in one transaction: a worker that dies before the answer is queued leaves nothing,
    and the next look stores and answers it (stored alone, its SID would be known, and its citizen never answered)."""
    received = services.receive_sms(
        message_sid=contact.sid, from_number=contact.from_number, body=contact.body, num_media=contact.num_media
    )
    # Dated when the citizen sent it, as the spool's replay dates its contacts: minutes of an outage must not read
    # "0 min ago" to the worker, nor put it behind newer cases.
    intake.date_contact_as_received(contact.sid, contact.created)
    if received.staff is not None:
        if received.staff_reply:  # a silent alarm's answer is nothing, and stays nothing
            _send_command_reply(contact.sid, received.staff, received.staff_reply)
        logger.warning("staff SMS recovered from Twilio's log and run now (our webhook never received it)")
        return None
    stored = received.intake
    if stored is None:
        # A welfare answer ("1" safe, "2" help) is recorded as if it had come in time; its confirmation, minutes
        # late, is not sent: the campaign's own messages tell the person what happens next.
        logger.warning("welfare answer recovered from Twilio's log (our webhook never received it)")
        return None
    if stored.case is not None and stored.kind == "message":  # STOP and START are answered by Twilio itself
        _send_receipt(contact.sid, contact.from_number, stored.case, is_new_case=stored.is_new_case,
                      language=stored.language, script=stored.script)  # fmt: skip
    logger.warning("SMS recovered from Twilio's log onto %s (our webhook never received it)",
                   stored.case.reference if stored.case else "no case")  # fmt: skip
    return stored.case


RECEIPT_KEY = "recovered-reply"
COMMAND_REPLY_KEY = "command-reply"  # as the spool's replay answers a staff command


def _send_receipt(sid: str, to_number: str, case: Case, *, is_new_case: bool, language: str, script: str) -> None:
    """The webhook's answer to a citizen's SMS, by SMS: the reference, what happens next, the emergency numbers,
    and the supervisors' surge notice while there is one."""
    text = replies.sms_case_reply(reference=case.reference, is_new_case=is_new_case, language=language, script=script)
    notice = services.surge_notice(script, language)
    queue_notification(
        key=f"{RECEIPT_KEY}:{sid}", to_number=to_number, body=f"{text} {notice}" if notice else text,
        kind=NotificationKind.CITIZEN_REPLY, case=case,
    )  # fmt: skip


def _send_command_reply(sid: str, staff: StaffProfile, reply: str) -> None:
    queue_notification(
        key=f"{COMMAND_REPLY_KEY}:{sid}", to_number=str(staff.phone or ""), body=reply,
        kind=NotificationKind.COMMAND_REPLY, recipient=staff.user,
    )  # fmt: skip


@transaction.atomic
def _recover_call(contact: InboundContact) -> Case:
    case = intake.record_incoming_call(call_sid=contact.sid, from_number=contact.from_number)
    intake.record_call_status(call_sid=contact.sid, call_status=contact.status, duration=contact.duration)
    intake.date_contact_as_received(contact.sid, contact.created)
    logger.warning("call recovered from Twilio's log onto %s (%s; our webhook never received it)", case.reference,
                   contact.status)  # fmt: skip
    return case
