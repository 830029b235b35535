"""Reads for triage: the active rules, compiled once per change, and who is on duty."""
from __future__ import annotations

import datetime as dt
import time

from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet

from helpline.models import OPEN_STATUSES, Case
from triage.classification import CompiledRule, compile_rule
from triage.models import Absence, Role, Shift, StaffProfile, TriageRule

_compiled_cache: dict[str, object] = {"stamp": None, "rules": []}


def active_rules() -> list[CompiledRule]:
    """The active rules, compiled; recompiled only when a supervisor changed them (one cheap query per call)."""
    stamp = TriageRule.objects.aggregate(changed=Max("updated_at"), count=Count("id"))
    if stamp != _compiled_cache["stamp"]:
        _compiled_cache["rules"] = [
            compile_rule(
                name=rule.name,
                category=rule.category,
                priority=rule.priority,
                terms=rule.terms,
                can_be_negated=rule.can_be_negated,
            )
            for rule in TriageRule.objects.filter(is_active=True)
        ]
        _compiled_cache["stamp"] = stamp
    return _compiled_cache["rules"]  # type: ignore[return-value]


_critical_cache: dict[str, object] = {"checked_at": 0.0, "rules": [], "source": None}
CRITICAL_RULES_RECHECK_SECONDS = 5.0


def critical_rules() -> list[CompiledRule]:
    """The active critical rules, for the request path's choice of queue. Rechecked for changes at most every
    5 seconds, sparing each intake a query: a rule edited a moment ago only decides the queue, and the worker's
    full triage (which always rechecks) sets the priority."""
    now = time.monotonic()
    stale = now - _critical_cache["checked_at"] > CRITICAL_RULES_RECHECK_SECONDS  # type: ignore[operator]
    if stale or _critical_cache["source"] is not _compiled_cache["rules"]:  # recompiled in this process meanwhile
        _critical_cache["rules"] = [rule for rule in active_rules() if rule.priority == "critical"]
        _critical_cache["source"], _critical_cache["checked_at"] = _compiled_cache["rules"], now
    return _critical_cache["rules"]  # type: ignore[return-value]


def on_duty(at: dt.datetime, *, role: str | None = None) -> QuerySet[StaffProfile]:
    """Active staff with a shift covering `at` and no absence covering it."""
    covering_shift = Shift.objects.filter(staff=OuterRef("pk"), starts_at__lte=at, ends_at__gt=at)
    covering_absence = Absence.objects.filter(staff=OuterRef("pk"), starts_at__lte=at, ends_at__gt=at)
    staff = StaffProfile.objects.filter(is_active=True, user__is_active=True).filter(
        Exists(covering_shift), ~Exists(covering_absence)
    )
    if role is not None:
        staff = staff.filter(role=role)
    return staff.select_related("user")


def with_open_case_counts(staff: QuerySet[StaffProfile]) -> QuerySet[StaffProfile]:
    return staff.annotate(
        open_cases=Count("user__assigned_cases", filter=Q(user__assigned_cases__status__in=OPEN_STATUSES))
    )


def recent_cases_of_same_caller(case: Case, *, since: dt.datetime) -> QuerySet[Case]:
    """Earlier cases from the same phone number (caller or number given on the web) since a moment."""
    numbers = [str(n) for n in (case.caller.phone if case.caller_id else None, case.contact_phone) if n]
    if not numbers:
        return Case.objects.none()
    return (
        Case.objects.filter(Q(caller__phone__in=numbers) | Q(contact_phone__in=numbers), created_at__gte=since)
        .exclude(pk=case.pk)
        .order_by("created_at")
    )


def supervisors_on_duty(at: dt.datetime) -> QuerySet[StaffProfile]:
    return on_duty(at, role=Role.SUPERVISOR)


def voice_hunt_list(case: Case, at: dt.datetime, *, limit: int = 3) -> list[StaffProfile]:
    """Whom a live call rings, in order: workers on duty who speak the caller's language and have a phone, fewest
    open cases first, then the supervisor on duty. A few at most, so nobody in crisis waits minutes."""
    staff = with_open_case_counts(on_duty(at)).exclude(phone="")
    speakers = [s for s in staff if case.language in (s.languages or [])]
    workers = sorted((s for s in speakers if s.role == Role.WORKER), key=lambda s: (s.open_cases, s.pk))
    supervisors = sorted((s for s in staff if s.role == Role.SUPERVISOR), key=lambda s: (s.open_cases, s.pk))
    return (workers[: limit - 1] + supervisors[:1]) if supervisors else workers[:limit]
