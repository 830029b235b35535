"""What the console's pages show: the queues, a case with everything around it, the board, the roster week.

Visibility always starts from helpline.selectors.cases_visible_to, the rule the staff API uses as well.
"""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.db.models.functions import ExtractHour
from django.utils import timezone

from helpline import selectors as case_selectors
from helpline.figures import percentile
from helpline.models import OPEN_STATUSES, Case, EventKind, Message, TimelineEvent
from triage.models import Shift, StaffProfile
from triage.roster import LOCAL, Gap, local_moment, roster_gaps
from triage.selectors import on_duty, with_open_case_counts


def _most_urgent_first(cases: QuerySet[Case]) -> QuerySet[Case]:
    return case_selectors.with_urgency(cases).order_by(
        "-urgency", F("acknowledge_by").asc(nulls_last=True), "created_at", "pk"
    )


def my_open_cases(user: AbstractBaseUser) -> QuerySet[Case]:
    cases = Case.objects.filter(assigned_to=user, status__in=OPEN_STATUSES)
    return _most_urgent_first(cases).select_related("caller")


def unassigned_cases(*, limit: int = 50) -> QuerySet[Case]:
    """Open cases nobody has: every worker sees these (the staff API's rule), the most urgent first."""
    cases = Case.objects.filter(assigned_to__isnull=True, status__in=OPEN_STATUSES)
    return _most_urgent_first(cases).select_related("caller")[:limit]


def case_for_page(user: AbstractBaseUser, pk: int) -> Case | None:
    """The case with its conversation and timeline, if the person may see it; None otherwise (a 404)."""
    cases = case_selectors.with_urgency(case_selectors.cases_visible_to(user)).select_related("caller", "assigned_to")
    return cases.prefetch_related(
        Prefetch("messages", queryset=Message.objects.order_by("created_at", "id")),
        Prefetch("timeline", queryset=TimelineEvent.objects.select_related("actor").order_by("created_at", "id")),
    ).filter(pk=pk).first()


def visible_case(user: AbstractBaseUser, pk: int) -> Case | None:
    return case_selectors.cases_visible_to(user).select_related("caller", "assigned_to").filter(pk=pk).first()


def triage_reasons(case: Case) -> list[str]:
    """Why triage chose the priority: the reasons of the latest classification (from the prefetched timeline)."""
    triaged = [event for event in case.timeline.all() if event.kind == EventKind.TRIAGED]
    return list(triaged[-1].details.get("reasons") or []) if triaged else []


def earlier_cases_for(user: AbstractBaseUser, case: Case) -> QuerySet[Case]:
    """The same person's other cases, as far as this staff member may see them."""
    return case_selectors.cases_visible_to(user).filter(pk__in=case_selectors.earlier_cases_of(case)).order_by(
        "-created_at"
    )[:20]


def active_staff() -> QuerySet[StaffProfile]:
    return StaffProfile.objects.filter(is_active=True, user__is_active=True).select_related("user").order_by(
        "user__first_name", "user__username"
    )


# --- The supervisor's board ----------------------------------------------------------------------------------


def escalated_or_overdue(*, limit: int = 100) -> QuerySet[Case]:
    now = timezone.now()
    waiting = Q(acknowledge_by__lt=now, acknowledged_at__isnull=True)
    cases = Case.objects.filter(Q(is_escalated=True) | waiting, status__in=OPEN_STATUSES)
    return _most_urgent_first(cases).select_related("caller", "assigned_to")[:limit]


def staff_loads(at: dt.datetime) -> list[StaffProfile]:
    """Every active staff member with `open_cases` and `is_on_duty`, those on duty first, the busiest first."""
    duty_ids = set(on_duty(at).values_list("pk", flat=True))
    staff = list(with_open_case_counts(active_staff()))
    for profile in staff:
        profile.is_on_duty = profile.pk in duty_ids
    return sorted(staff, key=lambda s: (not s.is_on_duty, -s.open_cases, str(s)))


@dataclass(frozen=True)
class DayFigures:
    cases: int
    escalated: int
    acknowledged: int
    median_acknowledge_seconds: float | None
    p90_acknowledge_seconds: float | None
    per_hour: list[tuple[int, int, int]]  # (hour, cases, critical)

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.cases if self.cases else 0.0


def local_day_start(at: dt.datetime) -> dt.datetime:
    return local_moment(at.astimezone(LOCAL).date(), dt.time(0))


def figures_for_day(at: dt.datetime) -> DayFigures:
    """Today's figures (local day): cases, acknowledgement times, escalation rate, contacts by hour."""
    start = local_day_start(at)
    today = Case.objects.filter(created_at__gte=start, created_at__lt=start + dt.timedelta(days=1))
    totals = today.aggregate(
        cases=Count("id"), escalated=Count("id", filter=Q(is_escalated=True))
    )
    waits = sorted(
        wait.total_seconds()
        for wait in today.filter(acknowledged_at__isnull=False)
        .annotate(wait=F("acknowledged_at") - F("created_at"))
        .values_list("wait", flat=True)
    )
    hours = {
        row["hour"]: (row["n"], row["critical"])
        for row in today.annotate(hour=ExtractHour("created_at", tzinfo=LOCAL))
        .values("hour")
        .annotate(n=Count("id"), critical=Count("id", filter=Q(priority="critical")))
    }
    return DayFigures(
        cases=totals["cases"],
        escalated=totals["escalated"],
        acknowledged=len(waits),
        median_acknowledge_seconds=statistics.median(waits) if waits else None,
        p90_acknowledge_seconds=percentile(waits, 0.9) if waits else None,
        per_hour=[(hour, *hours.get(hour, (0, 0))) for hour in range(24)],
    )


# --- The roster --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterDay:
    day: dt.date
    shifts: list[Shift]


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def roster_week(monday: dt.date) -> list[RosterDay]:
    """Seven days from Monday, each with the shifts that start on it (local time)."""
    start = local_moment(monday, dt.time(0))
    end = local_moment(monday + dt.timedelta(days=7), dt.time(0))
    shifts = Shift.objects.filter(starts_at__gte=start, starts_at__lt=end).select_related("staff__user")
    days = {monday + dt.timedelta(days=n): [] for n in range(7)}
    for shift in shifts.order_by("starts_at", "pk"):
        days[shift.starts_at.astimezone(LOCAL).date()].append(shift)
    return [RosterDay(day, shifts) for day, shifts in days.items()]


def week_gaps(monday: dt.date) -> list[Gap]:
    """Stretches of the week with no worker, no supervisor, or someone on duty without a phone."""
    return roster_gaps(local_moment(monday, dt.time(0)), local_moment(monday + dt.timedelta(days=7), dt.time(0)))
