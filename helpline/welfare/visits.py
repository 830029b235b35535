"""Visit tasks: a worker on duty for the person's area goes to see someone nobody could reach. A visit nobody
takes escalates as a case does: the high-priority ladder (notifications.ladder) is copied onto the task, the next
step's due time lives on the task, and a step runs only if the task is still at the step it expects."""
from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext

from helpline.cases.dispatch import NOTIFICATIONS_QUEUE
from helpline.cases.encryption import phone_index
from helpline.cases.models import Case, Priority
from helpline.roster.models import Role, StaffProfile
from helpline.roster.selectors import all_supervisors, is_supervisor, on_duty, supervisors_on_duty
from helpline.welfare import texts
from helpline.welfare.models import AreaWorker, VisitEscalation, VisitStatus, VisitTask, WelfareCheck
from notifications.ladder import NOBODY_ON_DUTY_LADDER, Ladder, ladder_for
from notifications.models import Notification, StepAction
from notifications.outbox import queue_notification
from triage.assignment import choose_assignee

logger = logging.getLogger(__name__)

# A staff notice about a visit (the outbox's kind field; no case is attached).
VISIT_NOTICE = "welfare_visit"


def choose_visitor(
    check: WelfareCheck, at: dt.datetime, *, exclude: int | None = None
) -> tuple[StaffProfile | None, str]:
    """A worker on duty who covers the person's municipality, with the fewest visits in hand; with none listed
    for the area, the one assignment policy (language, room, idle longest; else the supervisor on duty)."""
    area_staff = AreaWorker.objects.filter(municipality__iexact=check.person.municipality).values("staff_id")
    candidates = on_duty(at, role=Role.WORKER).filter(pk__in=area_staff)
    if exclude is not None:
        candidates = candidates.exclude(user_id=exclude)
    candidates = candidates.annotate(
        visits_in_hand=Count("user__welfare_visits", filter=~Q(user__welfare_visits__status=VisitStatus.DONE))
    ).order_by("visits_in_hand", "last_assigned_at", "pk")
    chosen = candidates.first()
    if chosen is not None:
        return chosen, f"on duty for {check.person.municipality}, {chosen.visits_in_hand} visits in hand"
    # An unsaved case stands for the visit: the policy reads only its language, category and priority.
    stand_in = Case(language=check.person.language, priority=Priority.HIGH, category="")
    choice = choose_assignee(stand_in, at, exclude=exclude)
    return choice.staff, choice.explanation


def open_visit(check: WelfareCheck, now: dt.datetime, *, reason: str) -> VisitTask:
    """Create the check's visit (once), give it to someone and tell them, and start its escalation clock."""
    with transaction.atomic():
        task, created = VisitTask.objects.get_or_create(welfare_check=check)
        if not created:
            return task
        staff, explanation = choose_visitor(check, now)
        if staff is None:
            task.ladder = _snapshot(NOBODY_ON_DUTY_LADDER)
            task.escalation_due_at = now  # nobody on duty: every supervisor at once
            task.explanation = f"{reason}; {explanation}"[:300]
        else:
            ladder = ladder_for(Priority.HIGH)
            task.ladder = _snapshot(ladder)
            task.assigned_to = staff.user
            task.escalation_due_at = now + dt.timedelta(minutes=ladder.acknowledge_within_minutes)
            task.explanation = f"{reason}; {explanation}"[:300]
            _tell(staff, task, key=f"welfare-visit:{task.pk}:assigned:{staff.pk}")
        task.save()
    return task


def _snapshot(ladder: Ladder) -> dict:
    return ladder.as_snapshot()


def _tell(staff: StaffProfile, task: VisitTask, *, key: str) -> bool:
    """An SMS to the worker or supervisor. A drill's visits reach no phone: the task in the console is the drill."""
    check = task.welfare_check
    if check.is_drill:
        return True
    person = check.person
    body = texts.visit_task(person.full_name, person.address, person.settlement or person.municipality, task.pk)
    return queue_notification(
        keep_letters=True,  # an address to find, exactly as written
        key=key, to_number=str(staff.phone or ""), body=body, kind=VISIT_NOTICE, recipient=staff.user,
        queue=NOTIFICATIONS_QUEUE,
    ) is not None  # fmt: skip


