"""The escalation ladder: a case nobody has taken is chased, step by step, until a person takes it.

As in Grafana OnCall: when the acknowledgement clock starts, the policy's steps are copied onto the case (an edit or
a gap in the admin cannot end a running ladder), the next step's due time lives on the case, and a step runs only
if the case is still at the step it was sent for (a fencing token). The ladder never ends by itself: after its
last step it repeats from the policy's repeat step until someone acknowledges. A step that can reach nobody (a
reassign with nobody to take the case, no supervisor on duty) falls through to the next step at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext

from helpline.cases import services as case_services
from helpline.cases import ticks
from helpline.cases.kept_reads import kept_for_a_second
from helpline.cases.models import OPEN_STATUSES, Case, CaseStatus, EventKind, Priority, TimelineEvent
from helpline.cases.selectors import by_urgency
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import all_supervisors, is_on_duty, on_duty, supervisors_on_duty, supervisors_to_tell
from helpline.roster.services import mark_assigned
from notifications import surge, texts
from notifications.models import (
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationChannel,
    NotificationKind,
    StepAction,
)
from notifications.outbox import (
    WAITING_FOR_ACKNOWLEDGEMENT,
    notifications_written_together,
    notify_staff,
    queue_notification,
)
from triage.assignment import StaffPool, choose_assignee, pick_assignee, take_assignment_turn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ladder:
    """A policy's steps as copied onto a case: (number, action, minutes to wait after it), and where repeats start."""

    acknowledge_within_minutes: int
    steps: tuple[tuple[int, str, int], ...]
    repeat_from: int

    def as_snapshot(self) -> dict:
        return {"steps": [list(step) for step in self.steps], "repeat_from": self.repeat_from}

    @classmethod
    def from_snapshot(cls, snapshot: dict) -> Ladder:
        steps = tuple(tuple(step) for step in snapshot["steps"])
        return cls(0, steps, snapshot.get("repeat_from") or steps[-1][0])  # type: ignore[arg-type]

    def step_at(self, position: int) -> tuple[str, int, int]:
        """The action and wait of the `position`-th step run on a case (1-based, counting repeats), and which
        loop it belongs to (0 on the first pass). Positions past the end cycle through the repeating steps."""
        if position <= len(self.steps):
            _, action, wait = self.steps[position - 1]
            return action, wait, 0
        repeating = [step for step in self.steps if step[0] >= self.repeat_from] or [self.steps[-1]]
        beyond = position - len(self.steps) - 1
        _, action, wait = repeating[beyond % len(repeating)]
        return action, wait, beyond // len(repeating) + 1


_ACTIONS = (
    StepAction.REMIND_ASSIGNEE, StepAction.REASSIGN, StepAction.NOTIFY_SUPERVISOR_ON_DUTY,
    StepAction.NOTIFY_ALL_SUPERVISORS, StepAction.NOTIFY_FALLBACK_CONTACTS,
)  # fmt: skip
# Used when a priority has no usable policy in the database: a deleted policy must never stop a case escalating.
# (deadline, waits after each step, the step the ladder repeats from)
_FALLBACK_SHAPES = {
    Priority.CRITICAL: (2, (1, 2, 2, 5, 5), 4),
    Priority.HIGH: (5, (3, 5, 5, 10, 10), 4),
    Priority.NORMAL: (15, (10, 15, 15, 30, 30), 4),
    Priority.LOW: (60, (30, 60, 60, 120, 120), 4),
}
FALLBACK_LADDERS = {
    priority: Ladder(deadline, tuple((n, a, w) for n, (a, w) in enumerate(zip(_ACTIONS, waits, strict=True), 1)), rep)
    for priority, (deadline, waits, rep) in _FALLBACK_SHAPES.items()
}
# A case nobody on duty could take: every supervisor, then the centre's fallback numbers, until someone takes it.
NOBODY_ON_DUTY_LADDER = Ladder(
    0, ((1, StepAction.NOTIFY_ALL_SUPERVISORS, 3), (2, StepAction.NOTIFY_FALLBACK_CONTACTS, 5)), 1
)


