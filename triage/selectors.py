"""Reads for triage: the active rules, compiled once per change, and who is on duty."""
from __future__ import annotations

import datetime as dt
import time

from django.db.models import Count, Max, QuerySet

from helpline.cases.models import Case, Direction, Message
from helpline.cases.selectors import from_the_same_number
from triage.classification import CompiledRule, compile_rule
from triage.models import TriageCorrection, TriageRule

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


def recent_cases_of_same_caller(case: Case, *, since: dt.datetime) -> QuerySet[Case]:
    """Earlier cases from the same phone number (caller or number given on the web) since a moment."""
    same_number = from_the_same_number(case)
    if same_number is None:
        return Case.objects.none()
    return Case.objects.filter(same_number, created_at__gte=since).exclude(pk=case.pk).order_by("created_at")


def corrections_for_training() -> list[dict[str, str]]:
    """Staff corrections as labelled messages ({"text", "priority", "category"}), the latest per case (a case
    corrected twice teaches its final label once), oldest case first; corrections with no text are left out."""
    latest: dict[int, dict[str, str]] = {}
    rows = TriageCorrection.objects.exclude(text="").order_by("corrected_at", "id")
    for case_id, text, priority, category in rows.values_list(
        "case_id", "text", "corrected_priority", "corrected_category"
    ):
        latest[case_id] = {"text": text, "priority": priority, "category": category}
    return [latest[case_id] for case_id in sorted(latest)]


def awaiting_model(limit: int) -> list[tuple[int, str, int | None]]:
    """Cases the semantic model has not read yet, the likeliest critical by their words first, then the oldest:
    (case id, its inbound messages joined, the last one's id).

    Not by the rules' priority: on the three unseen authors' sets, the first third of the waiting messages held 0.28
    of the critical ones the rules had missed when ordered by the rules' priority then age, and 0.85 by words.
    """
    waiting = Case.objects.filter(awaiting_model=True).order_by("-critical_by_words", "created_at", "pk")
    case_ids = list(waiting.values_list("pk", flat=True)[:limit])
    texts: dict[int, list[str]] = {case_id: [] for case_id in case_ids}
    last_ids: dict[int, int | None] = dict.fromkeys(case_ids)
    rows = Message.objects.filter(case_id__in=case_ids, direction=Direction.INBOUND).order_by("case_id", "id")
    for case_id, message_id, body in rows.values_list("case_id", "id", "body"):
        if body:
            texts[case_id].append(body)
        last_ids[case_id] = message_id
    return [(case_id, "\n".join(texts[case_id]), last_ids[case_id]) for case_id in case_ids]