class VisitNotYours(Exception):
    """The visit is someone else's, or nobody's yet; the message says which to the person who asked."""


def check_may(task: VisitTask, user: AbstractBaseUser, *, recording_outcome: bool) -> None:
    """Anyone takes a visit nobody has; only whoever has it says what they found there, and a supervisor may do
    either on any visit. An outcome posted on a visit nobody had taken marked a person nobody saw as safe."""
    if is_supervisor(user) or task.assigned_to_id == user.pk:
        return
    if task.assigned_to_id is not None:
        raise VisitNotYours(gettext("This visit is assigned to someone else."))
    if recording_outcome:
        raise VisitNotYours(gettext("Take this visit first: nobody has it yet."))


def take_visit(task: VisitTask, *, by: AbstractBaseUser) -> VisitTask:
    """The worker is on the way: the escalation stops. Anyone may take a visit nobody has."""
    with transaction.atomic():
        locked = VisitTask.objects.select_for_update().get(pk=task.pk)
        if locked.status == VisitStatus.WAITING:
            locked.status, locked.taken_at, locked.escalation_due_at = VisitStatus.TAKEN, timezone.now(), None
            locked.assigned_to = by
            locked.save(update_fields=["status", "taken_at", "escalation_due_at", "assigned_to"])
    return locked


def finish_visit(check: WelfareCheck, *, note: str, by: AbstractBaseUser | None) -> None:
    VisitTask.objects.filter(welfare_check=check).exclude(status=VisitStatus.DONE).update(
        status=VisitStatus.DONE, done_at=timezone.now(), escalation_due_at=None, outcome=note[:300]
    )


def close_visit_answered(check: WelfareCheck, now: dt.datetime) -> None:
    """The person answered "safe" by SMS or on the call after the visit was sent: nobody needs to go any more."""
    VisitTask.objects.filter(welfare_check=check).exclude(status=VisitStatus.DONE).update(
        status=VisitStatus.DONE, done_at=now, escalation_due_at=None, outcome=f"the person answered ({check.state})"
    )


def run_due_visit_escalations(now: dt.datetime, *, limit: int = 100) -> int:
    """Claim visits nobody has taken whose next step is due, and run each step once (SKIP LOCKED plus the step
    number as a fencing token, as the case ladder does); then send what the steps have to say, one SMS per person
    (send_visit_digests)."""
    done = 0
    with transaction.atomic():
        due = list(
            VisitTask.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("welfare_check__person")
            .filter(status=VisitStatus.WAITING, escalation_due_at__lte=now)
            .order_by("escalation_due_at")[:limit]
        )
        for task in due:
            try:
                with transaction.atomic():
                    done += _run_step(task, now)
            except Exception:
                logger.exception("visit escalation for task %s failed; retried on the next tick", task.pk)
    try:
        send_visit_digests(now)
    except Exception:  # the steps are recorded: what they say goes with the next tick's digest
        logger.exception("welfare visit digests failed; sent on the next tick")
    return done


def _run_step(task: VisitTask, now: dt.datetime) -> bool:
    if task.assigned_to_id is None and _give_to_someone_now_on_duty(task, now):
        return True
    ladder = Ladder.from_snapshot(task.ladder) if task.ladder else ladder_for(Priority.HIGH)
    position = task.escalation_step + 1
    wait = 1
    for _ in range(len(ladder.steps) + 1):
        action, wait, loop = ladder.step_at(position)
        told = _run_action(task, action, position, now)
        _record_step(task, position, loop, action, told, now)
        if told:
            break
        position += 1
    task.escalation_step = position
    task.escalation_due_at = now + dt.timedelta(minutes=max(wait, 1))
    task.save(update_fields=["escalation_step", "escalation_due_at", "assigned_to", "explanation"])
    return True


