"""The outbox: every message the helpline sends is a row written with the event that causes it, sent by a task
that only rings the doorbell, found again by the relay if its message was lost, and never sent twice."""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from helpline.cases import services as case_services
from helpline.cases.dispatch import CRITICAL_QUEUE, NOTIFICATIONS_QUEUE, RETRY_QUEUE, enqueue_after_commit, publish
from helpline.cases.models import Case, CaseStatus, Channel, EventKind, Message, Priority
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import all_supervisors
from helpline.roster.services import coming_week_gaps
from notifications import texts
from notifications.backends import DrillBackend, OutgoingMessage, get_backend
from notifications.models import (
    DELIVERY_PROGRESS,
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
) -> Notification | None:
    """Write one notification (once per key) and ring the sender after commit. Returns None when the key exists."""
    if not to_number:
        logger.warning("no phone number for %s notification on %s", kind, case.reference if case else "-")
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                idempotency_key=key[:200], to_number=to_number, body=body, kind=kind, case=case,
                recipient=recipient, channel=channel, message=message, is_drill=bool(case and case.is_drill),
                ack_code=ack_code,
            )  # fmt: skip
    except IntegrityError:
        return None  # already written by an earlier run: never twice
    enqueue_after_commit(SEND_TASK, notification.pk, queue=queue_for(case))
    return notification


def queue_for(case: Case | None) -> str:
    """About a critical case, a message rides the critical queue: a surge of other notifications never delays it."""
    return CRITICAL_QUEUE if case is not None and case.priority == Priority.CRITICAL else NOTIFICATIONS_QUEUE


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


def _take_send_slot() -> bool:
    """Twilio long codes take about one message a second: a shared per-second budget for the sending number."""
    bucket = f"sms-rate:{settings.TWILIO_PHONE_NUMBER}:{int(time.time())}"
    if cache.add(bucket, 1, timeout=5):
        return True
    try:
        return cache.incr(bucket) <= settings.SMS_PER_SECOND
    except ValueError:
        return True


