"""The outbox: every message the helpline sends is a row written with the event that causes it, sent by a task
that only rings the doorbell, found again by the relay if its message was lost, and never sent twice."""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Case as SqlCase
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, When
from django.utils import timezone
from django.utils.translation import gettext as _

from helpline.cases import selectors as case_selectors
from helpline.cases import services as case_services
from helpline.cases.dispatch import ALERTS_QUEUE, NOTIFICATIONS_QUEUE, RETRY_QUEUE, enqueue_after_commit, publish
from helpline.cases.encryption import phone_index
from helpline.cases.models import OPEN_STATUSES, Case, CaseStatus, Channel, Direction, EventKind, Message, Priority
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import all_supervisors, forget_who_is_on_duty
from helpline.roster.services import coming_week_gaps
from notifications import texts
from notifications.backends import NETWORK_ERROR, DrillBackend, OutgoingMessage, SendResult, get_backend
from notifications.models import (
    DELIVERY_PROGRESS,
    TO_CITIZENS,
    BroadcastRecipient,
    CrisisEvent,
    DeliveryAttempt,
    DeliveryStatus,
    Notification,
    NotificationChannel,
    NotificationKind,
)

logger = logging.getLogger(__name__)

SEND_TASK = "notifications.tasks.send_notification"
# Sending to staff about a case stops once someone has taken the case.
STOPS_WHEN_ACKNOWLEDGED = (NotificationKind.ASSIGNMENT, NotificationKind.REMINDER, NotificationKind.ESCALATION)
WAITING_FOR_ACKNOWLEDGEMENT = (CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.ASSIGNED)
# What a send attempt records (a status callback records "callback <status>", a lost worker "lost").
SENT, RETRY, FAILED = "sent", "retry", "failed"
# A send claims its row for this long: longer than the Twilio client's connect and read timeouts (10 s each), so a
# worker still inside the call is never mistaken for a lost one. After it, the relay asks Twilio what happened.
SENDING_GRACE = dt.timedelta(seconds=30)
# Alerts about failing staff alerts: they go by another sender where one is configured (delivery_health.py).
DELIVERY_ALERT_PREFIX = "delivery-alert:"
RECOVERED_PREFIX = "delivery-recovered:"  # and, once they get out again, the all-clear


# --- Writing to the outbox ---------------------------------------------------------------------------------


def queue_notification(
    *,
    key: str,
    to_number: str,
    body: str,
    kind: str,
    case: Case | None = None,
    recipient: AbstractBaseUser | None = None,
    channel: str = NotificationChannel.SMS,
    message: Message | None = None,
    ack_code: str = "",
    queue: str | None = None,
    keep_letters: bool = False,
) -> Notification | None:
    """Write one notification (once per key) and ring the sender after commit. Returns None when the key exists.
    A staff SMS goes without diacritics when that makes it GSM-7 (texts.for_staff_sms), unless `keep_letters`: an
    address a person must find (a home visit, a welfare visit) is sent exactly as written."""
    if not to_number:
        logger.warning("no phone number for %s notification on %s", kind, case.reference if case else "-")
        return None
    if channel == NotificationChannel.SMS and recipient is not None and not keep_letters:  # to a staff member
        body = texts.for_staff_sms(body)
    fields = dict(
        idempotency_key=key[:200], to_number=to_number, body=body, kind=kind, case=case,
        recipient=recipient, channel=channel, message=message, is_drill=bool(case and case.is_drill),
        ack_code=ack_code,
    )  # fmt: skip
    pending = _notifications_to_write.get()
    if pending is not None:
        notification = Notification(**fields)
        pending.append((notification, queue))
        return notification
    notification = Notification.objects.create_once(**fields)
    if notification is None:
        return None  # already written by an earlier run: never twice
    enqueue_after_commit(
        SEND_TASK, notification.pk, queue=queue or queue_of(notification),
        behind_the_rest=tells_nobody_new(notification),
    )  # fmt: skip
    return notification


# Notifications waiting to be written together, with their queue; None outside `notifications_written_together`.
_notifications_to_write: ContextVar[list[tuple[Notification, str | None]] | None] = ContextVar(
    "notifications_to_write", default=None
)


@contextmanager
def notifications_written_together() -> Iterator[None]:
    """Notifications queued inside the block (a batch of assignments, one SMS each) are written in one INSERT when
    it ends, each once per key as ever, and their senders rung after commit. Inside, queue_notification returns
    the notification unsaved, and one whose key was written before is found out only as the block ends (it is not
    sent again). Nothing is written if the block raises. A block inside another writes with the outer one."""
    if _notifications_to_write.get() is not None:
        yield
        return
    pending: list[tuple[Notification, str | None]] = []
    token = _notifications_to_write.set(pending)
    try:
        yield
    finally:
        _notifications_to_write.reset(token)
    queues = {id(notification): queue for notification, queue in pending}
    written = Notification.objects.create_each_once(
        [notification for notification, _queue in pending], key="idempotency_key"
    )
    for notification in written:
        enqueue_after_commit(
            SEND_TASK, notification.pk, queue=queues[id(notification)] or queue_of(notification),
            behind_the_rest=tells_nobody_new(notification),
        )  # fmt: skip


def is_alert(notification: Notification) -> bool:
    """A message a person must act on now: to staff (or the fallback numbers) about a critical case, a worker's
    reply to the citizen of one, a home visit's alarm, overdue visit or all-clear, supervisors told that staff
    alerts are failing. It rides the alerts queue, which the critical worker takes too, so a surge of other
    notifications never delays it, and it comes first for the number's sending rate. A crisis event's answers and
    broadcasts never are: they reach the citizens of critical cases too, by the hundred."""
    if notification.kind in (NotificationKind.CRISIS_ANSWER, NotificationKind.CRISIS_BROADCAST):
        return False
    if notification.case_id is None:  # the visits' and the delivery alerts are escalations without a case
        return notification.kind == NotificationKind.ESCALATION and not notification.idempotency_key.startswith(
            RECOVERED_PREFIX
        )
    return notification.case.priority == Priority.CRITICAL


def queue_of(notification: Notification) -> str:
    return ALERTS_QUEUE if is_alert(notification) else NOTIFICATIONS_QUEUE


def tells_nobody_new(notification: Notification) -> bool:
    """A reminder goes to someone who was already sent the case (an SMS and, if critical, a call): in its queue it
    waits behind every message that tells someone something for the first time. In a surge the ladders' reminders
    grew as numerous as the first alerts, and a new critical case's first SMS queued behind them (p50 8 s)."""
    return notification.kind == NotificationKind.REMINDER


def notify_staff(
    staff: StaffProfile, case: Case, *, kind: str, key: str, body: Callable[[Case, str], str], call_too: bool = False
) -> list[Notification]:
    """Tell a staff member about a case by SMS (and a call). `body` renders the text with the one-time code that
    lets this person, and only this person, acknowledge the case by SMS."""
    code = f"{secrets.randbelow(10_000):04d}"
    text = body(case, code)
    sent = []
    for channel in [NotificationChannel.SMS] + ([NotificationChannel.VOICE] if call_too else []):
        notification = queue_notification(
            key=f"{key}:{channel}", to_number=str(staff.phone or ""), body=text, kind=kind, case=case,
            recipient=staff.user, channel=channel, ack_code=code,
        )  # fmt: skip
        if notification:
            sent.append(notification)
    return sent


