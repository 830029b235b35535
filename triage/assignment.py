"""The one assignment policy: who on duty gets a case. Triage, the escalation ladder's reassign step and a
supervisor's "give it to whoever should have it" all ask `choose_assignee`, so they can never disagree."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from helpline.cases.models import Case, Priority
from helpline.roster.models import Role, StaffProfile
from helpline.roster.selectors import on_duty, supervisors_on_duty, with_open_case_counts


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


def _idlest(pool: list[StaffProfile]) -> StaffProfile:
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    return min(pool, key=lambda w: (w.open_cases, w.last_assigned_at or never, w.pk))


def choose_assignee(
    case: Case, at: dt.datetime, *, exclude: int | None = None, require_room: bool = False
) -> AssignmentChoice:
    """On-duty workers who speak the case's language; skills matching the category first; below their maximum
    (a critical case may go over it rather than wait); fewest open cases, then idle longest. Else the on-duty
    supervisor. Nobody on duty: nobody. `exclude` is a user id (the worker who let the case wait). With
    `require_room` (a surge) nobody is chosen who has no room, whatever the priority.

    Must run inside a transaction: the candidates' rows are locked (in one order, so two transactions cannot
    deadlock), which serialises assignments, so two workers never both push someone over the maximum."""
    candidates = on_duty(at, role=Role.WORKER)
    if exclude is not None:
        candidates = candidates.exclude(user_id=exclude)
    locked = list(candidates.order_by("pk").select_for_update(of=("self",)).values_list("pk", flat=True))
    workers = list(with_open_case_counts(StaffProfile.objects.filter(pk__in=locked)).select_related("user"))
    speakers = [w for w in workers if case.language in (w.languages or [])]
    available = [w for w in speakers if w.open_cases < w.max_open_cases]
    skilled = [w for w in available if case.category in (w.skills or [])]
    if skilled:
        return AssignmentChoice(_idlest(skilled), "on duty, speaks the language, trained for the category, has room")
    if available:
        return AssignmentChoice(_idlest(available), "on duty, speaks the language, has room")
    if case.priority == Priority.CRITICAL and speakers and not require_room:
        skilled_full = [w for w in speakers if case.category in (w.skills or [])]
        return AssignmentChoice(
            _idlest(skilled_full or speakers), "critical case: given over the worker's maximum rather than wait"
        )
    supervisors = with_open_case_counts(supervisors_on_duty(at))
    if exclude is not None:
        supervisors = supervisors.exclude(user_id=exclude)
    supervisors = [s for s in supervisors if not require_room or s.open_cases < s.max_open_cases]
    if supervisors:
        reason = "no worker on duty" if not workers else "no worker on duty who speaks the language and has room"
        if exclude is not None:
            reason = "no other worker on duty who speaks the language and has room"
        return AssignmentChoice(_idlest(supervisors), f"{reason}: the supervisor on duty")
    return AssignmentChoice(None, "nobody on duty" if exclude is None else "nobody else on duty")