def _retry_delay(attempts: int) -> dt.timedelta:
    base = settings.NOTIFICATION_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    return dt.timedelta(seconds=min(base, 300) * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not secrecy


def _why_not_send(notification: Notification) -> str:
    """Re-checked right before every send, under the row lock: the world may have changed since it was queued."""
    case = notification.case
    if case is None:
        return ""
    if notification.kind in STOPS_WHEN_ACKNOWLEDGED and case.status not in WAITING_FOR_ACKNOWLEDGEMENT:
        return f"case is {case.status}"
    if notification.kind == NotificationKind.CITIZEN_REPLY:
        if case.safe_to_text is False:
            return "the citizen said SMS is not safe"
        if case.caller_id and case.caller.has_opted_out:
            return "the citizen opted out of SMS"
    return ""


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
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
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
        if not _take_send_slot():
            notification.next_attempt_at = now + dt.timedelta(seconds=1)
            notification.save(update_fields=["next_attempt_at"])
            return DeliveryOutcome(DeliveryStatus.QUEUED, retry_in=1, queue=queue_for(notification.case))
        notification.status = DeliveryStatus.SENDING
        notification.attempts += 1
        notification.save(update_fields=["status", "attempts"])
    message = OutgoingMessage(notification.pk, str(notification.to_number), notification.body, notification.channel)
    backend = DrillBackend() if notification.is_drill else get_backend()
    return _record_send_result(notification, backend.send(message))


@transaction.atomic
def _record_send_result(notification: Notification, result) -> DeliveryOutcome:
    notification = Notification.objects.select_for_update().get(pk=notification.pk)
    DeliveryAttempt.objects.create(
        notification=notification, result="sent" if result.ok else ("retry" if result.transient else "failed"),
        error_code=result.error_code, detail=result.detail,
    )  # fmt: skip
    if result.ok:
        notification.status, notification.provider_sid, notification.sent_at = (
            DeliveryStatus.SENT, result.provider_sid, timezone.now()
        )  # fmt: skip
        notification.save(update_fields=["status", "provider_sid", "sent_at"])
        _mirror_to_message(notification, DeliveryStatus.SENT)
        if notification.case_id and notification.message_id is None:
            case_services.record_event(
                notification.case, EventKind.MESSAGE_SENT, notification_id=notification.pk,
                notification_kind=notification.kind,
                channel=notification.channel, recipient_id=notification.recipient_id,
            )  # fmt: skip
        return DeliveryOutcome(DeliveryStatus.SENT)
    notification.last_error, notification.last_error_code = result.detail[:500], result.error_code
    if result.transient and notification.attempts < settings.NOTIFICATION_MAX_ATTEMPTS:
        delay = _retry_delay(notification.attempts)
        notification.status, notification.next_attempt_at = DeliveryStatus.QUEUED, timezone.now() + delay
        notification.save(update_fields=["status", "next_attempt_at", "last_error", "last_error_code"])
        logger.warning("notification %s: transient failure %s, retry in %.0fs", notification.pk, result.error_code,
                       delay.total_seconds())  # fmt: skip
        is_critical = notification.case is not None and notification.case.priority == Priority.CRITICAL
        retry_queue = CRITICAL_QUEUE if is_critical else RETRY_QUEUE
        return DeliveryOutcome(DeliveryStatus.QUEUED, retry_in=delay.total_seconds(), queue=retry_queue)
    notification.status = DeliveryStatus.FAILED
    notification.save(update_fields=["status", "last_error", "last_error_code"])
    _mirror_to_message(notification, DeliveryStatus.FAILED)
    logger.error("notification %s failed for good: %s", notification.pk, result.error_code)
    return DeliveryOutcome(DeliveryStatus.FAILED)


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


def reply_to_citizen(case: Case, text: str, *, by: AbstractBaseUser) -> Message:
    """A reply goes out through the case's channel: SMS for calls and texts (if the person allows SMS and has not
    opted out, checked again right before sending); for web inquiries, the citizen's status page, plus an SMS
    only when they said SMS is safe."""
    with transaction.atomic():
        number = str(case.caller.phone) if case.caller_id else str(case.contact_phone or "")
        by_sms = bool(number) and (case.channel != Channel.WEB or case.safe_to_text is True)
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


def relay_queued(now: dt.datetime | None = None, *, limit: int = 200) -> int:
    """Rings the sender again for notifications still queued (the broker was down, a task was lost) and
    recovers sends a crashed worker left half-done."""
    now = now or timezone.now()
    Notification.objects.filter(status=DeliveryStatus.SENDING, created_at__lt=now - dt.timedelta(minutes=5)).update(
        status=DeliveryStatus.QUEUED
    )
    due = list(
        Notification.objects.filter(status=DeliveryStatus.QUEUED, created_at__lt=now - dt.timedelta(seconds=10))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for notification_id in due:
        publish(SEND_TASK, notification_id, queue=NOTIFICATIONS_QUEUE)
    return len(due)


def record_delivery_status(*, provider_sid: str, status: str, error_code: str = "") -> Notification | None:
    """Twilio's status callback. Callbacks arrive out of order; a notification only ever moves forward."""
    if status not in DELIVERY_PROGRESS:
        return None
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(provider_sid=provider_sid).first()
        if notification is None:
            return None
        if DELIVERY_PROGRESS[status] > DELIVERY_PROGRESS[notification.status]:
            notification.status = status
            if error_code:
                notification.last_error_code = error_code
            notification.save(update_fields=["status", "last_error_code"])
            _mirror_to_message(notification, status)
            DeliveryAttempt.objects.create(notification=notification, result=status, error_code=error_code)
    return notification


def record_staff_call_outcome(*, provider_sid: str, call_status: str) -> None:
    """A critical-case call to a worker that was busy or not answered is tried once more after a short wait."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(provider_sid=provider_sid).first()
        if notification is None:
            return
        DeliveryAttempt.objects.create(notification=notification, result=f"call {call_status}")
        if call_status in ("busy", "no-answer", "failed") and notification.attempts < 2:
            notification.status = DeliveryStatus.QUEUED
            notification.provider_sid = None
            notification.next_attempt_at = timezone.now() + dt.timedelta(seconds=settings.STAFF_CALL_RETRY_SECONDS)
            notification.save(update_fields=["status", "provider_sid", "next_attempt_at"])
        elif call_status == "completed":
            notification.status = DeliveryStatus.DELIVERED
            notification.save(update_fields=["status"])


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