# --- Sending -----------------------------------------------------------------------------------------------


# How long an alert that found its second's slot taken keeps the line for itself after asking. Its retry comes as
# the next second starts; a little more covers a worker slow to take it. It is not lifted when the alert is sent:
# another alert may be waiting for the same second, and a message let in meanwhile would take its slot.
ALERT_HOLDS_THE_LINE_FOR = 2  # seconds
# Once the line has been held this long without a break, one second in THE_RESTS_SECOND_EVERY belongs to the other
# messages and alerts leave it to them: with more alerts a second than the number sends (a surge's ladders at one
# SMS a second), the rest (call-outs, digests, answers) would otherwise wait for ever. (Open to all, that second
# went to the alerts: they ask as it starts.) A short hold (an alert during a broadcast) never gives way.
HELD_LONG_AFTER = 5  # seconds
THE_RESTS_SECOND_EVERY = 5  # seconds
TURN_KEPT_FOR = 2  # seconds a side's turn is kept for it after it was last refused: its next second of each parity


def take_send_slot(channel: str, *, alert: bool, sender: str = "", takes_turns: bool = False) -> bool:
    """A shared per-second budget for each of Twilio's limits: a long code takes about one SMS a second
    (SMS_PER_SECOND; STAFF_ALERT_SMS_PER_SECOND for STAFF_ALERT_SENDER, which may be a Messaging Service of
    several numbers), and the account places a set number of calls a second (CALLS_PER_SECOND). The two are
    Twilio's separate limits, so an SMS never waits for a call's slot, nor a call for an SMS's: with one budget, the
    call about a critical case went out a second after the SMS to the same worker. E-mail waits for neither. Each
    SMS sender has its own budget.

    An `alert` (is_alert) that finds the second taken holds the line: for ALERT_HOLDS_THE_LINE_FOR seconds
    other messages leave the slots to alerts; once held for HELD_LONG_AFTER, one second in THE_RESTS_SECOND_EVERY
    is theirs. A crisis broadcast queues hundreds of SMS to citizens, each retried every second for the same slot,
    and the alert only won when it asked first in a second: it went out after most of them
    (benchmarks/alerts_during_broadcast.py). Welfare questions and calls from the helpline's number ask here too
    (helpline/welfare/sending.py): sent beside the outbox at the number's whole rate, they filled Twilio's queue
    for the number, and a staff alert from it waited there behind them. They `take_turns` with the rest: while both
    sides have been refused lately, an odd second keeps one slot for them and an even second one for the rest.
    Otherwise a broadcast's hundreds, each asking again a second later at its own moment of the second, took nearly
    every slot before the tick's one ask a second, and a dialysis patient's question waited for the whole broadcast
    (or, the other way round, a tick early in each second took every slot from citizens' answers)."""
    if channel == NotificationChannel.SMS:
        sender = sender or settings.TWILIO_PHONE_NUMBER
        name = f"sms-rate:{sender}"
        staff = bool(settings.STAFF_ALERT_SENDER) and sender == settings.STAFF_ALERT_SENDER
        limit = settings.STAFF_ALERT_SMS_PER_SECOND if staff else settings.SMS_PER_SECOND
    elif channel == NotificationChannel.VOICE:
        name, limit = f"call-rate:{settings.TWILIO_ACCOUNT_SID}", settings.CALLS_PER_SECOND
    else:
        return True
    second = int(time.time())
    held_since_key = f"{name}:held-for-alerts-since"  # the second the line was first held, while it stays held
    rest_waiting_key = f"{name}:others-waiting"
    turn_key = f"{name}:turn-waiting"  # a sender that takes turns was refused, and asks again
    others_turn_key = f"{name}:others-turn-waiting"  # one of the rest was
    held_since = cache.get(held_since_key)
    room = limit
    if held_since is not None:
        the_rests_second = (
            second - held_since >= HELD_LONG_AFTER and second % THE_RESTS_SECOND_EVERY == 0
            and bool(cache.get(rest_waiting_key))
        )  # fmt: skip
        if alert and the_rests_second:
            _hold_the_line(held_since_key, second)  # still waiting
            return False
        if not alert and not the_rests_second:
            room = limit - 1  # one slot a second kept for the alerts; a long code has no other
    its_turn = second % 2 == (1 if takes_turns else 0)
    if not alert and not its_turn and cache.get(others_turn_key if takes_turns else turn_key):
        room -= 1  # the other side's second, and the other side waits: one slot kept for it
    bucket = f"{name}:{second}"
    # A message kept to fewer slots than the limit does not count itself in once they are gone: the count it would
    # leave behind is the alerts' slot.
    full = room < limit and (cache.get(bucket) or 0) >= room
    taken = room >= 1 and not full and _count_in(bucket) <= room
    if not taken and alert:
        _hold_the_line(held_since_key, second)
    elif not taken and held_since is not None:
        cache.set(rest_waiting_key, 1, timeout=ALERT_HOLDS_THE_LINE_FOR)
    if not taken and not alert:
        cache.set(turn_key if takes_turns else others_turn_key, 1, timeout=TURN_KEPT_FOR)
    return taken


def _count_in(bucket: str) -> int:
    """This send's place in its second's bucket (1 for the first)."""
    if cache.add(bucket, 1, timeout=5):
        return 1
    try:
        return cache.incr(bucket)
    except ValueError:  # the bucket lapsed between the two: this send is its first
        return 1


def _hold_the_line(held_since_key: str, second: int) -> None:
    """Held from `second` on, or held longer if it is already: its start stays, its end moves on."""
    if not cache.touch(held_since_key, ALERT_HOLDS_THE_LINE_FOR):
        cache.add(held_since_key, second, timeout=ALERT_HOLDS_THE_LINE_FOR)


