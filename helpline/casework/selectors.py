"""Reads of case work that the staff API and the console share: who sees which case, the queues, a case with
everything around it (its read recorded), the board and the figures. One rule each, so the surfaces cannot drift."""
from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import ExtractHour
from django.utils import timezone
from django.utils.translation import gettext as _

from helpline.cases import services as case_services
from helpline.cases.figures import percentile
from helpline.cases.models import (
    OPEN_STATUSES,
    Case,
    CaseRead,
    CaseStatus,
    Direction,
    EventKind,
    Message,
    Priority,
    TimelineEvent,
)
from helpline.cases.selectors import by_urgency, earlier_cases_of, with_urgency
from helpline.casework.reasons import UnknownReason, reasons_in_words
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import active_staff, is_staff_member, is_supervisor, on_duty, with_open_case_counts
from helpline.roster.services import LOCAL, local_moment
from notifications import ladder
from notifications.models import Notification

logger = logging.getLogger(__name__)


def cases_visible_to(user) -> QuerySet[Case]:
    """A supervisor sees every case; a worker the cases assigned to them now or before, and the unassigned queue
    (open cases nobody has: a case closed from the queue before anyone took it is nobody's business but the
    supervisors'). Anything else does not exist for them (404, no hint)."""
    cases = Case.objects.all()
    if is_supervisor(user):
        return cases
    if not is_staff_member(user):
        return cases.none()
    ever_assigned = TimelineEvent.objects.filter(kind=EventKind.ASSIGNED, details__assignee_id=user.pk).values(
        "case_id"
    )
    waiting_for_anyone = Q(assigned_to__isnull=True, status__in=OPEN_STATUSES)
    return cases.filter(Q(assigned_to=user) | waiting_for_anyone | Q(pk__in=ever_assigned))


def with_unread(cases: QuerySet[Case], user: AbstractBaseUser) -> QuerySet[Case]:
    """Adds `has_unread`: the citizen wrote after this person last opened the case (or they never opened it)."""
    reads = CaseRead.objects.filter(case=OuterRef("case_id"), reader=user)
    last_read = reads.order_by("-read_at").values("read_at")[:1]
    newer = Message.objects.filter(case=OuterRef("pk"), direction=Direction.INBOUND).annotate(
        seen_at=Subquery(last_read)
    ).filter(Q(seen_at__isnull=True) | Q(created_at__gt=F("seen_at")))
    return cases.annotate(has_unread=Exists(newer))


def my_open_cases(user: AbstractBaseUser) -> QuerySet[Case]:
    cases = Case.objects.filter(assigned_to=user, status__in=OPEN_STATUSES)
    return with_unread(by_urgency(cases), user).select_related("caller")


def unassigned_cases(*, limit: int = 50) -> QuerySet[Case]:
    """Open cases nobody has: every worker sees these (the staff API's rule), the most urgent first."""
    return by_urgency(_unassigned()).select_related("caller")[:limit]


def count_unassigned() -> int:
    """How many there are, however many the list shows: in a surge the list stops at 50 and its length is no count."""
    return _unassigned().count()


def _unassigned() -> QuerySet[Case]:
    return Case.objects.filter(assigned_to__isnull=True, status__in=OPEN_STATUSES)


def with_conversation(cases: QuerySet[Case]) -> QuerySet[Case]:
    """Prefetches a case's conversation and timeline, in the order a reader reads them."""
    return cases.prefetch_related(
        Prefetch("messages", queryset=Message.objects.order_by("created_at", "id")),
        Prefetch("timeline", queryset=TimelineEvent.objects.select_related("actor").order_by("created_at", "id")),
    )


def read_case(user: AbstractBaseUser, pk: int, *, via: str) -> Case | None:
    """The case with its conversation and timeline, if the person may see it, and the read recorded (who opened
    which case, and where: cases hold the most sensitive data a municipality has). None means 404."""
    cases = with_urgency(cases_visible_to(user)).select_related("caller", "assigned_to")
    case = with_conversation(cases).filter(pk=pk).first()
    if case is not None:
        case_services.record_read(case, reader=user, via=via)
    return case


def visible_case(user: AbstractBaseUser, pk: int) -> Case | None:
    return cases_visible_to(user).select_related("caller", "assigned_to").filter(pk=pk).first()


def triage_reasons(case: Case) -> list[str]:
    """Why triage chose the priority: the reasons of the latest classification (from the prefetched timeline), the
    same person's earlier contact that raised it said in the reader's language."""
    triaged = [event for event in case.timeline.all() if event.kind == EventKind.TRIAGED]
    if not triaged:
        return []
    details = triaged[-1].details
    reasons = list(details.get("reasons") or [])
    explained = details.get("explained")
    if explained:  # absent before it was stored, blanked on anonymisation: then the English reasons
        try:
            reasons = reasons_in_words(explained)
        except UnknownReason:
            logger.warning("triage reasons of %s not said in words; shown in English", case.reference, exc_info=True)
    earlier = details.get("raised_by_earlier_contact")
    if earlier:  # stored in English for the API (and not at all before it was); shown translated here
        reasons = [reason for reason in reasons if reason != case_services.earlier_contact_reason(earlier)]
        reasons.append(
            _("raised because of the same person's earlier contact within 24 hours: %(reference)s")
            % {"reference": earlier}
        )
    return reasons


def earlier_cases_for(user: AbstractBaseUser, case: Case) -> QuerySet[Case]:
    """The same person's other cases, as far as this staff member may see them."""
    return cases_visible_to(user).filter(pk__in=earlier_cases_of(case)).order_by(
        "-created_at"
    )[:20]