# Steps that reach someone whoever is on duty: the repeating part of a ladder must hold one, or a night with
# nobody on duty would repeat a reminder to nobody.
REACHES_SOMEONE_ALWAYS = (StepAction.NOTIFY_ALL_SUPERVISORS, StepAction.NOTIFY_FALLBACK_CONTACTS)


def ladder_problems(steps: list[tuple[int, str, int]], repeat_from: int | None) -> list[str]:
    """Why a ladder a supervisor wrote could leave a case unanswered; empty when it cannot. The ladder repeats from
    `repeat_from` (its last step when None) until someone acknowledges, so what repeats must always reach a person."""
    if not steps:
        return [gettext("A ladder needs at least one step.")]
    numbers = sorted(number for number, _, _ in steps)
    problems = []
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(gettext("Number the steps 1, 2, 3, ... without gaps or repeats."))
    if any(wait < 1 for _, _, wait in steps):
        problems.append(gettext("Every step must wait at least one minute before the next."))
    first_repeating = repeat_from or numbers[-1]
    if first_repeating not in numbers:
        problems.append(gettext("The ladder must repeat from one of its own steps."))
    repeating = {action for number, action, _ in steps if number >= first_repeating}
    if not repeating & set(REACHES_SOMEONE_ALWAYS):
        problems.append(gettext(
            "The steps that repeat must include 'notify all supervisors' or 'call the fallback numbers': otherwise a "
            "case can wait unanswered when nobody is on duty."
        ))  # fmt: skip
    return problems


def ladder_for(priority: str) -> Ladder:
    """The policy of a priority as it stands now (the admin's), or the shipped fallback."""
    return _policy_ladder(priority or Priority.NORMAL)


@kept_for_a_second(EscalationPolicy, EscalationStep)
def _policy_ladder(priority: str) -> Ladder:
    """Asked for every assignment: seen at once in the process whose admin changed it, within a second in others."""
    # One read: the steps with their policy's fields beside them (a priority has at most one policy).
    fields = ("policy__acknowledge_within_minutes", "policy__repeat_from_step", "number", "action", "wait_minutes")
    rows = list(EscalationStep.objects.filter(policy__priority=priority).order_by("number").values_list(*fields))
    if not rows:  # no policy, or one without steps
        return FALLBACK_LADDERS.get(priority, FALLBACK_LADDERS[Priority.NORMAL])
    acknowledge_within, repeat_from = rows[0][0], rows[0][1]
    steps = tuple(row[2:] for row in rows)
    return Ladder(acknowledge_within, steps, repeat_from or steps[-1][0])


# --- Handing a case to someone ----------------------------------------------------------------------------------


def hand_over(
    case: Case, staff: StaffProfile, *, by: AbstractBaseUser | None = None, explanation: str,
    restart_clock: bool = True, quiet: bool | None = None, mark_idle_clock: bool = True, policy: Ladder | None = None,
    row_locked: bool = False,
) -> Case:  # fmt: skip
    """Give the case to a person and tell them (a call too when it is critical). With restart_clock (triage, a
    supervisor's reassign) their acknowledgement deadline starts and the policy is copied onto the case; the
    ladder's own reassign step keeps the ladder running instead. A batch passes `quiet` (surge mode), `policy`
    (each asked once per batch) and `row_locked` (it read its cases for change), and restarts the idle clocks once
    per person itself."""
    now = timezone.now()
    with transaction.atomic(savepoint=False):  # all or nothing with the caller's transaction, one when none
        if not row_locked:  # the ladder is that of the priority the case has under its lock, not a stale copy's
            case = Case.objects.for_change().get(pk=case.pk)
        if by is not None and not case.is_open:
            # A person giving the case to someone decided on what they saw; resolved since, it would be reopened
            # with "assigned" as its only reason. The service's own hand-overs (triage, the ladder, a follow-up)
            # check what they need under their own locks.
            meanwhile = gettext("%(reference)s was resolved or closed meanwhile: reopen it first.")
            raise case_services.CaseTransitionError(meanwhile % {"reference": case.reference})
        clock: dict = {}
        if restart_clock:  # the clock starts in the assignment's own write
            ladder = policy or ladder_for(case.priority)
            clock = {"acknowledge_by": now + dt.timedelta(minutes=ladder.acknowledge_within_minutes),
                     "ladder": ladder.as_snapshot()}  # fmt: skip
        case = case_services.assign_case(case, staff.user, by=by, explanation=explanation, row_locked=True, **clock)
        if mark_idle_clock:
            mark_assigned(staff.user_id, now)
        if quiet is None:
            quiet = surge.is_quiet_for(case)
        if not (quiet and case.priority != Priority.CRITICAL):  # in surge mode the worker reads the minute's digest
            notify_staff(
                staff, case, kind=NotificationKind.ASSIGNMENT,
                # The priority is in the key: the model's second look may hand the case to the same person again,
                # as critical, within the same second, and that alert must not be taken for a copy of the first.
                key=f"assign:{case.pk}:{staff.pk}:{case.escalation_step}:{case.priority}:{int(now.timestamp())}",
                body=texts.assignment, call_too=case.priority == Priority.CRITICAL,
            )  # fmt: skip
    return case