def _give_to_someone_now_on_duty(task: VisitTask, now: dt.datetime) -> bool:
    """A visit opened while nobody was on duty goes to the first person who is, at its next step, on the ladder of
    a visit someone has. Its own ladder only texts supervisors: no worker was ever sent, the night's visit
    waited for a supervisor to go themselves."""
    staff, explanation = choose_visitor(task.welfare_check, now)
    if staff is None:
        return False
    ladder = ladder_for(Priority.HIGH)
    task.ladder, task.assigned_to, task.escalation_step = _snapshot(ladder), staff.user, 0
    task.escalation_due_at = now + dt.timedelta(minutes=ladder.acknowledge_within_minutes)
    task.explanation = f"nobody was on duty when it was opened; {explanation}"[:300]
    _tell(staff, task, key=f"welfare-visit:{task.pk}:assigned:{staff.pk}")
    task.save(update_fields=["ladder", "assigned_to", "escalation_step", "escalation_due_at", "explanation"])
    return True


# Whom a step tells: a staff member, or one of the centre's fallback numbers (no staff member behind it).
Told = list[StaffProfile | str]


def _run_action(task: VisitTask, action: str, step: int, now: dt.datetime) -> Told:
    """Who is to hear of the visit at this step (empty when nobody can be). They are told by send_visit_digests."""
    if action == StepAction.REMIND_ASSIGNEE:
        return list(StaffProfile.objects.filter(user_id=task.assigned_to_id).exclude(phone="")[:1])
    if action == StepAction.REASSIGN:
        staff, explanation = choose_visitor(task.welfare_check, now, exclude=task.assigned_to_id)
        if staff is None or not staff.phone:
            return []
        task.assigned_to, task.explanation = staff.user, f"step {step}, not taken in time: {explanation}"[:300]
        return [staff]
    if action == StepAction.NOTIFY_SUPERVISOR_ON_DUTY:
        return list(supervisors_on_duty(now).exclude(phone="")[:1])
    if action == StepAction.NOTIFY_ALL_SUPERVISORS:
        return [person for person in all_supervisors() if person.phone]
    if action == StepAction.NOTIFY_FALLBACK_CONTACTS:
        return list(settings.ESCALATION_FALLBACK_NUMBERS)
    return []


def _record_step(task: VisitTask, step: int, loop: int, action: str, told: Told, now: dt.datetime) -> None:
    """The step on the visit's timeline, one row per person it tells, each waiting for their next digest. A drill's
    visits reach no phone: its rows are told at once, with nothing sent."""
    drill = task.welfare_check.is_drill
    rows = [
        VisitEscalation(
            task=task, step=step, loop=loop, action=action, at=now, told_at=now if drill else None,
            recipient=whom.user if isinstance(whom, StaffProfile) else None,
            to_number="" if drill else str(whom.phone if isinstance(whom, StaffProfile) else whom),
        )
        for whom in told
    ] or [VisitEscalation(task=task, step=step, loop=loop, action=action, at=now, told_at=now, reached=False)]
    VisitEscalation.objects.bulk_create(rows)
    logger.info("welfare visit %s escalation step %s%s: %s, %s", task.pk, step, f" (round {loop})" if loop else "",
                action, f"{len(told)} to tell" if told else "nobody to tell")  # fmt: skip


# The least time between two SMS about visits nobody has taken to the same phone: forty silent people at night sent
# the supervisor 160 in forty minutes, one per step of each visit's ladder, and a phone buzzing every few seconds is
# a phone nobody reads.
VISIT_DIGEST_EVERY = dt.timedelta(minutes=1)