# --- The supervisor's board ----------------------------------------------------------------------------------


WAITING_FOR_A_PERSON = (CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.ASSIGNED)


def waiting_for_a_person(*, limit: int = 100) -> list[Case]:
    """What the board watches: every critical and high case nobody has taken yet (inside its deadline too), and
    any case escalated or past its deadline, most urgent first, each with who was told what, by which channel, and
    what Twilio reported (`notification_log`)."""
    cases = list(by_urgency(_waiting_for_a_person(timezone.now())).select_related("caller", "assigned_to")[:limit])
    logs = notification_logs([case.pk for case in cases], per_case=6)
    for case in cases:
        case.notification_log = logs.get(case.pk, [])
    return cases


def count_waiting_for_a_person() -> tuple[int, int]:
    """How many the board's list would hold without its limit (it shows the 100 most urgent): real cases, and drill
    cases apart (a drill's contacts are no person waiting, as on the Load panel). One query."""
    counts = _waiting_for_a_person(timezone.now()).aggregate(
        real=Count("pk", filter=Q(is_drill=False)), drill=Count("pk", filter=Q(is_drill=True))
    )
    return counts["real"], counts["drill"]


def _waiting_for_a_person(now: dt.datetime) -> QuerySet[Case]:
    overdue = Q(acknowledge_by__lt=now, acknowledged_at__isnull=True)
    urgent = Q(priority__in=[Priority.CRITICAL, Priority.HIGH])
    # A normal or low case nobody had room for has no deadline of its own: past its priority's, it is on the list.
    no_room = ladder.left_waiting_for_room(now)
    return Case.objects.filter(urgent | overdue | Q(is_escalated=True) | no_room, status__in=WAITING_FOR_A_PERSON)


def notification_logs(case_ids: list[int], *, per_case: int | None = None) -> dict[int, list[Notification]]:
    """Each case's notifications, newest first: recipient, channel, kind, delivery status. One query."""
    found: dict[int, list[Notification]] = {}
    rows = Notification.objects.filter(case_id__in=case_ids).select_related("recipient").order_by("-created_at", "-pk")
    for notification in rows.defer("body"):
        entries = found.setdefault(notification.case_id, [])
        if per_case is None or len(entries) < per_case:
            entries.append(notification)
    return found


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
    # The next local midnight, not 24 hours on: the day of a clock change is 23 or 25 hours long.
    end = local_day_start(start.astimezone(LOCAL) + dt.timedelta(hours=26))
    today = counted_cases().filter(created_at__gte=start, created_at__lt=end)
    totals = today.aggregate(
        cases=Count("id"), escalated=Count("id", filter=Q(is_escalated=True))
    )
    waits = sorted(
        wait.total_seconds()
        for wait in today.filter(first_acknowledged_at__isnull=False)
        .annotate(wait=F("first_acknowledged_at") - F("created_at"))
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


# --- Figures for a period (the staff API's stats) -----------------------------------------------------------------


def counted_cases() -> QuerySet[Case]:
    """The cases figures count: drill cases are rehearsals and never count, on the board or in the API."""
    return Case.objects.filter(is_drill=False)


def _seconds(deltas: list[dt.timedelta]) -> dict[str, float | None]:
    values = sorted(d.total_seconds() for d in deltas)
    if not values:
        return {"median": None, "p90": None}
    return {"median": round(statistics.median(values), 1), "p90": round(percentile(values, 0.9), 1)}


def case_stats(user: AbstractBaseUser, start: dt.datetime, end: dt.datetime) -> dict:
    """Counts and times for the cases this person may see, created in [start, end)."""
    visible = cases_visible_to(user).values("pk")
    cases = counted_cases().filter(pk__in=visible, created_at__gte=start, created_at__lt=end)
    total = cases.count()

    def counts(field: str) -> dict[str, int]:
        return {row[field] or "": row["n"] for row in cases.values(field).annotate(n=Count("id")).order_by(field)}

    # From the contact to the first person who took it: a later reassignment clears `acknowledged_at`, and the
    # wait was then lost, or charged (days long) to whoever took the case last.
    acknowledged = cases.filter(first_acknowledged_at__isnull=False).annotate(
        wait=F("first_acknowledged_at") - F("created_at")
    )
    resolved = cases.filter(resolved_at__isnull=False).annotate(took=F("resolved_at") - F("created_at"))
    body = {
        "period": {"from": start, "to": end},
        "cases": total,
        "by_status": counts("status"),
        "by_priority": counts("priority"),
        "by_category": counts("category"),
        "by_channel": counts("channel"),
        "time_to_acknowledge_seconds": _seconds(list(acknowledged.values_list("wait", flat=True))),
        "time_to_resolve_seconds": _seconds(list(resolved.values_list("took", flat=True))),
        "escalated": cases.filter(is_escalated=True).count(),
        "escalation_rate": round(cases.filter(is_escalated=True).count() / total, 3) if total else 0.0,
    }
    if is_supervisor(user):
        per_worker: dict[str, list] = {}
        for row in acknowledged.values("assigned_to", "assigned_to__username", "wait"):
            per_worker.setdefault(row["assigned_to__username"] or "-", []).append(row["wait"])
        body["per_worker"] = {
            name: {"acknowledged": len(waits), "time_to_acknowledge_seconds": _seconds(waits)}
            for name, waits in per_worker.items()
        }
    return body