@transaction.atomic  # the assignment turn is held from the choice to the hand-over, or two choices see one room
def assign_by_policy(case: Case, *, exclude: int | None = None, reason: str = "") -> Case:
    """The one way the service gives one case to someone by itself (a supervisor's "whoever should have it"): ask
    the assignment policy, hand over, or, with nobody on duty, flag the case for immediate escalation."""
    # The case row first, then the assignment turn: the order the ladder's steps and triage take them in (the
    # other order deadlocked against a reassign step running on the same case).
    case = Case.objects.for_change().get(pk=case.pk)
    choice = choose_assignee(case, timezone.now(), exclude=exclude)
    if choice.staff is None:
        logger.warning("nobody on duty for %s; flagged for immediate escalation", case.reference)
        return case_services.flag_unassignable(case, explanation=choice.explanation)
    explanation = f"{reason}: {choice.summary}" if reason else choice.summary
    return hand_over(case, choice.staff, explanation=explanation)


def hand_on(case: Case, *, away: int, reason: str, back_to_them_if_nobody: bool) -> Case:
    """Give a case its holder (`away`, a user id) cannot act on to someone on duty by the policy. With nobody on
    duty, assign_by_policy only flags it, and a taken case's flag is watched by no ladder (the ladder runs waiting
    cases): it is handed over with a fresh clock instead, so it is chased, back to its holder when they are only off
    duty (their phone, then the supervisors), or to a supervisor when they are gone."""
    handed = assign_by_policy(case, exclude=away, reason=reason)
    if handed.assigned_to_id != away:
        return handed
    if back_to_them_if_nobody:
        people = list(StaffProfile.objects.filter(user_id=away).select_related("user"))
    else:
        people = [person for person in all_supervisors() if person.user_id != away]
    if not people:
        return handed  # flagged: nobody at all to chase
    return hand_over(handed, people[0], explanation=f"{reason}; nobody else on duty can take it")


def hand_on_cases_of(user_id: int) -> int:
    """Someone was deactivated (they left, or their access was revoked): the open cases they hold, taken or not, go
    to someone on duty by the assignment policy, with a fresh clock, or, with nobody on duty, to a supervisor
    (`hand_on`).
    Left with them, a taken case was watched by nothing (no ladder runs once a case is acknowledged) and reached
    nobody. Returns how many were handed on."""
    handed = 0
    held = Case.objects.filter(assigned_to_id=user_id, status__in=OPEN_STATUSES).values_list("pk", flat=True)
    for case_id in list(held):
        with transaction.atomic():
            case = Case.objects.for_change().get(pk=case_id)
            if case.assigned_to_id != user_id or case.status not in OPEN_STATUSES:
                continue  # moved meanwhile
            moved = hand_on(case, away=user_id, reason="its worker is no longer active", back_to_them_if_nobody=False)
            handed += moved.assigned_to_id != user_id  # nobody at all to take it: flagged, and tried again
    if handed:
        logger.warning("%s open cases of a deactivated staff member handed on", handed)
    return handed