def send_visit_digests(now: dt.datetime) -> int:
    """Tell each person what the visits' steps have for them since their last SMS about visits, in one SMS, at
    most one every VISIT_DIGEST_EVERY: a single visit in its own words (who, the address), several as how many,
    where, how long the oldest has waited and which to go to first. A step for a visit taken meanwhile is dropped:
    somebody has it. Returns how many SMS were written."""
    sent = 0
    with transaction.atomic():
        untold = list(
            VisitEscalation.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(told_at__isnull=True)
            .select_related("task__welfare_check__person", "recipient")
            .order_by("at", "pk")
        )
        by_number: dict[str, list[VisitEscalation]] = {}
        for row in untold:
            by_number.setdefault(row.to_number, []).append(row)
        told_lately = set(
            VisitEscalation.objects.filter(
                to_number__in=list(by_number), told_at__gt=now - VISIT_DIGEST_EVERY, notification__isnull=False
            ).values_list("to_number", flat=True)
        )
        for number, rows in by_number.items():
            if number in told_lately:
                continue  # they wait for the minute to pass
            waiting = [row for row in rows if row.task.status == VisitStatus.WAITING]
            notification = _send_digest(number, waiting, now) if waiting else None
            if waiting and notification is None:
                continue  # another tick wrote this minute's SMS to them: the next one carries these
            VisitEscalation.objects.filter(pk__in=[row.pk for row in rows]).update(
                told_at=now, notification=notification
            )
            sent += notification is not None
    return sent


def _send_digest(number: str, rows: list[VisitEscalation], now: dt.datetime) -> Notification | None:
    tasks = sorted({row.task_id: row.task for row in rows}.values(), key=visit_order)
    recipient = next((row.recipient for row in rows if row.recipient_id), None)
    who = f"staff{recipient.pk}" if recipient else f"number{phone_index(number)[:16]}"
    if len(tasks) == 1:
        person = tasks[0].welfare_check.person
        body = texts.visit_task(person.full_name, person.address, person.settlement or person.municipality,
                                tasks[0].pk)  # fmt: skip
    else:
        yours = {row.task_id for row in rows if row.recipient_id and row.task.assigned_to_id == row.recipient_id}
        body = texts.visits_waiting(
            count=len(tasks), areas=Counter(task.welfare_check.person.municipality for task in tasks).most_common(),
            oldest_minutes=int((now - min(task.created_at for task in tasks)).total_seconds() // 60),
            first=tasks[0].pk, first_area=tasks[0].welfare_check.person.municipality,
            first_needs=tasks[0].welfare_check.person.needs or [], yours=len(yours),
        )  # fmt: skip
    return queue_notification(
        keep_letters=len(tasks) == 1,  # an address to find, exactly as written
        key=f"welfare-visits:{who}:{now.strftime('%Y%m%d%H%M')}", to_number=number, body=body, kind=VISIT_NOTICE,
        recipient=recipient, queue=NOTIFICATIONS_QUEUE,
    )  # fmt: skip


def visit_order(task: VisitTask) -> tuple:
    """Who to go to first: a power-dependent device or dialysis, then living alone, then the oldest (the check's
    urgency, as the campaign asked them), then the visit waiting longest."""
    return (task.welfare_check.urgency, task.created_at, task.pk)


def purge_visit_notices(now: dt.datetime | None = None) -> int:
    """The messages that sent someone to a vulnerable person carry their name and address in clear: once the visit
    is done and VISIT_ADDRESS_RETENTION_DAYS have passed (as for home-visit addresses), their text goes. The
    register itself keeps the person, encrypted, on its own legal basis. Returns how many messages were emptied."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.VISIT_ADDRESS_RETENTION_DAYS)
    emptied = 0
    for task_id in VisitTask.objects.filter(status=VisitStatus.DONE, done_at__lt=cutoff).values_list("pk", flat=True):
        # Its own notices, and the SMS its steps were told in (a visit alone in one is named there, with its address).
        told_in = VisitEscalation.objects.filter(task_id=task_id, notification__isnull=False).values("notification")
        emptied += Notification.objects.filter(
            Q(idempotency_key__startswith=f"welfare-visit:{task_id}:") | Q(pk__in=told_in), kind=VISIT_NOTICE
        ).exclude(body="").update(body="")
    return emptied