def _retry_delay(attempts: int) -> dt.timedelta:
    base = settings.NOTIFICATION_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    return dt.timedelta(seconds=min(base, 300) * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not secrecy


def _why_not_send(notification: Notification) -> str:
    """Re-checked right before every send, under the row lock: the world may have changed since it was queued (a
    flood's queue holds a citizen's SMS for minutes, and their STOP may arrive meanwhile)."""
    case = notification.case
    if notification.kind in TO_CITIZENS:
        refusal = case_selectors.why_the_case_may_not_be_texted(case) if case is not None else ""
        if refusal:
            return refusal
        # A STOP or "texts are not safe" given through another case of the same number holds for this one too.
        refusal = case_selectors.why_the_number_may_not_be_texted(phone_index(notification.to_number))
        if refusal:
            return refusal
    is_crisis_sms = notification.kind in (NotificationKind.CRISIS_ANSWER, NotificationKind.CRISIS_BROADCAST)
    if is_crisis_sms and _crisis_event_has_ended(notification.idempotency_key):
        return "the crisis event has ended"
    if case is None:
        return ""
    if notification.kind in STOPS_WHEN_ACKNOWLEDGED and case.status not in WAITING_FOR_ACKNOWLEDGEMENT:
        return f"case is {case.status}"
    return ""


def _crisis_event_has_ended(key: str) -> bool:
    """Whether the event of a crisis answer or broadcast has ended: its answer may name a shelter that has flooded
    since, and ending the event is how a supervisor stops it. The key names the event ("crisis-answer:<event id>:
    <citizen>") or the broadcast ("crisis-broadcast:<broadcast id>:<citizen>"), as notifications/crisis.py writes
    it; read from the key, so queued rows need no new column."""
    kind, _, rest = key.partition(":")
    object_id = rest.partition(":")[0]
    if not object_id.isdigit():
        return False
    ended = CrisisEvent.objects.filter(ended_at__isnull=False)
    if kind == "crisis-answer":
        return ended.filter(pk=object_id).exists()
    return ended.filter(broadcasts__pk=object_id).exists()


# What _why_not_send asks of a reply to a citizen on its own case, as a filter (the number's other cases are asked at
# send time).
CITIZEN_MAY_BE_TEXTED = case_selectors.case_may_be_texted("case__")


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str
    retry_in: float | None = None
    queue: str = NOTIFICATIONS_QUEUE  # where a retry goes: a critical case's messages stay on the critical queue


def deliver(notification_id: int) -> DeliveryOutcome | None:
    """Send one queued notification once. The row is claimed under a lock, the provider is called outside any
    transaction, and the outcome is recorded; transient failures come back with exponential backoff."""
    now = timezone.now()
    with transaction.atomic():
        notification = (
            Notification.objects.for_change(skip_locked=True, of=("self",))
            .select_related("case__caller")
            .filter(pk=notification_id, status=DeliveryStatus.QUEUED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .first()
        )
        if notification is None:
            return None  # sent, failed, cancelled, not yet due, or another worker has it
        reason = _why_not_send(notification)
        if reason:
            notification.status, notification.last_error = DeliveryStatus.CANCELLED, reason
            notification.save(update_fields=["status", "last_error"])
            _mirror_to_message(notification, f"not sent: {reason}")
            DeliveryAttempt.objects.create(notification=notification, result="cancelled", detail=reason)
            return DeliveryOutcome(DeliveryStatus.CANCELLED)
        alert = is_alert(notification)
        # Built once: the sender whose rate it waits for is the sender it goes from (a refusal noted meanwhile
        # would otherwise move it to another number's line), and its cache read is made once.
        message = _outgoing(notification)
        # A drill's message goes to the drill backend, never to a phone: it takes none of the number's rate.
        if not notification.is_drill and not take_send_slot(notification.channel, alert=alert, sender=message.sender):
            # An alert asks again as the next second starts, which it holds; the rest a second later, spread out.
            retry_in = 1.01 - time.time() % 1 if alert else 1
            notification.next_attempt_at = now + dt.timedelta(seconds=retry_in)
            notification.save(update_fields=["next_attempt_at"])
            return DeliveryOutcome(DeliveryStatus.QUEUED, retry_in=retry_in, queue=queue_of(notification))
        # The claim: while the row says "sending", nobody else sends it; next_attempt_at is when the relay may ask
        # Twilio whether a worker lost inside the call got the message out.
        notification.status = DeliveryStatus.SENDING
        notification.attempts += 1
        notification.claimed_at, notification.next_attempt_at = now, now + SENDING_GRACE
        notification.save(update_fields=["status", "attempts", "claimed_at", "next_attempt_at"])
    backend = DrillBackend() if notification.is_drill else get_backend()
    keep_the_claim = partial(_claim_kept_for_another_request, notification.pk, claimed_attempt=notification.attempts)
    if notification.last_error_code == NETWORK_ERROR and notification.sent_at is None:
        # The last try lost its connection: Twilio may have taken the message before the answer was lost.
        lookup = backend.find_sent(
            message, since=notification.created_at - dt.timedelta(seconds=5), known_sids=_known_sids(notification)
        )
        if lookup.was_sent:
            result = SendResult(ok=True, provider_sid=lookup.provider_sid, detail="an earlier try had got through")
            return _record_send_result(notification, result, claimed_attempt=notification.attempts)
        if not lookup.known and not (alert and _has_waited_long_enough_to_send_anyway(notification)):
            return _wait_until_twilio_can_be_asked(notification, claimed_attempt=notification.attempts)
        if not lookup.known:
            logger.error("notification %s: an earlier try may have got through and Twilio still cannot be asked "
                         "after %d waits; the alert is sent again anyway (a duplicate is better than none)",
                         notification.pk, WAITS_BEFORE_AN_ALERT_GOES_ANYWAY)  # fmt: skip
        if not keep_the_claim():
            return None  # the lookup outlived the claim: the relay holds the row now
    result = _send_from_a_sender_that_works(backend, message, before_another_try=keep_the_claim)
    return _record_send_result(notification, result, claimed_attempt=notification.attempts)


def _claim_kept_for_another_request(notification_id: int, *, claimed_attempt: int) -> bool:
    """Before a second request to Twilio within one claim (the send after a lookup, the send from the SOS number
    after a refused sender): the claim gets another SENDING_GRACE, as each request may take up to the client's
    timeouts. Otherwise two requests outlived the grace, the relay took the worker for lost, and the message went
    out twice. False when the claim was lost meanwhile: the relay holds the row, and this worker sends nothing."""
    return bool(
        Notification.objects.filter(pk=notification_id, status=DeliveryStatus.SENDING, attempts=claimed_attempt)
        .update(next_attempt_at=timezone.now() + SENDING_GRACE)
    )


# An alert whose last answer was lost waits this many times SENDING_GRACE (about 90 s) for Twilio to be asked
# whether it got through, then goes again anyway: a worker told twice of a critical case is better than never told.
WAITS_BEFORE_AN_ALERT_GOES_ANYWAY = 3
WAITED = "wait"  # what a wait records among the attempts
CANNOT_BE_ASKED = "an earlier try lost its connection and Twilio cannot be asked whether it took the message"


def _has_waited_long_enough_to_send_anyway(notification: Notification) -> bool:
    """Whether this alert has waited WAITS_BEFORE_AN_ALERT_GOES_ANYWAY times since its last real try, or has no
    attempt left to wait with."""
    attempts = notification.delivery_attempts
    last_try = attempts.exclude(result=WAITED).order_by("-pk").values_list("pk", flat=True).first() or 0
    waits = attempts.filter(result=WAITED, pk__gt=last_try).count()
    return waits >= WAITS_BEFORE_AN_ALERT_GOES_ANYWAY or notification.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS


def _wait_until_twilio_can_be_asked(notification: Notification, *, claimed_attempt: int) -> DeliveryOutcome | None:
    """The last try lost its connection and Twilio cannot be asked whether it took the message: sending now could
    send it twice, so the row goes back to the queue for SENDING_GRACE, as an interrupted send waits in the relay.
    The attempt number stays counted: it is the claim's token, and a claim never reuses an earlier one. So the wait
    is not for ever: with no attempt left the message fails as on a transient error (requeue_after_outage sends it,
    looking it up first, once Twilio answers again). An alert goes anyway before that (deliver)."""
    retry_in = SENDING_GRACE.total_seconds()
    if notification.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
        return _fail_for_want_of_an_answer(notification, claimed_attempt=claimed_attempt)
    with transaction.atomic():
        waits = Notification.objects.filter(
            pk=notification.pk, status=DeliveryStatus.SENDING, attempts=claimed_attempt
        ).update(status=DeliveryStatus.QUEUED, next_attempt_at=timezone.now() + SENDING_GRACE)
        if not waits:
            return None  # the relay took this worker for lost and holds the row now
        DeliveryAttempt.objects.create(notification=notification, result=WAITED, detail=CANNOT_BE_ASKED)
    logger.warning("notification %s: an earlier try may have got through and Twilio cannot be asked; not sent "
                   "again yet", notification.pk)  # fmt: skip
    return DeliveryOutcome(DeliveryStatus.QUEUED, retry_in=retry_in, queue=queue_of(notification))


def _fail_for_want_of_an_answer(notification: Notification, *, claimed_attempt: int) -> DeliveryOutcome | None:
    with transaction.atomic():
        failed = Notification.objects.filter(
            pk=notification.pk, status=DeliveryStatus.SENDING, attempts=claimed_attempt
        ).update(status=DeliveryStatus.FAILED, next_attempt_at=None)
        if not failed:
            return None  # the relay took this worker for lost and holds the row now
        # Recorded as a transient failure, with the lost connection's code kept: a requeue looks it up first.
        DeliveryAttempt.objects.create(
            notification=notification, result=RETRY, error_code=NETWORK_ERROR, detail=CANNOT_BE_ASKED
        )
        _mirror_to_message(notification, DeliveryStatus.FAILED)
    logger.error("notification %s failed: Twilio could not be asked whether an earlier try got through, and no "
                 "attempt is left", notification.pk)  # fmt: skip
    return DeliveryOutcome(DeliveryStatus.FAILED)


def _known_sids(notification: Notification) -> frozenset[str]:
    """The SIDs already recorded for this number: a message or call among them belongs to another notification."""
    return frozenset(
        Notification.objects.filter(to_number=notification.to_number, provider_sid__isnull=False)
        .exclude(pk=notification.pk)
        .values_list("provider_sid", flat=True)
    )


def _sender(notification: Notification) -> str:
    """Where an SMS goes from ("" for the SOS number): alerts that staff alerts are failing (and their all-clear) by
    DELIVERY_ALERT_SENDER, anything else not sent to a citizen (to staff, or to the fallback numbers standing in for
    them) by STAFF_ALERT_SENDER, where they are set."""
    if notification.idempotency_key.startswith((DELIVERY_ALERT_PREFIX, RECOVERED_PREFIX)):
        return settings.DELIVERY_ALERT_SENDER
    if notification.kind in TO_CITIZENS or notification.channel != NotificationChannel.SMS:
        return ""  # calls are placed from the SOS number
    if settings.STAFF_ALERT_SENDER and cache.get(f"{SENDER_REFUSED_KEY}{settings.STAFF_ALERT_SENDER}"):
        return ""  # Twilio refused it lately: the SOS number, with its rate and line, until someone fixes it
    return settings.STAFF_ALERT_SENDER


def _outgoing(notification: Notification) -> OutgoingMessage:
    return OutgoingMessage(
        notification.pk, str(notification.to_number), notification.body, notification.channel,
        sender=_sender(notification),
    )  # fmt: skip


# Twilio's refusals of the sender, not of the recipient: a number that is not ours or cannot send SMS, a Messaging
# Service that is malformed, unknown or without numbers.
SENDER_REFUSED = frozenset({"21212", "21601", "21606", "21659", "21661", "21703", "21704", "21705", "30127"})
SENDER_REFUSED_KEY = "sender-refused:"
SENDER_REFUSED_FOR = 600  # seconds: the SOS number carries the staff SMS meanwhile, then the sender is tried again


def _send_from_a_sender_that_works(
    backend, message: OutgoingMessage, *, before_another_try: Callable[[], bool] = lambda: True
) -> SendResult:
    """Send; if Twilio refuses STAFF_ALERT_SENDER or DELIVERY_ALERT_SENDER itself, send again from the SOS number,
    and leave that sender out for SENDER_REFUSED_FOR. A mistyped or released second number failed every staff SMS
    for good, and marked each staff phone as failing. `before_another_try` keeps the claim for the second request;
    when it answers False the refusal is returned and nothing is sent again."""
    result = backend.send(message)
    if result.ok or message.channel != NotificationChannel.SMS or not message.sender:
        return result
    if result.error_code not in SENDER_REFUSED:
        return result
    cache.set(f"{SENDER_REFUSED_KEY}{message.sender}", 1, timeout=SENDER_REFUSED_FOR)
    logger.error("Twilio refused the sender %s for notification %s (%s): staff SMS go from the SOS number for the "
                 "next %d minutes. Check STAFF_ALERT_SENDER and DELIVERY_ALERT_SENDER.", message.sender,
                 message.notification_id, result.error_code, SENDER_REFUSED_FOR // 60)  # fmt: skip
    if not before_another_try():
        return result
    return backend.send(replace(message, sender=""))


@transaction.atomic
def _record_send_result(notification: Notification, result: SendResult, *, claimed_attempt: int) -> DeliveryOutcome:
    """`notification` is the row as this worker claimed it, its case read with it: the usual success records on it
    without reading either again. A failure, or a claim lost meanwhile, reads the row under its lock."""
    if result.ok and _mark_sent_if_still_claimed(notification, result, claimed_attempt=claimed_attempt):
        return DeliveryOutcome(DeliveryStatus.SENT)
    notification = Notification.objects.for_change().get(pk=notification.pk)
    DeliveryAttempt.objects.create(
        notification=notification, result=SENT if result.ok else (RETRY if result.transient else FAILED),
        error_code=result.error_code, detail=result.detail,
    )  # fmt: skip
    if notification.status != DeliveryStatus.SENDING or notification.attempts != claimed_attempt:
        return _record_late_result(notification, result)
    if result.ok:
        _mark_sent(notification, result.provider_sid)
        return DeliveryOutcome(DeliveryStatus.SENT)
    notification.last_error, notification.last_error_code = result.detail[:500], result.error_code
    if result.transient and notification.attempts < settings.NOTIFICATION_MAX_ATTEMPTS:
        delay = _retry_delay(notification.attempts)
        notification.status, notification.next_attempt_at = DeliveryStatus.QUEUED, timezone.now() + delay
        notification.save(update_fields=["status", "next_attempt_at", "last_error", "last_error_code"])
        logger.warning("notification %s: transient failure %s, retry in %.0fs", notification.pk, result.error_code,
                       delay.total_seconds())  # fmt: skip
        retry_queue = ALERTS_QUEUE if is_alert(notification) else RETRY_QUEUE
        return DeliveryOutcome(DeliveryStatus.QUEUED, retry_in=delay.total_seconds(), queue=retry_queue)
    notification.status = DeliveryStatus.FAILED
    notification.save(update_fields=["status", "last_error", "last_error_code"])
    _mirror_to_message(notification, DeliveryStatus.FAILED)
    refused_the_sender = notification.channel == NotificationChannel.SMS and result.error_code in SENDER_REFUSED
    if notification.recipient_id and notification.channel != NotificationChannel.EMAIL and not result.transient \
            and not refused_the_sender:
        # refused for good (a wrong or dead number), not an outage
        phone_fails(notification.recipient_id, about=notification, reason=plain_reason(result.error_code))
    logger.error("notification %s (%s) failed for good: %s", notification.pk, described(notification),
                 plain_reason(result.error_code))  # fmt: skip
    return DeliveryOutcome(DeliveryStatus.FAILED)


# What Twilio's error codes mean, for whoever reads the log at night (twilio.com/docs/api/errors): the usual ones.
_PLAIN_REASONS = {
    "21211": "invalid number", "21214": "number cannot be reached", "21610": "recipient unsubscribed (STOP)",
    "21612": "number cannot be reached from our number", "21614": "not a mobile number",
    "30003": "phone switched off or out of reach", "30004": "blocked by the recipient", "30005": "unknown number",
    "30006": "landline or unreachable carrier", "30007": "filtered by the carrier", "30008": "unknown carrier error",
    "20429": "too many requests to Twilio", "20500": "Twilio server error",
}  # fmt: skip


def plain_reason(error_code: str | None) -> str:
    code = str(error_code or "")
    meaning = _PLAIN_REASONS.get(code)
    return f"{meaning} ({code})" if meaning else f"error {code}" if code else "no reason given"


def described(notification: Notification) -> str:
    """For the log: the case reference (or the visit), the kind and the channel; never a number or the text."""
    if notification.case_id:
        subject = Case.objects.filter(pk=notification.case_id).values_list("reference", flat=True).first() or "?"
        subject = f"case {subject}"
    elif (notification.idempotency_key or "").startswith("visit:"):
        subject = f"home visit {notification.idempotency_key.split(':')[1]}"
    else:
        subject = "no case"
    return f"{subject}, {notification.kind} by {notification.channel}"


def _mark_sent_if_still_claimed(notification: Notification, result: SendResult, *, claimed_attempt: int) -> bool:
    """The usual success: the row is still this worker's claim, so one conditional UPDATE records it (the UPDATE
    takes the row lock and re-checks the claim, as a locked read would, in one round trip instead of two). False
    when the claim was lost meanwhile (the relay took the worker for lost): the caller reads the row and decides."""
    sent = _sent_fields(result.provider_sid)
    still_claimed = Notification.objects.filter(
        pk=notification.pk, status=DeliveryStatus.SENDING, attempts=claimed_attempt
    )
    if not still_claimed.update(**sent):
        return False
    DeliveryAttempt.objects.create(
        notification=notification, result=SENT, error_code=result.error_code, detail=result.detail
    )
    for field, value in sent.items():
        setattr(notification, field, value)
    _after_sent(notification)
    return True


def _mark_sent(notification: Notification, provider_sid: str) -> None:
    sent = _sent_fields(provider_sid)
    for field, value in sent.items():
        setattr(notification, field, value)
    notification.save(update_fields=list(sent))
    _after_sent(notification)


def _sent_fields(provider_sid: str) -> dict:
    return {"status": DeliveryStatus.SENT, "provider_sid": provider_sid or None, "sent_at": timezone.now(),
            "next_attempt_at": None}  # fmt: skip


def _after_sent(notification: Notification) -> None:
    _mirror_to_message(notification, DeliveryStatus.SENT)
    if notification.case_id and notification.message_id is None:
        case_services.record_event(
            notification.case, EventKind.MESSAGE_SENT, notification_id=notification.pk,
            notification_kind=notification.kind,
            channel=notification.channel, recipient_id=notification.recipient_id,
        )  # fmt: skip


def _record_late_result(notification: Notification, result: SendResult) -> DeliveryOutcome | None:
    """A worker that was taken for lost comes back (its Twilio call outlived the grace). A success still counts,
    so the relay does not send the message again; anything else leaves the row to whoever holds it now. A send
    Twilio's callback already told us of is left alone too: the callback may have settled it and queued the call
    once more (busy, no answer), and marking it sent again would drop that second call."""
    if result.ok and _told_by_a_callback(notification, result.provider_sid):
        return None
    if result.ok and DELIVERY_PROGRESS[notification.status] < DELIVERY_PROGRESS[DeliveryStatus.SENT]:
        _mark_sent(notification, result.provider_sid)
        return DeliveryOutcome(DeliveryStatus.SENT)
    if result.ok and result.provider_sid != notification.provider_sid:
        logger.error("notification %s: a late send came back after the message had gone out", notification.pk)
    return None


def _callback_detail(provider_sid: str) -> str:
    return f"status callback for {provider_sid}"[:500]


def _told_by_a_callback(notification: Notification, provider_sid: str) -> bool:
    return bool(provider_sid) and notification.delivery_attempts.filter(detail=_callback_detail(provider_sid)).exists()


def _mirror_to_message(notification: Notification, status: str) -> None:
    if notification.message_id:
        Message.objects.filter(pk=notification.message_id).update(delivery_status=status[:20])


def tell_assignee_of_follow_up(case: Case) -> Notification | None:
    """The citizen wrote again on a case someone has: for a critical or high case its worker gets an SMS (the
    console shows every follow-up as unread). The escalation ladder is left as it is: a taken case is not
    escalated again, and an untaken one keeps climbing."""
    if case.priority not in (Priority.CRITICAL, Priority.HIGH):
        return None
    staff = StaffProfile.objects.filter(user_id=case.assigned_to_id, is_active=True).first()
    if staff is None:
        return None
    latest = case.messages.filter(direction="inbound").order_by("-id").values_list("pk", flat=True).first()
    return queue_notification(
        key=f"follow-up:{case.pk}:{latest}", to_number=str(staff.phone or ""), body=texts.follow_up(case),
        kind=NotificationKind.FOLLOW_UP, case=case, recipient=staff.user,
    )  # fmt: skip


# The same words sent on a case within this long are one reply sent twice (a double-click, a retried request).
SAME_REPLY_WITHIN = dt.timedelta(seconds=60)


class ReplyCannotReach(Exception):
    """Nobody could read this reply: no status page, and no SMS the person allows. The message says why, and what
    the worker can do instead, in their words."""


def why_a_reply_cannot_be_texted(case: Case, number: str) -> str:
    """Why a reply on this case may not go by SMS, in the worker's words, or "" when it may. A caller who texted
    us may be texted back; one who called or wrote on the web only when they said SMS is safe: an abuser may read
    the phone, and a voice caller was never asked."""
    if not number:
        return _("The caller's number was withheld: a reply cannot reach them by SMS, and a call back is not "
                 "possible either. Nothing was sent; keep what you meant to say as a note.")  # fmt: skip
    reason = case_selectors.why_the_case_may_not_be_texted(case)
    if reason == case_selectors.SAID_SMS_NOT_SAFE:
        return _("The person said SMS is not safe: nothing was sent. Call them back if they said a call is safe.")
    if reason == case_selectors.OPTED_OUT_OF_SMS:
        return _("The person opted out of SMS: nothing was sent. Call them back if they said a call is safe.")
    if reason:
        return _("The person was not asked whether SMS is safe: nothing was sent. If they said so on the phone, "
                 "record it under “Safe to contact” first; otherwise call them back.")  # fmt: skip
    return ""


def reply_to_citizen(case: Case, text: str, *, by: AbstractBaseUser) -> Message:
    """A reply goes out through the case's channel: SMS for texts, and for calls only when the caller said SMS is
    safe (checked again right before sending, with their opt-out); for web inquiries, the citizen's status page,
    plus an SMS only when they said SMS is safe. Raises ReplyCannotReach when neither would reach them: stored,
    it would read as sent ("your reply is on its way") while nobody can ever see it."""
    with transaction.atomic():
        # The case row first: a double-click's two requests (or an API client's retry after a timeout) come one
        # after the other here, and the second finds the first's reply instead of texting the citizen twice.
        Case.objects.for_change().filter(pk=case.pk).first()
        just_sent = (
            case.messages.filter(direction=Direction.OUTBOUND, created_at__gte=timezone.now() - SAME_REPLY_WITHIN)
            .order_by("-created_at")
            .first()
        )
        if just_sent is not None and just_sent.body == text:
            return just_sent
        number = str(case.caller.phone) if case.caller_id else str(case.contact_phone or "")
        why_not_sms = why_a_reply_cannot_be_texted(case, number)
        has_status_page = case.channel == Channel.WEB and bool(case.citizen_token_hash)
        if why_not_sms and not has_status_page:
            raise ReplyCannotReach(why_not_sms)
        by_sms = not why_not_sms
        message = case_services.record_reply(
            case, text, by=by, channel=Channel.SMS if by_sms else Channel.WEB,
            delivery_status=DeliveryStatus.QUEUED if by_sms else "",
        )  # fmt: skip
        if by_sms:
            queue_notification(
                key=f"reply:{message.pk}", to_number=number, body=text, kind=NotificationKind.CITIZEN_REPLY,
                case=case, message=message,
            )  # fmt: skip
    return message


RELAY_BACKOFF_SECONDS = 60


def relay_queued(now: dt.datetime | None = None, *, limit: int = 200) -> int:
    """Rings the sender again for notifications still queued (the broker was down, a task was lost), settles sends
    a lost worker left half-done (asking Twilio first), and queues again what a Twilio outage made fail while it
    is still wanted (requeue_after_outage). Returns how many doorbells it rang."""
    now = now or timezone.now()
    reconcile_interrupted_sends(now)
    requeue_after_outage(now)
    due = list(
        Notification.objects.filter(status=DeliveryStatus.QUEUED, created_at__lt=now - dt.timedelta(seconds=10))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .select_related("case")
        .only("pk", "attempts", "kind", "idempotency_key", "case", "case__priority")  # what is_alert reads
        .order_by("created_at")[:limit]
    )
    rung = 0
    for notification in due:
        notification_id, attempts = notification.pk, notification.attempts
        # Rung again only RELAY_BACKOFF after the last ring for the same attempt: in a surge a queued row is
        # usually waiting in a long queue, not lost, and a ring every tick (10 s) added up to 200 copies a tick to
        # the very queue that was behind: after a 5-minute drill, 83 copies of each waiting alert, 8,000 in all,
        # kept the workers busy for an hour. A new attempt (a retry, a lost worker's row queued again) rings at once.
        if cache.add(f"relay-rung:{notification_id}:{attempts}", 1, timeout=RELAY_BACKOFF_SECONDS):
            publish(SEND_TASK, notification_id, queue=queue_of(notification))  # an alert stays on the alerts queue
            rung += 1
    return rung


# --- After a lost worker or a provider outage ----------------------------------------------------------------


def reconcile_interrupted_sends(now: dt.datetime, *, limit: int = 50) -> int:
    """A row still "sending" after its grace belongs to a worker that died, maybe inside the Twilio call. Twilio
    is asked whether it has the message; only when it has not is the notification queued again. When Twilio
    cannot be asked, the row waits: sending blindly is how a worker's SMS went out twice."""
    stuck = list(
        Notification.objects.filter(status=DeliveryStatus.SENDING)
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True, created_at__lt=now - SENDING_GRACE))
        .order_by("next_attempt_at", "pk")[:limit]
    )
    for notification in stuck:
        if not _reconcile(notification, now):
            break  # Twilio cannot be asked: the others wait for the next tick rather than for timeouts
    return len(stuck)


# How long an alert whose worker was lost inside the send waits for Twilio to say whether it got through.
ALERT_LOST_SEND_WAITS_AT_MOST = SENDING_GRACE * (1 + WAITS_BEFORE_AN_ALERT_GOES_ANYWAY)


def _reconcile(notification: Notification, now: dt.datetime) -> bool:
    """Settles one interrupted send; False when the provider could not be asked."""
    # The claim's own time: the due time moves each time this waits for Twilio, and read back from it, the second
    # look began after the call had been placed, missed it, and placed it again. (A row claimed before claimed_at
    # was kept has only its due time.)
    claimed_at = notification.claimed_at or (
        notification.next_attempt_at - SENDING_GRACE if notification.next_attempt_at else None
    )
    # An SMS is matched by its whole text, so any message since the row was written may be it; a call has no text,
    # so only calls from a little before the claim count.
    since = notification.created_at if notification.channel != NotificationChannel.VOICE else (
        claimed_at or notification.created_at
    )
    since -= dt.timedelta(seconds=5)  # Twilio's clock and ours
    backend = DrillBackend() if notification.is_drill else get_backend()
    lookup = backend.find_sent(_outgoing(notification), since=since, known_sids=_known_sids(notification))
    with transaction.atomic():
        current = (
            Notification.objects.for_change(skip_locked=True, of=("self",))
            .select_related("case")
            .filter(pk=notification.pk, status=DeliveryStatus.SENDING, attempts=notification.attempts)
            .first()
        )
        if current is None:
            return True  # the worker was not lost after all, or another relay settled it
        if not lookup.known and is_alert(current) and claimed_at and now - claimed_at >= ALERT_LOST_SEND_WAITS_AT_MOST:
            # As in `deliver`: a worker told twice of a critical case is better than never told. A worker killed
            # inside the call (a deploy, the memory limit) while Twilio's list could not be read kept it for ever.
            DeliveryAttempt.objects.create(notification=current, result="lost", detail=CANNOT_BE_ASKED[:500])
            current.status, current.next_attempt_at, current.last_error_code = DeliveryStatus.QUEUED, now, ""
            current.save(update_fields=["status", "next_attempt_at", "last_error_code"])
            logger.error("notification %s: its worker was lost inside the send and Twilio still cannot be asked "
                         "after %d s; the alert is sent again anyway (a duplicate is better than none)", current.pk,
                         ALERT_LOST_SEND_WAITS_AT_MOST.total_seconds())  # fmt: skip
            return False
        if not lookup.known:
            current.next_attempt_at = now + SENDING_GRACE
            current.save(update_fields=["next_attempt_at"])
            logger.warning("notification %s: sending interrupted, Twilio cannot be asked yet", current.pk)
            return False
        if lookup.was_sent:
            DeliveryAttempt.objects.create(
                notification=current, result=SENT, detail="found at the provider after its worker was lost"
            )
            _mark_sent(current, lookup.provider_sid)
            logger.warning("notification %s: the lost worker had sent it; not sent again", current.pk)
            return True
        DeliveryAttempt.objects.create(notification=current, result="lost", detail="its worker was lost before sending")
        current.status, current.next_attempt_at = DeliveryStatus.QUEUED, now
        current.save(update_fields=["status", "next_attempt_at"])
        logger.warning("notification %s: its worker was lost before the provider had it; queued again", current.pk)
    return True


def _last_attempt(field: str) -> Subquery:
    attempts = DeliveryAttempt.objects.filter(notification=OuterRef("pk")).order_by("-at", "-pk")
    return Subquery(attempts.values(field)[:1])


def last_successful_send() -> dt.datetime | None:
    """When the provider last took a message (drills and alerts about the provider itself aside)."""
    return (
        DeliveryAttempt.objects.filter(result=SENT, notification__is_drill=False)
        .exclude(notification__idempotency_key__startswith=DELIVERY_ALERT_PREFIX)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )


# A reply sent late would contradict the worker's newer one ("go to the station now" after "do NOT go"), and a
# "citizen wrote again" SMS is moot once the worker has answered.
OVERTAKEN_BY_A_NEWER_REPLY = (NotificationKind.CITIZEN_REPLY, NotificationKind.FOLLOW_UP)


def _newer_replies_on_the_case() -> QuerySet[Message]:
    """A worker's replies on the outer notification's case written after it (a reply's own message is written just
    before its notification, and has the lower id). Not a crisis event's answer or broadcast: those go to everyone
    in the event, and overtake nothing a worker wrote to this citizen (floods and Twilio outages come together)."""
    sent_by_a_crisis_event = Notification.objects.filter(
        message=OuterRef("pk"), kind__in=(NotificationKind.CRISIS_ANSWER, NotificationKind.CRISIS_BROADCAST)
    )
    return (
        Message.objects.filter(case=OuterRef("case"), direction=Direction.OUTBOUND)
        .filter(Q(created_at__gt=OuterRef("created_at")) | Q(pk__gt=OuterRef("message_id")))
        .exclude(Exists(sent_by_a_crisis_event))
    )


def requeue_after_outage(now: dt.datetime, *, limit: int = 200) -> int:
    """Messages that failed for good on transient errors (Twilio 503s for minutes) in the last day and are still
    wanted are queued again once Twilio took any message after their last try: staff alerts whose case still waits,
    a worker's reply to a citizen or the "citizen wrote again" SMS while the case is open and the worker has not
    replied since. Until then one of them, the most urgent, is tried every NOTIFICATION_OUTAGE_PROBE_SECONDS as a
    probe. Never one whose case was taken (or closed), whose recipient no longer holds the case, that the citizen
    may no longer be texted, or that failed on a permanent error (invalid number, unsubscribed).

    Never an alarm without a case either: nothing here can tell whether it is still true. A home visit's alarm went
    out after the worker had checked out safe and the all-clear was sent (while a visit stays overdue its ladder
    repeats every few minutes anyway), and "staff alerts are failing" after they worked again (its all-clear
    follows, and a new outage writes a new alert)."""
    probe_every = dt.timedelta(seconds=getattr(settings, "NOTIFICATION_OUTAGE_PROBE_SECONDS", 60))
    still_wanted = (
        Q(kind__in=STOPS_WHEN_ACKNOWLEDGED, case__status__in=WAITING_FOR_ACKNOWLEDGEMENT)
        | Q(kind=NotificationKind.FOLLOW_UP, case__status__in=OPEN_STATUSES)
        | Q(kind=NotificationKind.CITIZEN_REPLY, case__status__in=OPEN_STATUSES) & CITIZEN_MAY_BE_TEXTED
    )
    failed = (
        Notification.objects.filter(
            still_wanted, status=DeliveryStatus.FAILED, provider_sid__isnull=True, is_drill=False,
            created_at__gte=now - dt.timedelta(days=1),
        )
        .exclude(
            Q(kind__in=(NotificationKind.ASSIGNMENT, NotificationKind.REMINDER, NotificationKind.FOLLOW_UP))
            & ~Q(recipient_id=F("case__assigned_to_id"))
        )
        .exclude(Q(kind__in=OVERTAKEN_BY_A_NEWER_REPLY) & Exists(_newer_replies_on_the_case()))
        .annotate(last_result=_last_attempt("result"), last_at=_last_attempt("at"))
        .filter(last_result=RETRY)
    )  # fmt: skip
    recovered_at = last_successful_send()
    requeued = []
    if recovered_at is not None:
        requeued = list(failed.filter(last_at__lt=recovered_at).values_list("pk", flat=True)[:limit])
    if not requeued:
        probe = (
            failed.filter(last_at__lte=now - probe_every)
            .order_by(SqlCase(When(case__priority=Priority.CRITICAL, then=0), default=1), "last_at")
            .values_list("pk", flat=True)
            .first()
        )
        requeued = [probe] if probe is not None else []
    if requeued:
        Notification.objects.filter(pk__in=requeued, status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.QUEUED, next_attempt_at=now
        )
        # The worker's screen shows the reply on its way again, not failed.
        Message.objects.filter(
            pk__in=Notification.objects.filter(pk__in=requeued, status=DeliveryStatus.QUEUED).values("message_id")
        ).update(delivery_status=DeliveryStatus.QUEUED)
        logger.warning("%d messages that failed during a provider outage queued again", len(requeued))
    return len(requeued)


def record_delivery_status(
    *, provider_sid: str, status: str, error_code: str = "", notification_id: int | None = None
) -> bool:
    """Twilio's status callback; True when it changed a notification. Callbacks arrive out of order, and a
    notification only ever moves forward. Twilio posts one for every step of every message, and most change
    nothing (the "sent" after the worker recorded the send), so the UPDATE itself checks the move forward: such a
    callback costs two statements that touch nothing, no read, no lock held between round trips.
    `notification_id` (the token in the callback URL) finds a notification whose SID a lost worker never wrote."""
    if status not in DELIVERY_PROGRESS:
        return False
    if _move_forward(provider_sid, status, error_code):
        return True
    if notification_id is None or _settle_lost_send(provider_sid, notification_id) is None:
        return False
    _move_forward(provider_sid, status, error_code)
    return True


def _move_forward(provider_sid: str, status: str, error_code: str) -> bool:
    """The status moves forward in one conditional UPDATE, which is the gate: a callback repeated, or overtaken by a
    later one, matches no row. What follows the move (the citizen's message shows it, the log gets a line) is
    written after it; a process killed in between leaves the status right and a line of the log missing."""
    behind = [earlier for earlier, rank in DELIVERY_PROGRESS.items() if rank < DELIVERY_PROGRESS[status]]
    changes = {"status": status, **({"last_error_code": error_code} if error_code else {})}
    by_sid = Notification.objects.filter(provider_sid=provider_sid)
    if not by_sid.filter(status__in=behind).update(**changes):
        return False
    # What the log line needs too (described): the case, the kind, the channel.
    notification = by_sid.only(
        "pk", "message_id", "recipient_id", "case_id", "kind", "channel", "idempotency_key"
    ).get()
    _mirror_to_message(notification, status)
    DeliveryAttempt.objects.create(notification=notification, result=f"callback {status}"[:20], error_code=error_code)
    if status == DeliveryStatus.DELIVERED:
        phone_receives(notification.recipient_id)
    elif status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED):
        phone_fails(notification.recipient_id, about=notification, reason=plain_reason(error_code))
    return True