def hand_on_cases_of_the_departed(limit: int = 50) -> int:
    """The tick's check behind `hand_on_cases_of`, which runs once, after the deactivation commits: open cases still
    held by someone deactivated (that hand-on failed, or its process died, or they were deactivated by an UPDATE,
    which sends no signal) are handed on now. Returns how many."""
    departed = Q(assigned_to__is_active=False) | Q(assigned_to__staff_profile__is_active=False)
    held = Case.objects.filter(departed, status__in=OPEN_STATUSES).values_list("assigned_to_id", flat=True)
    return sum(hand_on_cases_of(user_id) for user_id in set(held[:limit]))


def hand_on_cases_left_at_shift_end(now: dt.datetime | None = None, *, limit: int = 50) -> int:
    """A case given to someone whose shift then ended before they took it waited out its deadline with them: the
    reminder went to a phone at home, and the case moved to a colleague on duty only at the ladder's reassign step
    (25 minutes for a normal case). Each minute such cases are offered to someone on duty now, by the assignment
    policy (in surge mode only to someone with room); with nobody to take it, the ladder goes on as it was. A case
    they took stays theirs: they said they have it in hand; so does one a supervisor gave them by hand while they
    were off duty (someone on call, say), but not one given at 21:55 to someone going home at 22:00. The most
    urgent go first. Returns how many were handed on."""
    now = now or timezone.now()
    last_assignment = TimelineEvent.objects.filter(case=OuterRef("pk"), kind=EventKind.ASSIGNED).order_by(
        "-created_at", "-pk"
    )
    left = (
        Case.objects.filter(status=CaseStatus.ASSIGNED, acknowledged_at__isnull=True, assigned_to__isnull=False)
        .exclude(assigned_to_id__in=on_duty(now).values("user_id"))
        .annotate(
            given_by=Subquery(last_assignment.values("actor_id")[:1]),
            given_at=Subquery(last_assignment.values("created_at")[:1]),
        )
    )
    handed = 0
    for case_id, given_by, given_at, holder in list(
        by_urgency(left).values_list("pk", "given_by", "given_at", "assigned_to_id")[:limit]
    ):
        if given_by is not None and given_at is not None and not on_duty(given_at).filter(user_id=holder).exists():
            continue  # a supervisor gave it to someone already off duty (on call): theirs by that choice
        with transaction.atomic():
            case = Case.objects.for_change().get(pk=case_id)
            holder = case.assigned_to_id
            if case.status != CaseStatus.ASSIGNED or case.acknowledged_at or is_on_duty(holder, now):
                continue
            choice = choose_assignee(case, now, exclude=holder, require_room=surge.is_quiet_for(case))
            if choice.staff is None:
                continue
            hand_over(
                case, choice.staff, explanation=f"the person it was given to went off duty before taking it: "
                f"{choice.summary}", restart_clock=False, row_locked=True,
            )  # fmt: skip
            handed += 1
    return handed


def _hand_on_when_deactivated(user_id: int, is_active: bool) -> None:
    if not is_active:
        transaction.on_commit(lambda: hand_on_cases_of(user_id))


def connect() -> None:
    """Deactivating a staff profile or its user hands on their open cases (after the change commits)."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    post_save.connect(
        lambda sender, instance, **kwargs: _hand_on_when_deactivated(instance.user_id, instance.is_active),
        sender=StaffProfile, dispatch_uid="ladder-hand-on-staff", weak=False,
    )  # fmt: skip
    post_save.connect(
        lambda sender, instance, **kwargs: _hand_on_when_deactivated(instance.pk, instance.is_active),
        sender=get_user_model(), dispatch_uid="ladder-hand-on-user", weak=False,
    )  # fmt: skip


# --- Assigning waiting cases in batches -------------------------------------------------------------------------

ASSIGNMENT_BATCH = 25  # cases per turn: short enough that a critical case behind a turn waits well under a second
ASSIGNMENT_ROUNDS = 8  # turns one call may take while its batches come back full; the tick finds the rest


# How long a turn's finding that everyone on duty is at their maximum is trusted in this process. Until then a
# triaged case that is not critical takes no turn of its own: in a surge such a turn read the pool and the waiting
# critical cases for every contact (a third of a triage's CPU) and gave nothing out. The tick's turn every two
# seconds gives such a case out once someone has room, so it waits at most that much longer; a critical case
# always takes its turn (the critical rule gives it out over the maximum).
NO_ROOM_TRUSTED_SECONDS = 2.0


class _RoomSeen:
    """When this process's last turn found everyone on duty at their maximum (time.monotonic), or None."""

    full_at: float | None = None

    @classmethod
    def note(cls, pool: StaffPool) -> None:
        cls.full_at = time.monotonic() if not pool.is_empty and not pool.has_room else None

    @classmethod
    def forget(cls) -> None:
        cls.full_at = None


