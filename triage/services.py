"""Triage: classify a case's messages, record why, and give the case to the right person on duty.

Everything here is safe to run twice or in two workers at once: the case row is locked, and a case whose
messages were already triaged is left as it is.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from helpline import services as case_services
from helpline.dispatch import publish
from helpline.models import PRIORITY_RANK, Case, CaseStatus, Channel, Direction, EventKind, Priority
from triage import selectors
from triage.classification import Classification, classify_text, reads_as_critical
from triage.models import StaffProfile, TriageRule

logger = logging.getLogger(__name__)

CRITICAL_QUEUE, TRIAGE_QUEUE = "critical", "triage"
REPEAT_CONTACT_WINDOW = dt.timedelta(hours=24)
UNTRIAGED_GRACE = dt.timedelta(seconds=30)
# After the first re-send, a case is re-sent only this often: in a surge the queue is long, not lost, and
# re-sending every sweep would flood it with copies exactly when the workers are busiest.
RESEND_BACKOFF = dt.timedelta(minutes=5)


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


@transaction.atomic
def triage_case(case_id: int) -> Case | None:
    """Classify the case's messages, link the caller's recent cases, then assign. Idempotent."""
    case = Case.objects.select_for_update().filter(pk=case_id).first()
    if case is None:
        logger.warning("triage for a case that does not exist (id %s)", case_id)
        return None
    text, last_message_id = _inbound_text(case)
    if case.triaged_at is None or last_message_id != _last_triaged_message_id(case):
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
    if case.assigned_to_id is None and case.status == CaseStatus.TRIAGED:
        assign_by_policy(case)
    return case


@dataclass(frozen=True)
class AssignmentChoice:
    staff: StaffProfile | None
    explanation: str


def choose_assignee(case: Case, at: dt.datetime) -> AssignmentChoice:
    """On-duty workers who speak the case's language; skills matching the category first; below their maximum
    (a critical case may go over it rather than wait); fewest open cases, then idle longest. Else the on-duty
    supervisor. Nobody on duty: nobody."""
    # Locking the candidates (in one order, so two transactions cannot deadlock) serialises assignments: two
    # workers never both push someone over the maximum. Counted after the lock, so the count is current.
    locked = list(
        selectors.on_duty(at, role="worker").order_by("pk").select_for_update(of=("self",)).values_list("pk", flat=True)
    )
    workers = list(selectors.with_open_case_counts(StaffProfile.objects.filter(pk__in=locked)).select_related("user"))
    speakers = [w for w in workers if case.language in (w.languages or [])]

    def pick(pool: list[StaffProfile]) -> StaffProfile:
        never = dt.datetime.min.replace(tzinfo=dt.UTC)
        return min(pool, key=lambda w: (w.open_cases, w.last_assigned_at or never, w.pk))

    available = [w for w in speakers if w.open_cases < w.max_open_cases]
    skilled = [w for w in available if case.category in (w.skills or [])]
    if skilled:
        return AssignmentChoice(pick(skilled), "on duty, speaks the language, trained for the category, has room")
    if available:
        return AssignmentChoice(pick(available), "on duty, speaks the language, has room")
    if case.priority == Priority.CRITICAL and speakers:
        skilled_full = [w for w in speakers if case.category in (w.skills or [])]
        return AssignmentChoice(
            pick(skilled_full or speakers), "critical case: given over the worker's maximum rather than wait"
        )
    supervisors = list(selectors.with_open_case_counts(selectors.supervisors_on_duty(at)))
    if supervisors:
        reason = "no worker on duty" if not workers else "no worker on duty who speaks the language and has room"
        return AssignmentChoice(pick(supervisors), f"{reason}: the supervisor on duty")
    return AssignmentChoice(None, "nobody on duty")


def assign_by_policy(case: Case) -> Case:
    now = timezone.now()
    choice = choose_assignee(case, now)
    if choice.staff is None:
        logger.warning("nobody on duty for %s; flagged for immediate escalation", case.reference)
        return case_services.flag_unassignable(case, explanation=choice.explanation)
    from notifications.services import start_acknowledgement_clock  # notifications owns deadlines

    StaffProfile.objects.filter(pk=choice.staff.pk).update(last_assigned_at=now)
    open_cases = getattr(choice.staff, "open_cases", None)
    explanation = f"{choice.staff}: {choice.explanation} ({open_cases} open cases before this one)"
    assigned = case_services.assign_case(case, choice.staff.user, explanation=explanation)
    start_acknowledgement_clock(assigned, choice.staff)
    return assigned


def sweep_untriaged(now: dt.datetime | None = None, *, limit: int = 500) -> int:
    """Ring triage again for cases the broker lost: still new 30 s after intake, or triaged but waiting for
    someone to come on duty. Returns how many were re-sent."""
    now = now or timezone.now()
    stale = now - UNTRIAGED_GRACE
    never_resent = Q(triage_requested_at__lt=F("created_at") + dt.timedelta(seconds=5))
    due_again = Q(triage_requested_at__lt=now - RESEND_BACKOFF) | Q(triage_requested_at__isnull=True)
    waiting = list(
        Case.objects.filter(status=CaseStatus.NEW, created_at__lt=stale)
        .filter(never_resent | due_again)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    unassigned = list(
        Case.objects.filter(status=CaseStatus.TRIAGED, assigned_to__isnull=True)
        .exclude(triage_requested_at__gte=stale)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    case_ids = waiting + unassigned
    if case_ids:
        case_services.mark_triage_requested(case_ids)
        first_messages = dict(
            Case.objects.filter(pk__in=waiting).values_list("pk", "messages__body").order_by("pk", "messages__id")
        )
        for case_id in case_ids:
            publish("triage.tasks.triage_case", case_id, queue=queue_for_text(first_messages.get(case_id) or ""))
        logger.warning("sweep re-sent triage for %s cases", len(case_ids))
    return len(case_ids)


LIVE_CALL = "live call"


def accept_call(case: Case, staff: StaffProfile) -> Case:
    """A staff member pressed 1 on a live call: the case is theirs and acknowledged (supervisors may take any)."""
    from notifications.services import NotAllowed, acknowledge_case

    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if locked.assigned_to_id != staff.user_id:
            locked = case_services.assign_case(locked, staff.user, explanation="answered the live call")
        try:
            return acknowledge_case(locked, by=staff.user, via=LIVE_CALL)
        except NotAllowed:  # cannot happen: the case was just given to them
            return locked


def call_was_accepted(case: Case) -> bool:
    return case.status in (CaseStatus.ACKNOWLEDGED, CaseStatus.IN_PROGRESS) and case.timeline.filter(
        kind=EventKind.ACKNOWLEDGED, details__via=LIVE_CALL
    ).exists()


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