def phone_fails(user_id: int | None, *, about: Notification | None = None, reason: str = "") -> None:
    """What we sent to this staff member's phone did not arrive: marked with the time of the latest such report.
    The mark counts for PHONE_FAILING_COUNTS_FOR (helpline.roster.selectors): a phone switched off for the night
    (30003) is not passed over all the next shift."""
    if user_id is not None and StaffProfile.objects.filter(user_id=user_id).update(
        phone_failing_since=timezone.now()
    ):
        forget_who_is_on_duty()  # the next assignment here passes them over (other processes within a second)
        logger.warning("messages to a staff member's phone (user %s) are not arriving: %s, %s", user_id,
                       described(about) if about is not None else "?", reason or "no reason given")  # fmt: skip


def phone_receives(user_id: int | None) -> None:
    """Something reached the phone (delivered, a call answered) or came from it: it works again."""
    if user_id is not None and StaffProfile.objects.filter(user_id=user_id, phone_failing_since__isnull=False).update(
        phone_failing_since=None
    ):
        forget_who_is_on_duty()


def _by_sid_or_token(provider_sid: str, notification_id: int | None) -> Notification | None:
    notification = Notification.objects.for_change().filter(provider_sid=provider_sid).first()
    if notification is not None or notification_id is None:
        return notification
    return _settle_lost_send(provider_sid, notification_id)


