"""The one assignment policy: who on duty gets a case. Triage's batches, the escalation ladder's reassign step and a
supervisor's "give it to whoever should have it" all ask `pick_assignee`, so they can never disagree.

Assignments by the policy are serialised by one short PostgreSQL advisory lock (the assignment turn) instead of
locks on every on-duty staff row: a surge once queued every triage and every reassign behind the same few staff
rows. Triage assigns waiting cases in batches under one turn, keeping each person's open-case counter in memory
for the turn's transaction (`StaffPool`), so nobody is pushed over their maximum by two batches at once.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from helpline.cases.models import Case, Priority
from helpline.roster.models import Role, StaffProfile
from helpline.roster.selectors import on_duty_with_open_cases, phone_is_failing

# Advisory lock keys (any two numbers no other code uses): the turn itself, and the one place in line behind it.
ASSIGNMENT_TURN = 18_000_001
NEXT_IN_LINE = 18_000_002


@dataclass(frozen=True)
class AssignmentChoice:
    staff: StaffProfile | None
    explanation: str

    @property
    def summary(self) -> str:
        """What the timeline says: who, why, and how loaded they were."""
        if self.staff is None:
            return self.explanation
        open_cases = getattr(self.staff, "open_cases", None)
        return f"{self.staff}: {self.explanation} ({open_cases} open cases before this one)"


# --- The turn ---------------------------------------------------------------------------------------------------


def _advisory(sql: str, key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
        row = cursor.fetchone()
    return bool(row[0]) if row and row[0] is not None else True


def wait_for_assignment_turn() -> None:
    """Hold the assignment turn until the current transaction ends (one case: a reassign, a supervisor's
    request). SQLite serialises every write transaction anyway."""
    if connection.vendor == "postgresql":
        _advisory("SELECT pg_advisory_xact_lock(%s)", ASSIGNMENT_TURN)


def take_assignment_turn() -> bool:
    """Hold the assignment turn for this transaction, or return False when a later turn is already sure to see
    every case committed so far, so there is nothing to wait for.

    At most one transaction assigns and one waits behind it; everyone else goes on at once. A triage that finds
    both places taken can leave its case: the one waiting (holding NEXT_IN_LINE) has not yet looked at the waiting
    cases, because it gives its place in line up only once it holds the turn, and it looks after that."""
    if connection.vendor != "postgresql":
        return True
    if _advisory("SELECT pg_try_advisory_xact_lock(%s)", ASSIGNMENT_TURN):
        return True
    if not _advisory("SELECT pg_try_advisory_lock(%s)", NEXT_IN_LINE):
        return False
    try:
        _advisory("SELECT pg_advisory_xact_lock(%s)", ASSIGNMENT_TURN)
    finally:
        _advisory("SELECT pg_advisory_unlock(%s)", NEXT_IN_LINE)
    return True


# --- Who is there, and how loaded -------------------------------------------------------------------------------


@dataclass
class StaffPool:
    """The people on duty with their open-case counters, read once per turn and counted up as cases are given
    out in the same transaction."""

    workers: list[StaffProfile]
    supervisors: list[StaffProfile]

    @classmethod
    def on_duty(cls, at: dt.datetime) -> StaffPool:
        people = on_duty_with_open_cases(at)
        return cls(
            [p for p in people if p.role == Role.WORKER], [p for p in people if p.role == Role.SUPERVISOR]
        )

    @property
    def is_empty(self) -> bool:
        return not self.workers and not self.supervisors

    @property
    def has_room(self) -> bool:
        return any(p.open_cases < p.max_open_cases for p in self.workers + self.supervisors)

    def count_assignment(self, staff: StaffProfile, at: dt.datetime, *, is_drill: bool = False) -> None:
        if is_drill:  # as the counters read: a drill's case takes no real case's room
            staff.open_drill_cases = getattr(staff, "open_drill_cases", 0) + 1
        else:
            staff.open_cases += 1
        staff.last_assigned_at = at


def _idlest(pool: list[StaffProfile]) -> StaffProfile:
    """Fewest open cases, then idle longest; but first someone whose phone receives: a person whose SMS came back
    undelivered had their open cases moved on by the ladder, so had the fewest, and got every new case first, each
    waiting out a deadline with someone who never heard of it."""
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    now = timezone.now()
    return min(pool, key=lambda w: (phone_is_failing(w, now), w.open_cases, w.last_assigned_at or never, w.pk))


def _room_test(case: Case):
    """Room for a real case counts real cases only; for a drill's case, the drill's cases as well."""
    if case.is_drill:
        return lambda person: person.open_cases + getattr(person, "open_drill_cases", 0) < person.max_open_cases
    return lambda person: person.open_cases < person.max_open_cases


def pick_assignee(
    case: Case, pool: StaffPool, *, exclude: int | None = None, require_room: bool = False,
    supervisors_need_room: bool = False,
) -> AssignmentChoice:  # fmt: skip
    """On-duty workers who speak the case's language; skills matching the category first; below their maximum
    (a critical case may go over it rather than wait); fewest open cases, then idle longest. Else the on-duty
    supervisor; else a worker who does not speak the language (room first; a critical case over the maximum).
    Nobody on duty: nobody. `exclude` is a user id (the worker who let the case wait). With
    `require_room` (a surge) nobody is chosen who has no room, whatever the priority; with `supervisors_need_room`
    (triage's batches) a supervisor at their maximum takes no more cases that are not critical: they wait."""
    workers = [w for w in pool.workers if w.user_id != exclude]
    speakers = [w for w in workers if case.language in (w.languages or [])]
    has_room = _room_test(case)
    available = [w for w in speakers if has_room(w)]
    skilled = [w for w in available if case.category in (w.skills or [])]
    if skilled:
        return AssignmentChoice(_idlest(skilled), "on duty, speaks the language, trained for the category, has room")
    if available:
        return AssignmentChoice(_idlest(available), "on duty, speaks the language, has room")
    is_critical = case.priority == Priority.CRITICAL
    if is_critical and speakers and not require_room:
        skilled_full = [w for w in speakers if case.category in (w.skills or [])]
        return AssignmentChoice(
            _idlest(skilled_full or speakers), "critical case: given over the worker's maximum rather than wait"
        )
    supervisors = [s for s in pool.supervisors if s.user_id != exclude]
    if require_room or (supervisors_need_room and not is_critical):
        supervisors = [s for s in supervisors if has_room(s)]
    if supervisors:
        reason = "no worker on duty" if not workers else "no worker on duty who speaks the language and has room"
        if exclude is not None:
            reason = "no other worker on duty who speaks the language and has room"
        return AssignmentChoice(_idlest(supervisors), f"{reason}: the supervisor on duty")
    # Last, a worker who does not speak the case's language: a colleague or an interpreter can help them, and a
    # case nobody on duty may take is a case nobody answers (with people on duty, no escalation would start).
    others = [w for w in workers if w not in speakers]
    with_room = [w for w in others if has_room(w)]
    if with_room or (is_critical and others and not require_room):
        return AssignmentChoice(
            _idlest(with_room or others),
            f"nobody on duty who speaks the case's language ({case.language}) can take it: "
            + ("has room" if with_room else "critical case, given over the worker's maximum"),
        )
    if pool.is_empty or (exclude is not None and not workers and not supervisors):
        return AssignmentChoice(None, "nobody on duty" if exclude is None else "nobody else on duty")
    return AssignmentChoice(None, "everyone on duty is at their maximum")


def choose_assignee(
    case: Case, at: dt.datetime, *, exclude: int | None = None, require_room: bool = False
) -> AssignmentChoice:
    """The policy for one case (a reassign step, a supervisor's request). Must run inside a transaction: it waits
    for the assignment turn, so it never pushes someone over the maximum alongside a triage batch."""
    wait_for_assignment_turn()
    return pick_assignee(case, StaffPool.on_duty(at), exclude=exclude, require_room=require_room)
