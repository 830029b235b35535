"""Triage: classify a case's messages and record why; the request path's quick danger check; the shipped rules.

Safe to run twice or in two workers at once: the case row is locked, and a case whose messages were already
triaged is left as it is. Who gets the case is triage.assignment.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from helpline.cases import services as case_services
from helpline.cases.dispatch import CRITICAL_QUEUE, TRIAGE_QUEUE
from helpline.cases.models import PRIORITY_RANK, Case, Channel, Direction, EventKind, Priority
from triage import selectors
from triage.classification import Classification, classify_text, reads_as_critical
from triage.models import TriageRule

logger = logging.getLogger(__name__)

REPEAT_CONTACT_WINDOW = dt.timedelta(hours=24)


def classify(text: str, channel: str | None = None) -> Classification:
    """Priority, category, language, script and readable reasons for one message, by the active rules."""
    result = classify_text(text, selectors.active_rules(), channel=channel)
    if channel == Channel.VOICE and not text.strip() and PRIORITY_RANK[result.priority] < PRIORITY_RANK["high"]:
        # A call with nothing written down yet: someone reached out by phone, and a person must call back soon.
        result.priority = Priority.HIGH
        result.reasons = ["a call with no written message yet: call back"]
    return result


def queue_for_text(text: str) -> str:
    """The Celery queue for a new message: critical-sounding messages never wait behind a surge."""
    try:
        return CRITICAL_QUEUE if text and reads_as_critical(text, selectors.critical_rules()) else TRIAGE_QUEUE
    except Exception:  # intake must never fail on triage; the worker classifies again anyway
        logger.exception("quick classification failed; using the triage queue")
        return TRIAGE_QUEUE


def _inbound_text(case: Case) -> tuple[str, int | None]:
    messages = list(
        case.messages.filter(direction=Direction.INBOUND).order_by("id").values_list("id", "body")
    )
    return "\n".join(body for _, body in messages if body), (messages[-1][0] if messages else None)


def _last_triaged_message_id(case: Case) -> int | None:
    event = case.timeline.filter(kind=EventKind.TRIAGED).order_by("-id").first()
    return event.details.get("up_to_message_id") if event else None


@dataclass(frozen=True)
class TriageRun:
    """The locked case, and whether this run read a follow-up: a message that came after an earlier triage."""

    case: Case
    read_follow_up: bool = False


@transaction.atomic
def triage_case(case_id: int) -> TriageRun | None:
    """Classify the case's messages and link the caller's recent cases, under the case's row lock; messages
    already triaged are not classified again. Assignment is the caller's next step."""
    case = Case.objects.select_for_update().filter(pk=case_id).first()
    if case is None:
        logger.warning("triage for a case that does not exist (id %s)", case_id)
        return None
    text, last_message_id = _inbound_text(case)
    read_follow_up = False
    if case.triaged_at is None or last_message_id != _last_triaged_message_id(case):
        read_follow_up = case.triaged_at is not None
        result = classify(text, case.channel)
        earlier = list(selectors.recent_cases_of_same_caller(case, since=case.created_at - REPEAT_CONTACT_WINDOW))
        raised_by = ""
        if earlier:
            case_services.link_cases(case, earlier)
            highest = max(earlier, key=lambda other: PRIORITY_RANK.get(other.priority, 0))
            if PRIORITY_RANK.get(highest.priority, 0) > PRIORITY_RANK[result.priority]:
                result.priority, raised_by = highest.priority, highest.reference
        case_services.record_triage(
            case,
            priority=result.priority,
            category=result.category,
            reasons=result.reasons,
            up_to_message_id=last_message_id,
            raised_by_earlier_contact=raised_by,
        )
        logger.info("triaged %s as %s/%s", case.reference, case.priority, case.category)
    return TriageRun(case, read_follow_up)


DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "data" / "default_rules.json"


@dataclass(frozen=True)
class DefaultRulesResult:
    added: list[str]
    updated: list[str]


@transaction.atomic
def install_default_rules(*, update: bool = False) -> DefaultRulesResult:
    """Add the shipped rules this installation lacks (by name). With update, also bring rules of the same name
    back to the shipped terms, priority and category: a supervisor's edits to those rules are overwritten, so it
    is a deliberate choice, never automatic."""
    added, updated = [], []
    for shipped in json.loads(DEFAULT_RULES_FILE.read_text(encoding="utf-8")):
        fields = {
            "category": shipped["category"],
            "priority": shipped["priority"],
            "terms": "\n".join(shipped["terms"]),
            "can_be_negated": shipped["can_be_negated"],
        }
        rule, created = TriageRule.objects.get_or_create(name=shipped["name"], defaults=fields)
        if created:
            added.append(rule.name)
        elif update and any(getattr(rule, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(rule, key, value)
            rule.save()
            updated.append(rule.name)
    return DefaultRulesResult(added, updated)