def turn_would_give_nothing_to(case: Case) -> bool:
    """True when this process saw everyone on duty at their maximum moments ago and the case is not critical: a
    turn now would give it nothing, and the tick's next turn will look again."""
    if case.priority == Priority.CRITICAL or _RoomSeen.full_at is None:
        return False
    return time.monotonic() - _RoomSeen.full_at < NO_ROOM_TRUSTED_SECONDS


def forget_room_seen() -> None:
    """Drop what the last turn saw, as a new process starts: each test begins so (tests/conftest.py)."""
    _RoomSeen.forget()


def assign_waiting(*, batch: int = ASSIGNMENT_BATCH, rounds: int = ASSIGNMENT_ROUNDS) -> dict[int, Case]:
    """Give triaged cases nobody has to people on duty, most urgent first, a batch per assignment turn. Called by
    triage after it commits, and by a tick for cases waiting for room. Nobody goes over their maximum except by the
    critical rule; a case nobody has room for waits, in urgency order; with nobody on duty at all, a case is flagged
    for immediate escalation (once). Returns the cases given out, by id."""
    given: dict[int, Case] = {}
    for _ in range(rounds):
        with transaction.atomic():
            if not take_assignment_turn():
                break  # the transaction in line behind the current turn will see our cases
            handed, full = _assign_one_batch(batch)
        given.update(handed)
        if not full:
            break
    return given


def _assign_one_batch(batch: int) -> tuple[dict[int, Case], bool]:
    """One turn: the pool's counters read once, the most urgent waiting cases claimed (SKIP LOCKED: one being
    triaged right now comes in the next turn), each given to the policy's choice and counted at once."""
    now = timezone.now()
    pool = StaffPool.on_duty(now)
    waiting = Case.objects.filter(status=CaseStatus.TRIAGED, assigned_to__isnull=True)
    if pool.is_empty:
        waiting = waiting.filter(escalation_due_at__isnull=True)  # flagged once, then the ladder chases them
    elif not pool.has_room:
        waiting = waiting.filter(priority=Priority.CRITICAL)  # only the critical rule can give anything out
    cases = list(by_urgency(waiting).for_change(skip_locked=True, of=("self",))[:batch])
    if not cases:
        _RoomSeen.note(pool)
        return {}, False
    quiet = surge.surge_is_on()
    policies: dict[str, Ladder] = {}
    handed: dict[int, Case] = {}
    assigned_to: dict[int, dt.datetime] = {}
    # The batch's case rows in one UPDATE, its timeline events in one INSERT, its notifications in one INSERT.
    with case_services.written_together(), notifications_written_together():
        for case in cases:
            choice = pick_assignee(case, pool, supervisors_need_room=True)
            if choice.staff is None:
                if pool.is_empty:
                    logger.warning("nobody on duty for %s; flagged for immediate escalation", case.reference)
                    case_services.flag_unassignable(case, explanation=choice.explanation)
                continue
            if case.priority not in policies:
                policies[case.priority] = ladder_for(case.priority)
            handed[case.pk] = hand_over(
                case, choice.staff, explanation=choice.summary, quiet=quiet, mark_idle_clock=False,
                policy=policies[case.priority], row_locked=True,
            )  # fmt: skip
            pool.count_assignment(choice.staff, now, is_drill=case.is_drill)
            assigned_to[choice.staff.user_id] = now
    for user_id, at in assigned_to.items():  # idle clocks: one update per person, not per case
        mark_assigned(user_id, at)
    _RoomSeen.note(pool)  # counted up by this batch
    return handed, len(cases) == batch and bool(handed)


# How often the supervisors hear again of cases waiting for room while they still wait.
WAITING_FOR_ROOM_TOLD_EVERY = dt.timedelta(minutes=15)