def _settle_lost_send(provider_sid: str, notification_id: int) -> Notification | None:
    """A callback names a notification still "sending" with no SID: Twilio has it, so it went out, whatever
    happened to the worker. The UPDATE is the claim (a worker coming back late finds the row already sent)."""
    claimed = Notification.objects.filter(pk=notification_id, provider_sid__isnull=True, status=DeliveryStatus.SENDING)
    if not claimed.update(**_sent_fields(provider_sid)):
        return None
    notification = Notification.objects.select_related("case").get(pk=notification_id)
    DeliveryAttempt.objects.create(notification=notification, result=SENT, detail=_callback_detail(provider_sid))
    _after_sent(notification)
    # Not a warning: a callback may simply overtake a worker that is alive and about to record the send.
    logger.info("notification %s: Twilio's status callback came before its worker recorded the send; recorded "
                "as sent", notification.pk)  # fmt: skip
    return notification


def record_staff_call_outcome(*, provider_sid: str, call_status: str, notification_id: int | None = None) -> None:
    """A critical-case call to a worker that was busy or not answered is tried once more after a short wait. A call
    with no case (a home visit's overdue call or alarm) is not: its own ladder rings again while the visit is still
    overdue, and by the time Twilio says "busy" the worker may have checked out and the all-clear gone."""
    with transaction.atomic():
        notification = _by_sid_or_token(provider_sid, notification_id)
        if notification is None:
            return
        DeliveryAttempt.objects.create(
            notification=notification, result=f"call {call_status}", detail=_callback_detail(provider_sid)
        )
        try_again = notification.case_id is not None and notification.attempts < 2
        if call_status in ("busy", "no-answer", "failed") and try_again:
            notification.status = DeliveryStatus.QUEUED
            notification.provider_sid = None
            notification.next_attempt_at = timezone.now() + dt.timedelta(seconds=settings.STAFF_CALL_RETRY_SECONDS)
            notification.save(update_fields=["status", "provider_sid", "next_attempt_at"])
        elif call_status == "completed":
            notification.status = DeliveryStatus.DELIVERED
            notification.save(update_fields=["status"])
            phone_receives(notification.recipient_id)
        if call_status == "failed":
            phone_fails(notification.recipient_id, about=notification, reason="the call failed")


