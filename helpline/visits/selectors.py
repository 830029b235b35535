"""Reads about visits: the supervisor board's panel, the worker's own page, and who may see an address."""
from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet
from django.utils import timezone

from helpline.roster.selectors import is_supervisor
from helpline.visits.models import OPEN_VISIT_STATUSES, StaffIncident, Visit, VisitStatus
from notifications.models import Notification

RECENTLY_ENDED = dt.timedelta(hours=2)


def _with_people(visits: QuerySet[Visit]) -> QuerySet[Visit]:
    return visits.select_related("worker__user", "case", "colleague__user", "acknowledged_by")


def active_visits_for_board(now: dt.datetime | None = None) -> list[Visit]:
    """Open visits (alarms first, then overdue, then by expected end) and those ended in the last two hours;
    for supervisors only (the panel shows addresses)."""
    now = now or timezone.now()
    visits = _with_people(
        Visit.objects.filter(Q(status__in=OPEN_VISIT_STATUSES) | Q(ended_at__gte=now - RECENTLY_ENDED))
    )
    order = {VisitStatus.ALARM: 0, VisitStatus.OVERDUE: 1, VisitStatus.ACTIVE: 2}
    return sorted(visits[:200], key=lambda v: (order.get(v.status, 3), v.expected_end_at))


def visits_of_worker(staff, *, limit: int = 10) -> list[Visit]:
    return list(_with_people(Visit.objects.filter(worker=staff)).order_by("-started_at")[:limit])


def visible_visits(user) -> QuerySet[Visit]:
    """Supervisors see every visit; a worker sees their own (the address is for them and supervisors only)."""
    visits = _with_people(Visit.objects.all()).order_by("-started_at")
    if is_supervisor(user):
        return visits
    return visits.filter(worker__user=user)


def seen_by(visit: Visit, user) -> Visit:
    """A duress alarm looks like a check-out, or the extension it pretended, on the worker's own screens: someone
    may be standing behind them. Supervisors see the alarm."""
    if user is not None and user.pk == visit.worker.user_id:
        return visit.as_the_worker_sees_it()
    return visit


def visit_notifications(visit: Visit) -> QuerySet[Notification]:
    from helpline.visits.services import VISIT_KEY_PREFIX

    return (
        Notification.objects.filter(idempotency_key__startswith=f"{VISIT_KEY_PREFIX}{visit.pk}:")
        .select_related("recipient").order_by("created_at", "pk")
    )  # fmt: skip


def told_about(visits: list[Visit], *, latest: int = 12) -> dict[int, list[Notification]]:
    """Who was told about each visit (its latest sends), in one query for the whole board."""
    from helpline.visits.services import VISIT_KEY_PREFIX

    if not visits:
        return {}
    wanted = Q()
    for visit in visits:
        wanted |= Q(idempotency_key__startswith=f"{VISIT_KEY_PREFIX}{visit.pk}:")
    told: dict[int, list[Notification]] = {visit.pk: [] for visit in visits}
    for notification in Notification.objects.filter(wanted).select_related("recipient").order_by("created_at", "pk"):
        told[int(notification.idempotency_key.split(":")[1])].append(notification)
    return {pk: sent[-latest:] for pk, sent in told.items()}


def incidents_in_month(year: int, month: int) -> QuerySet[StaffIncident]:
    start = timezone.make_aware(dt.datetime(year, month, 1))
    end = timezone.make_aware(dt.datetime(year + (month == 12), month % 12 + 1, 1))
    return (
        StaffIncident.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .select_related("staff_affected__user", "case", "reported_by").order_by("occurred_at", "pk")
    )  # fmt: skip