def left_waiting_for_room(
    now: dt.datetime, *, priorities: tuple[str, ...] = (Priority.HIGH, Priority.NORMAL, Priority.LOW), times: int = 1
) -> Q:
    """Cases in the queue, with no clock, for longer than `times` their priority's time to acknowledge: nobody on
    duty had room for them (a critical case never waits: it goes over a maximum)."""
    waited_too_long = Q(pk__in=[])
    for priority in priorities:
        cut = now - times * dt.timedelta(minutes=max(ladder_for(priority).acknowledge_within_minutes, 1))
        in_queue_since_before = Q(triaged_at__lte=cut) | Q(triaged_at__isnull=True, created_at__lte=cut)
        waited_too_long |= Q(priority=priority) & in_queue_since_before
    return waited_too_long & Q(status=CaseStatus.TRIAGED, assigned_to__isnull=True, escalation_due_at__isnull=True)


def tell_supervisors_of_cases_waiting_for_room(now: dt.datetime | None = None) -> int:
    """A case nobody on duty has room for waits, unassigned, for someone to resolve a case or come on duty: with no
    clock, nobody heard of it. While any has waited longer than its priority's time to acknowledge, the supervisors
    on duty (every supervisor when none is) get one SMS saying how many and for how long, again every
    WAITING_FOR_ROOM_TOLD_EVERY: they can take one, raise someone's maximum, call people in or declare surge mode.
    One message, not a ladder per case: forty cases left by a surge just ended paged three supervisors 240 times.
    Not in surge mode, whose minute's digest counts these cases. A critical case never waits: it goes over a
    maximum. Returns how many were told."""
    if surge.surge_is_on():
        return 0
    now = now or timezone.now()
    waiting = (
        Case.objects.filter(left_waiting_for_room(now), is_drill=False)
        .aggregate(count=Count("pk"), oldest=Min("created_at"))
    )
    if not waiting["count"]:
        return 0
    text = texts.waiting_for_room(waiting["count"], oldest_minutes=int((now - waiting["oldest"]).total_seconds() // 60))
    window = int(now.timestamp() // WAITING_FOR_ROOM_TOLD_EVERY.total_seconds())
    told = 0
    for supervisor in supervisors_to_tell(now):
        told += bool(queue_notification(
            key=f"waiting-for-room:{supervisor.pk}:{window}", to_number=str(supervisor.phone), body=text,
            kind=NotificationKind.ESCALATION, recipient=supervisor.user,
        ))  # fmt: skip
    if told:
        logger.warning("%s cases waiting for room (the oldest since %s): supervisors told", waiting["count"],
                       waiting["oldest"].isoformat(timespec="minutes"))  # fmt: skip
    _chase_the_oldest_high_case_left_waiting(now)
    return told


def _chase_the_oldest_high_case_left_waiting(now: dt.datetime) -> None:
    """An SMS a quarter hour is not enough for a high case while the supervisor on duty sleeps: one waiting twice
    its time to acknowledge goes on the ladder for a case nobody could take (every supervisor called, then the
    fallback numbers) until someone takes it or has room for it. One such case at a time, the oldest: forty of
    them at once paged three supervisors 240 times, and one ringing phone is enough to wake the person who acts."""
    waiting_high = Case.objects.filter(
        status=CaseStatus.TRIAGED, assigned_to__isnull=True, priority=Priority.HIGH, is_drill=False
    )
    if waiting_high.filter(escalation_due_at__isnull=False).exists():
        return  # one is on its ladder already
    oldest = (
        waiting_high.filter(left_waiting_for_room(now, priorities=(Priority.HIGH,), times=2))
        .order_by("created_at")
        .first()
    )
    if oldest is None:
        return
    twice = 2 * max(ladder_for(Priority.HIGH).acknowledge_within_minutes, 1)
    with transaction.atomic():
        case_services.flag_unassignable(
            oldest, explanation=f"high priority, waited over {twice} min: everyone on duty is at their maximum"
        )


# --- After surge mode ---------------------------------------------------------------------------------------------


def restart_ladders_after_surge(now: dt.datetime | None = None) -> int:
    """Surge mode ended. While it lasted, a quiet case's steps counted as run but told nobody, so after an hour its
    ladder stood at the repeating steps: resumed there, thirty waiting cases paged the supervisor and the head of
    the centre thirty times each while their worker heard nothing. Each waiting case that is not critical starts
    its clock and ladder again from the first step, and each holder on duty gets one SMS saying how many wait for
    them (one who went home has theirs handed on by the shift-end tick). A critical case kept its full ladder
    throughout and is left where it stands. Returns how many cases were restarted."""
    now = now or timezone.now()
    waiting = Case.objects.filter(
        status=CaseStatus.ASSIGNED, acknowledged_at__isnull=True, assigned_to__isnull=False
    ).exclude(priority=Priority.CRITICAL)
    restarted = 0
    for priority in waiting.order_by().values_list("priority", flat=True).distinct():
        policy = ladder_for(priority)
        restarted += case_services.restart_escalation_clocks(
            waiting.filter(priority=priority), ladder=policy.as_snapshot(),
            acknowledge_by=now + dt.timedelta(minutes=policy.acknowledge_within_minutes),
        )  # fmt: skip
    per_holder = dict(
        waiting.filter(is_drill=False).values_list("assigned_to").annotate(n=Count("pk")).order_by()
    )
    minute = now.strftime("%Y%m%d%H%M")
    for holder in on_duty(now).filter(user_id__in=per_holder).exclude(phone=""):
        queue_notification(
            key=f"surge-over:{holder.pk}:{minute}", to_number=str(holder.phone), recipient=holder.user,
            body=texts.surge_over(per_holder[holder.user_id]), kind=NotificationKind.DIGEST,
        )  # fmt: skip
    if restarted:
        logger.warning("surge mode ended: %s waiting cases start their ladders again", restarted)
    return restarted


# --- Running due steps ------------------------------------------------------------------------------------------


# Steps per tick (every second). The tick shares the critical worker with critical triage: 100 steps on a busy
# box held it for seconds while critical cases queued behind; what is left runs in the next second's tick.
ESCALATION_STEPS_PER_TICK = 25


def run_due_escalations(now: dt.datetime | None = None, *, limit: int = ESCALATION_STEPS_PER_TICK) -> int:
    """Claim cases whose next step is due and run each step once. Safe with two beats: SKIP LOCKED plus the
    step-number check. Each case's step runs in its own savepoint: one failing case never holds back the rest, nor
    takes the places of the cases behind it (helpline/cases/ticks.py)."""
    now = now or timezone.now()
    due = Case.objects.filter(escalation_due_at__lte=now, status__in=WAITING_FOR_ACKNOWLEDGEMENT)
    return ticks.run_each_due(
        due.order_by("escalation_due_at"),
        lambda case: run_escalation_step(case, expected_step=case.escalation_step + 1, now=now),
        limit=limit,
    )


def run_escalation_step(case: Case, *, expected_step: int, now: dt.datetime) -> bool:
    """Run step `expected_step` of the case's ladder if the case is still waiting for it (fencing token). A step
    that reached nobody falls through to the next at once, at most one full pass of the ladder per tick."""
    with transaction.atomic():
        locked = Case.objects.for_change().get(pk=case.pk)
        if (
            locked.escalation_step != expected_step - 1
            or locked.escalation_due_at is None
            or locked.status not in WAITING_FOR_ACKNOWLEDGEMENT
        ):
            return False
        ladder = _ladder_of(locked)
        due = locked.escalation_due_at
        position, wait, loop = expected_step, 0, 0
        for _ in range(len(ladder.steps) + 1):
            action, wait, loop = ladder.step_at(position)
            reached = _run_action(locked, action, position)
            case_services.record_event(
                locked, EventKind.ESCALATED, step=position, loop=loop, action=action, reached=reached,
                lateness_seconds=round((now - due).total_seconds(), 1) if due else None,
            )  # fmt: skip
            logger.info("case %s escalation step %s%s: %s, %s", locked.reference, position,
                        f" (round {loop})" if loop else "", action,
                        "someone told" if reached else "nobody to tell")  # fmt: skip
            if reached:
                break
            position += 1
        case_services.advance_escalation(
            locked, step=position, loop=loop, due_at=now + dt.timedelta(minutes=max(wait, 1))
        )
        return True


def _ladder_of(case: Case) -> Ladder:
    if case.assigned_to_id is None:
        return NOBODY_ON_DUTY_LADDER
    if case.escalation_ladder:
        return Ladder.from_snapshot(case.escalation_ladder)
    return ladder_for(case.priority)  # a case whose clock started before ladders were copied onto cases


def _run_action(case: Case, action: str, step: int) -> bool:
    """Run one step; True when somebody was told or given the case. In surge mode a case that is not critical is
    told in the minute's digest instead, and is given to someone else only if someone has room."""
    key = f"step:{case.pk}:{step}" if not case.escalation_run else f"step:{case.pk}:r{case.escalation_run}:{step}"
    if surge.is_quiet_for(case):
        # A case on the desk of someone no longer on duty is offered to someone with room at every step: the ladder
        # repeats without its reassign step, and the digests go to people on duty, so it sat there all the surge.
        if action == StepAction.REASSIGN or not is_on_duty(case.assigned_to_id, timezone.now()):
            # Not while this process saw everyone full moments ago: asking takes the assignment turn, held to the
            # end of the tick's transaction, which triage's batches wait for.
            if not turn_would_give_nothing_to(case):
                return _reassign(case, step, require_room=True) or action != StepAction.REASSIGN
            return action != StepAction.REASSIGN
        return True
    urgent = case.priority in (Priority.CRITICAL, Priority.HIGH)
    if action == StepAction.REMIND_ASSIGNEE:
        assignee = StaffProfile.objects.filter(user_id=case.assigned_to_id).first()
        if assignee is None:
            return False
        return bool(notify_staff(
            assignee, case, kind=NotificationKind.REMINDER, key=key, body=texts.reminder,
            call_too=case.priority == Priority.CRITICAL,
        ))  # fmt: skip
    if action == StepAction.REASSIGN:
        return _reassign(case, step)
    if action == StepAction.NOTIFY_SUPERVISOR_ON_DUTY:
        supervisors = list(supervisors_on_duty(timezone.now()).exclude(phone="").exclude(user_id=case.assigned_to_id))
        return _tell(supervisors[:1], case, key, call_too=case.priority == Priority.CRITICAL)
    if action == StepAction.NOTIFY_ALL_SUPERVISORS:
        return _tell(all_supervisors(), case, key, call_too=urgent)
    if action == StepAction.NOTIFY_FALLBACK_CONTACTS:
        return _call_fallback_contacts(case, key)
    logger.error("unknown escalation action %r on %s", action, case.reference)
    return False


def _tell(people: list[StaffProfile], case: Case, key: str, *, call_too: bool) -> bool:
    told = False
    for person in people:
        told |= bool(notify_staff(
            person, case, kind=NotificationKind.ESCALATION, key=f"{key}:{person.pk}", body=texts.escalation,
            call_too=call_too,
        ))  # fmt: skip
    return told


def _reassign(case: Case, step: int, *, require_room: bool = False) -> bool:
    """The same policy as triage, minus the person who let the case wait; the on-duty supervisor when no other
    worker can take it. The ladder keeps running: the new person has the time until the next step."""
    choice = choose_assignee(case, timezone.now(), exclude=case.assigned_to_id, require_room=require_room)
    if choice.staff is None:
        return False
    hand_over(
        case, choice.staff, explanation=f"escalation step {step}, not acknowledged in time: {choice.summary}",
        restart_clock=False, row_locked=True,  # the step read the case for change
    )  # fmt: skip
    return True


def _call_fallback_contacts(case: Case, key: str) -> bool:
    """The numbers the centre configures for when nobody answers (the head of the centre): a call and an SMS."""
    told = False
    for index, number in enumerate(settings.ESCALATION_FALLBACK_NUMBERS):
        for channel in (NotificationChannel.VOICE, NotificationChannel.SMS):
            notification: Notification | None = queue_notification(
                key=f"{key}:fallback:{index}:{channel}", to_number=number, body=texts.escalation_to_fallback(case),
                kind=NotificationKind.ESCALATION, case=case, channel=channel,
            )  # fmt: skip
            told |= notification is not None
    return told