# --- Roster gaps -------------------------------------------------------------------------------------------


def send_roster_gap_report() -> int:
    """Once a day: the coming week's gaps to every supervisor, so a gap is found before a citizen finds it."""
    gaps = coming_week_gaps()
    if not gaps:
        return 0
    body = texts.roster_gaps(gaps)
    today = timezone.localdate().isoformat()
    sent = 0
    for supervisor in all_supervisors():
        sent += bool(
            queue_notification(
                key=f"gaps:{today}:{supervisor.pk}",
                to_number=str(supervisor.phone),
                body=body,
                kind=NotificationKind.ROSTER_GAPS,
                recipient=supervisor.user,
            )
        )
    return sent


# --- Anonymisation (helpline.privacy) -------------------------------------------------------------------------


def forget_case_messages(case: Case) -> int:
    """A case's personal data is being removed: the texts sent about it go, and so does the citizen's number on the
    replies to them. Kind, channel, recipient (staff), times and delivery states stay for the figures and the
    delivery health. Returns how many notifications were touched.

    The citizen's number goes from everything sent to them (a reply, a crisis event's answer or broadcast), and
    the providers' error texts go from the delivery attempts (Twilio quotes the number: "The 'To' number +387...
    is not a valid mobile number")."""
    Notification.objects.filter(case=case, kind__in=TO_CITIZENS).update(to_number="")
    DeliveryAttempt.objects.filter(notification__case=case).update(detail="")
    # A broadcast counts each citizen once by their number's key: the row stays for the broadcast's figures, keyed
    # by itself, so the key no longer says that this number was reached.
    for recipient in BroadcastRecipient.objects.filter(case=case, citizen__startswith="phone:"):
        BroadcastRecipient.objects.filter(pk=recipient.pk).update(citizen=f"erased:{recipient.pk}")
    return Notification.objects.filter(case=case).update(body="", last_error="")
