"""The outbox, acknowledgement and the escalation ladder.

The database is the truth: a notification is a row written with the event that causes it, sent by a task that
only rings the doorbell, and found again by the relay if its message was lost. A case's next escalation step and
its due time live on the case; the sweep claims due cases with SKIP LOCKED and runs a step only if the case is
still at the step it expects (a fencing token), so two beats or a redelivered task never run a step twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from helpline import services as case_services
from helpline.dispatch import enqueue_after_commit, publish
from helpline.models import OPEN_STATUSES, Case, CaseStatus, Channel, EventKind, Message, Priority
from helpline.selectors import is_supervisor
from notifications import texts
from notifications.backends import DrillBackend, OutgoingMessage, get_backend
from notifications.models import (
    DELIVERY_PROGRESS,
    DeliveryAttempt,
    DeliveryStatus,
    EscalationPolicy,
    Notification,
    NotificationChannel,
    NotificationKind,
    StepAction,
)
from triage.models import Role, StaffProfile
from triage.selectors import on_duty, supervisors_on_duty

logger = logging.getLogger(__name__)

SEND_TASK = "notifications.tasks.send_notification"
NOTIFICATIONS_QUEUE = "notifications"
CRITICAL_QUEUE = "critical"
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
            )  # fmt: skip
    except IntegrityError:
        return None  # already written by an earlier run: never twice
    enqueue_after_commit(SEND_TASK, notification.pk, queue=queue_for(case))
    return notification


def queue_for(case: Case | None) -> str:
    """About a critical case, a message rides the critical queue: a surge of other notifications never delays it."""
    return CRITICAL_QUEUE if case is not None and case.priority == Priority.CRITICAL else NOTIFICATIONS_QUEUE


def notify_staff(
    staff: StaffProfile, case: Case, *, kind: str, key: str, body: str, call_too: bool = False
) -> list[Notification]:
    sent = []
    for channel in [NotificationChannel.SMS] + ([NotificationChannel.VOICE] if call_too else []):
        notification = queue_notification(
            key=f"{key}:{channel}", to_number=str(staff.phone or ""), body=body, kind=kind, case=case,
            recipient=staff.user, channel=channel,
        )  # fmt: skip
        if notification:
            sent.append(notification)
    return sent


# --- Acknowledgement deadlines -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ladder:
    acknowledge_within_minutes: int
    steps: tuple[tuple[int, str, int], ...]  # (number, action, minutes to wait after it)


_LADDER_ACTIONS = (
    StepAction.REMIND_ASSIGNEE, StepAction.REASSIGN, StepAction.NOTIFY_SUPERVISOR_ON_DUTY,
    StepAction.NOTIFY_ALL_SUPERVISORS,
)  # fmt: skip
# Used when a priority has no policy in the database: a deleted policy must never stop a case from escalating.
FALLBACK_LADDERS = {
    priority: Ladder(deadline, tuple((n, *step) for n, step in enumerate(zip(_LADDER_ACTIONS, waits, strict=True), 1)))
    for priority, (deadline, waits) in {
        Priority.CRITICAL: (2, (1, 2, 2, 5)), Priority.HIGH: (5, (3, 5, 5, 10)),
        Priority.NORMAL: (15, (10, 15, 15, 30)), Priority.LOW: (60, (30, 60, 60, 120)),
    }.items()
}  # fmt: skip


def ladder_for(priority: str) -> Ladder:
    policy = EscalationPolicy.objects.filter(priority=priority or Priority.NORMAL).first()
    steps = tuple(policy.steps.values_list("number", "action", "wait_minutes").order_by("number")) if policy else ()
    if policy is None or not steps:
        return FALLBACK_LADDERS.get(priority or Priority.NORMAL, FALLBACK_LADDERS[Priority.NORMAL])
    return Ladder(policy.acknowledge_within_minutes, steps)


def start_acknowledgement_clock(case: Case, staff: StaffProfile) -> None:
    """A case was given to someone: tell them (a phone call too when it is critical) and start the deadline."""
    deadline = timezone.now() + dt.timedelta(minutes=ladder_for(case.priority).acknowledge_within_minutes)
    case_services.set_escalation_state(case, acknowledge_by=deadline, due_at=deadline, step=0)
    notify_staff(
        staff, case, kind=NotificationKind.ASSIGNMENT, key=f"assign:{case.pk}:{staff.pk}:{case.escalation_step}",
        body=texts.assignment(case), call_too=case.priority == Priority.CRITICAL,
    )  # fmt: skip


class NotAllowed(Exception):
    """The person may not acknowledge this case (it is someone else's)."""


@transaction.atomic
def acknowledge_case(case: Case, *, by: AbstractBaseUser, via: str) -> Case:
    """The assignee (or a supervisor) has taken the case: the ladder stops at once and queued reminders are
    cancelled. Acknowledging twice is harmless."""
    locked = Case.objects.select_for_update().get(pk=case.pk)
    if locked.assigned_to_id not in (None, by.pk) and not is_supervisor(by):
        raise NotAllowed
    if locked.status in (CaseStatus.ACKNOWLEDGED, CaseStatus.IN_PROGRESS):
        return locked
    if locked.assigned_to_id != by.pk:
        locked = case_services.assign_case(locked, by, by=by, explanation=f"took the case ({via})")
    locked = case_services.change_case_status(locked, CaseStatus.ACKNOWLEDGED, actor=by, reason=via)
    case_services.set_escalation_state(locked, due_at=None, acknowledged_at=timezone.now())
    case_services.record_event(locked, EventKind.ACKNOWLEDGED, actor=by, via=via)
    Notification.objects.filter(case=locked, kind__in=STOPS_WHEN_ACKNOWLEDGED, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.CANCELLED, last_error="case acknowledged"
    )
    case.status = locked.status
    return locked


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
    queue: str = "notifications"  # where a retry goes: a critical case's messages stay on the critical queue


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
        retry_queue = queue_for(notification.case)
        return DeliveryOutcome(DeliveryStatus.QUEUED, retry_in=delay.total_seconds(), queue=retry_queue)
    notification.status = DeliveryStatus.FAILED
    notification.save(update_fields=["status", "last_error", "last_error_code"])
    _mirror_to_message(notification, DeliveryStatus.FAILED)
    logger.error("notification %s failed for good: %s", notification.pk, result.error_code)
    return DeliveryOutcome(DeliveryStatus.FAILED)


def _mirror_to_message(notification: Notification, status: str) -> None:
    if notification.message_id:
        Message.objects.filter(pk=notification.message_id).update(delivery_status=status[:20])


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


# --- The escalation ladder ---------------------------------------------------------------------------------


def run_due_escalations(now: dt.datetime | None = None, *, limit: int = 100) -> int:
    """Claim cases whose next step is due and run each step once. Safe with two beats: SKIP LOCKED plus the
    step-number check."""
    now = now or timezone.now()
    done = 0
    with transaction.atomic():
        due = list(
            Case.objects.select_for_update(skip_locked=True)
            .filter(escalation_due_at__lte=now, status__in=WAITING_FOR_ACKNOWLEDGEMENT)
            .order_by("escalation_due_at")[:limit]
        )
        for case in due:
            done += run_escalation_step(case, expected_step=case.escalation_step + 1, now=now)
    return done


def run_escalation_step(case: Case, *, expected_step: int, now: dt.datetime) -> bool:
    """Run step `expected_step` of the case's ladder if the case is still waiting for it (fencing token)."""
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if (
            locked.escalation_step != expected_step - 1
            or locked.escalation_due_at is None
            or locked.status not in WAITING_FOR_ACKNOWLEDGEMENT
        ):
            return False
        if locked.assigned_to_id is None:
            _notify_all_supervisors(locked, step=expected_step, reason="nobody on duty could take the case")
            case_services.set_escalation_state(locked, due_at=None, step=expected_step, escalated=True)
            return True
        steps = ladder_for(locked.priority).steps
        step = next((s for s in steps if s[0] == expected_step), None)
        if step is None:
            case_services.set_escalation_state(locked, due_at=None, step=expected_step - 1)
            return False
        _, action, wait_minutes = step
        _run_action(locked, action, expected_step)
        is_last = expected_step == max(number for number, _, _ in steps)
        case_services.set_escalation_state(
            locked,
            due_at=None if is_last else now + dt.timedelta(minutes=wait_minutes),
            step=expected_step,
            escalated=True if action == StepAction.NOTIFY_ALL_SUPERVISORS else None,
        )
        due = case.escalation_due_at
        case_services.record_event(
            locked, EventKind.ESCALATED, step=expected_step, action=action,
            lateness_seconds=round((now - due).total_seconds(), 1) if due else None,
        )  # fmt: skip
        return True


def _run_action(case: Case, action: str, step: int) -> None:
    assignee = StaffProfile.objects.filter(user_id=case.assigned_to_id).first()
    if action == StepAction.REMIND_ASSIGNEE and assignee:
        notify_staff(
            assignee, case, kind=NotificationKind.REMINDER, key=f"step:{case.pk}:{step}", body=texts.reminder(case),
            call_too=case.priority == Priority.CRITICAL,
        )  # fmt: skip
    elif action == StepAction.REASSIGN:
        _reassign(case, step, exclude=case.assigned_to_id)
    elif action == StepAction.NOTIFY_SUPERVISOR_ON_DUTY:
        supervisors = list(supervisors_on_duty(timezone.now()))[:1] or _all_supervisors()[:1]
        for supervisor in supervisors:
            notify_staff(
                supervisor, case, kind=NotificationKind.ESCALATION, key=f"step:{case.pk}:{step}:{supervisor.pk}",
                body=texts.escalation(case),
            )  # fmt: skip
    elif action == StepAction.NOTIFY_ALL_SUPERVISORS:
        _notify_all_supervisors(case, step=step, reason="not acknowledged in time")


def _reassign(case: Case, step: int, *, exclude: int | None) -> None:
    from triage.selectors import with_open_case_counts

    candidates = [
        staff
        for staff in with_open_case_counts(on_duty(timezone.now(), role=Role.WORKER).exclude(user_id=exclude))
        if case.language in (staff.languages or [])
    ]
    if not candidates:
        case_services.record_event(case, EventKind.NOTE, note="no other worker on duty to take the case")
        return
    chosen = min(candidates, key=lambda s: (s.open_cases >= s.max_open_cases, s.open_cases, s.pk))
    case_services.assign_case(case, chosen.user, explanation=f"escalation step {step}: not acknowledged in time")
    notify_staff(
        chosen, case, kind=NotificationKind.ASSIGNMENT, key=f"step:{case.pk}:{step}", body=texts.assignment(case),
        call_too=case.priority == Priority.CRITICAL,
    )  # fmt: skip


def _all_supervisors() -> list[StaffProfile]:
    return list(StaffProfile.objects.filter(role=Role.SUPERVISOR, is_active=True).exclude(phone="").order_by("pk"))


def _notify_all_supervisors(case: Case, *, step: int, reason: str) -> None:
    for supervisor in _all_supervisors():
        notify_staff(
            supervisor, case, kind=NotificationKind.ESCALATION, key=f"step:{case.pk}:{step}:{supervisor.pk}",
            body=texts.escalation(case),
        )  # fmt: skip
    case_services.record_event(case, EventKind.ESCALATED, step=step, action="notify_all_supervisors", reason=reason)


# --- Staff commands by SMS ---------------------------------------------------------------------------------


def staff_for_number(phone_e164: str | None) -> StaffProfile | None:
    if not phone_e164:
        return None
    return StaffProfile.objects.select_related("user").filter(phone=phone_e164, is_active=True).first()


def handle_staff_sms(staff: StaffProfile, body: str) -> str:
    """An SMS from a registered staff phone is a command, never a citizen case: OK, OK SOS-2026-00042 or 1."""
    words = body.strip().upper().replace(",", " ").split()
    if not words or words[0] not in ("OK", "1", "DA", "YES"):
        return texts.command_help()
    cases = Case.objects.filter(assigned_to=staff.user, status__in=OPEN_STATUSES)
    if len(words) > 1:
        case = cases.filter(reference=words[1]).first() or Case.objects.filter(reference=words[1]).first()
    else:
        case = cases.filter(status=CaseStatus.ASSIGNED).order_by("-priority", "acknowledge_by").first()
    if case is None:
        return texts.nothing_to_acknowledge()
    try:
        acknowledge_case(case, by=staff.user, via="SMS")
    except NotAllowed:
        return texts.not_yours(case)
    return texts.acknowledged(case)


def acknowledged_by_key_press(notification_id: int) -> bool:
    notification = Notification.objects.select_related("case", "recipient").filter(pk=notification_id).first()
    if notification is None or notification.case is None or notification.recipient is None:
        return False
    try:
        acknowledge_case(notification.case, by=notification.recipient, via="key press")
    except NotAllowed:
        return False
    return True


# --- Roster gaps -------------------------------------------------------------------------------------------


def send_roster_gap_report() -> int:
    """Once a day: the coming week's gaps to every supervisor, so a gap is found before a citizen finds it."""
    from triage.roster import coming_week_gaps

    gaps = coming_week_gaps()
    if not gaps:
        return 0
    body = texts.roster_gaps(gaps)
    today = timezone.localdate().isoformat()
    sent = 0
    for supervisor in _all_supervisors():
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
