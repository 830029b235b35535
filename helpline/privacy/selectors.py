"""Reads of the privacy app: which cases' retention has ended, what a dry run would do, everything held about a
person, and the read log with its unusual patterns."""
from __future__ import annotations

import datetime as dt
import operator
from collections import Counter
from dataclasses import dataclass, field
from functools import reduce

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case as Case_
from django.db.models import (
    CharField,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from helpline.cases.encryption import email_index, phone_index
from helpline.cases.models import OPEN_STATUSES, Case, CaseRead, CaseStatus, EventKind, TimelineEvent
from helpline.privacy.models import Anonymisation, LegalHold
from helpline.roster.selectors import is_supervisor
from triage.models import Category, TriageCorrection

# --- Retention ------------------------------------------------------------------------------------------------

ANY = "*"

# A person on staff treated the case as a person's: took it (acknowledged), resolved it, or set its category by hand.
_TAKEN_UP_BY_STAFF = (
    Q(first_acknowledged_at__isnull=False) | Q(acknowledged_at__isnull=False) | Q(status=CaseStatus.RESOLVED)
    | Q(Exists(TimelineEvent.objects.filter(case=OuterRef("pk"), kind=EventKind.RECLASSIFIED)))
)  # fmt: skip
# Only the hidden trap field makes a bot: a shared address over the per-address limit (`over_address_limit`) sends
# real messages, and browser autofill can fill the trap, so a trapped case staff took up is kept as a real one. A
# trapped case a worker found to be spam is closed untaken.
_AUTOMATED = Q(is_drill=False, suspected_automated=True) & ~_TAKEN_UP_BY_STAFF
# How a case ended, for retention: the first that applies.
OUTCOMES: dict[str, Q] = {
    "drill": Q(is_drill=True),
    "automated": _AUTOMATED,
    "resolved": Q(is_drill=False, status=CaseStatus.RESOLVED) & ~_AUTOMATED,
    "closed": Q(is_drill=False, status=CaseStatus.CLOSED) & ~_AUTOMATED,
}


def retention_rules() -> list[tuple[str, str, int]]:
    """(category, outcome, days) from settings.RETENTION_DAYS, the most specific first: a category with an outcome,
    then an outcome for any category (a bot or a drill was never a person, whatever its category), then a
    category."""
    rules = []
    for key, days in settings.RETENTION_DAYS.items():
        category, _, outcome = key.partition(":")
        rules.append((category or ANY, outcome or ANY, int(days)))
    return sorted(rules, key=lambda rule: (rule[0] == ANY and rule[1] == ANY, rule[1] == ANY, rule[0] == ANY))


def retention_setting_errors() -> list[str]:
    """What is wrong in RETENTION_DAYS: a misspelt category or outcome would silently keep data for the default."""
    categories = set(Category.values) | {ANY}
    errors = []
    for key, days in settings.RETENTION_DAYS.items():
        category, _, outcome = key.partition(":")
        if category not in categories:
            errors.append(f"RETENTION_DAYS: unknown category {category!r} in {key!r}")
        if outcome and outcome not in {*OUTCOMES, ANY}:
            errors.append(f"RETENTION_DAYS: unknown outcome {outcome!r} in {key!r} (one of {', '.join(OUTCOMES)})")
        if not (str(days).isascii() and str(days).isdigit()):
            errors.append(f"RETENTION_DAYS: {key!r} must be a whole number of days")
    return errors


def retention_days(category: str, outcome: str) -> int:
    for rule_category, rule_outcome, days in retention_rules():
        if rule_category in (ANY, category) and rule_outcome in (ANY, outcome):
            return days
    return settings.RETENTION_DEFAULT_DAYS


def _rule_condition(category: str, outcome: str) -> Q:
    condition = Q() if category == ANY else Q(category=category)
    return condition & OUTCOMES[outcome] if outcome != ANY else condition


def with_retention(cases: QuerySet[Case]) -> QuerySet[Case]:
    """Adds `outcome` and `retention_days`, and lets a query filter on `ended_at` (resolved, else last changed),
    as `past_retention` does."""
    rules = [rule for rule in retention_rules() if rule[1] == ANY or rule[1] in OUTCOMES]
    outcome = Case_(
        *(When(condition, then=Value(name)) for name, condition in OUTCOMES.items()),
        default=Value(""), output_field=CharField(),
    )  # fmt: skip
    days = Case_(
        *(When(_rule_condition(category, outcome_), then=Value(days)) for category, outcome_, days in rules),
        default=Value(settings.RETENTION_DEFAULT_DAYS), output_field=IntegerField(),
    )  # fmt: skip
    return cases.annotate(outcome=outcome, retention_days=days).alias(ended_at=Coalesce("resolved_at", "updated_at"))


def past_retention(now: dt.datetime) -> Q:
    """Ended more than its retention before `now`, for a query `with_retention` made: one condition per number of
    days the settings use, each against a fixed moment. The sum of a date and a number of days computed in the
    database was a number on SQLite (`make run`'s embedded database), which compared as "expired" for every case
    and could not be read back as a date."""
    periods = {days for _, _, days in retention_rules()} | {settings.RETENTION_DEFAULT_DAYS}
    conditions = [Q(retention_days=days, ended_at__lt=now - dt.timedelta(days=days)) for days in sorted(periods)]
    return reduce(operator.or_, conditions)


def is_held() -> Exists:
    return Exists(LegalHold.objects.filter(case=OuterRef("pk"), released_at__isnull=True))


def is_anonymised() -> Exists:
    return Exists(Anonymisation.objects.filter(case=OuterRef("pk")))


def ended_cases() -> QuerySet[Case]:
    """Resolved or closed cases whose personal data is still here."""
    return Case.objects.exclude(status__in=OPEN_STATUSES).exclude(is_anonymised())


def expired_cases(now: dt.datetime) -> QuerySet[Case]:
    """Ended cases past their retention, without a legal hold: what the daily job anonymises, oldest first."""
    due = with_retention(ended_cases()).filter(past_retention(now))
    return due.exclude(is_held()).order_by("pk")


@dataclass
class RetentionPlan:
    """What the daily job would do now: counts by (category, outcome, days), and the cases it would leave because
    of a legal hold. References only: never what a person wrote."""

    now: dt.datetime
    to_anonymise: Counter = field(default_factory=Counter)
    references: list[str] = field(default_factory=list)
    held: list[tuple[str, str]] = field(default_factory=list)  # (reference, reason)

    @property
    def total(self) -> int:
        return sum(self.to_anonymise.values())


def retention_plan(now: dt.datetime | None = None) -> RetentionPlan:
    now = now or timezone.now()
    plan = RetentionPlan(now=now)
    for row in expired_cases(now).values("reference", "category", "outcome", "retention_days"):
        plan.to_anonymise[(row["category"] or "-", row["outcome"], row["retention_days"])] += 1
        plan.references.append(row["reference"])
    held = with_retention(ended_cases()).filter(past_retention(now)).filter(is_held()).select_related("legal_hold")
    plan.held = [(case.reference, case.legal_hold.reason) for case in held.order_by("pk")]
    return plan


def legal_hold_of(case: Case) -> LegalHold | None:
    """The hold in force on the case, if any."""
    return LegalHold.objects.filter(case=case, released_at__isnull=True).select_related("set_by").first()


# --- A person's data -----------------------------------------------------------------------------------------


def cases_about_person(*, phone: str = "", email: str = "") -> list[Case]:
    """Every case that holds this number or e-mail (as the caller's number or as given), and the cases triage linked
    to them as the same person's earlier contacts, oldest first."""
    found = Q(pk__in=[])
    if phone:
        found |= Q(caller__phone_index=phone_index(phone)) | Q(contact_phone_index=phone_index(phone))
    if email:
        found |= Q(contact_email_index=email_index(email))
    direct = Case.objects.filter(found)
    linked = Case.objects.filter(linked_cases__in=direct.values("pk"))
    cases = Case.objects.filter(Q(pk__in=direct.values("pk")) | Q(pk__in=linked.values("pk")))
    cases = cases.annotate(is_under_hold=is_held(), was_anonymised=is_anonymised())
    return list(cases.select_related("caller").order_by("created_at", "pk"))


def holds_of(cases: list[Case]) -> dict[int, LegalHold]:
    holds = LegalHold.objects.filter(case__in=cases, released_at__isnull=True).select_related("set_by", "case")
    return {hold.case_id: hold for hold in holds}


def person_export(cases: list[Case], *, now: dt.datetime | None = None) -> dict:
    """Everything held about the person in these cases, in plain terms, as the export gives it. Staff are named by
    role only: the person has a right to their own data, not to the names of the workers."""
    now = now or timezone.now()
    callers = {case.caller_id: case.caller for case in cases if case.caller_id}
    holds = holds_of(cases)
    return {
        "generated_at": now.isoformat(),
        "callers": [
            {"phone": str(caller.phone), "name": caller.name, "opted_out_of_sms": caller.has_opted_out,
             "first_contact": caller.created_at.isoformat()}
            for caller in callers.values()
        ],
        "cases": [_case_export(case, holds.get(case.pk)) for case in cases],
    }


def _case_export(case: Case, hold: LegalHold | None) -> dict:
    messages = case.messages.order_by("created_at", "pk")
    timeline = TimelineEvent.objects.filter(case=case).order_by("created_at", "pk")
    return {
        "reference": case.reference,
        "channel": case.channel,
        "status": case.status,
        "priority": case.priority,
        "category": case.category,
        "language": case.language,
        "created_at": case.created_at.isoformat(),
        "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
        "contact": {
            "name": case.contact_name, "phone": str(case.contact_phone or ""), "email": case.contact_email,
            "safe_to_call": case.safe_to_call, "safe_to_text": case.safe_to_text,
            "when_safe_to_contact": case.safe_contact_note,
        },
        "messages": [
            {"time": message.created_at.isoformat(), "direction": message.direction, "channel": message.channel,
             "text": message.body, "voicemail_seconds": message.recording_seconds,
             "has_voicemail": bool(message.recording_url)}
            for message in messages
        ],
        "notes": [
            {"time": event.created_at.isoformat(), "text": event.details.get("text", "")}
            for event in timeline if event.kind == EventKind.NOTE
        ],
        "history": [
            {"time": event.created_at.isoformat(), "what": _event_label(event.kind), "by": event.actor_kind}
            for event in timeline
        ],
        # The text triage read is the messages' own, given above; the reason is staff's words about the person.
        "triage_corrections": [
            {"time": correction.corrected_at.isoformat(),
             "triage_said": f"{correction.predicted_priority or '-'}/{correction.predicted_category or '-'}",
             "priority": correction.corrected_priority, "category": correction.corrected_category,
             "reason": correction.reason}
            for correction in TriageCorrection.objects.filter(case=case).order_by("corrected_at", "pk")
        ],
        "legal_hold": {"reason": hold.reason, "since": hold.set_at.isoformat()} if hold else None,
    }


def _event_label(kind: str) -> str:
    return str(EventKind(kind).label) if kind in EventKind.values else kind


# --- The read log ----------------------------------------------------------------------------------------------


def reads_of_case(case: Case, *, limit: int = 500) -> QuerySet[CaseRead]:
    return CaseRead.objects.filter(case=case).select_related("reader").order_by("-read_at", "-pk")[:limit]


def reads_by(user: AbstractBaseUser, *, limit: int = 500) -> QuerySet[CaseRead]:
    return CaseRead.objects.filter(reader=user).select_related("case").order_by("-read_at", "-pk")[:limit]


@dataclass(frozen=True)
class UnusualReading:
    reader: AbstractBaseUser
    day: dt.date
    cases_not_theirs: int


def never_theirs(reader_pk: OuterRef | int) -> Q:
    """Cases the reader does not have and never had (the timeline's assignments say who had a case)."""
    ever_assigned = TimelineEvent.objects.filter(
        kind=EventKind.ASSIGNED, details__assignee_id=reader_pk
    ).values("case_id")
    return ~Q(case__assigned_to_id=reader_pk) & ~Q(case_id__in=ever_assigned)


def unusual_readers(since: dt.datetime, until: dt.datetime | None = None) -> list[UnusualReading]:
    """Workers who opened more cases that were never theirs than READ_LOG_UNUSUAL_CASES_PER_DAY on one day.
    Supervisors read across the centre by their role and are not flagged."""
    until = until or timezone.now()
    threshold = settings.READ_LOG_UNUSUAL_CASES_PER_DAY
    reads = CaseRead.objects.filter(read_at__gte=since, read_at__lt=until)
    per_reader_day: dict[tuple[int, dt.date], set[int]] = {}
    for reader_id, case_id, read_at in reads.values_list("reader_id", "case_id", "read_at"):
        per_reader_day.setdefault((reader_id, timezone.localdate(read_at)), set()).add(case_id)
    busy = {key: cases for key, cases in per_reader_day.items() if len(cases) > threshold}
    if not busy:
        return []
    users = get_user_model().objects.in_bulk({reader_id for reader_id, _ in busy})
    found = []
    for (reader_id, day), case_ids in sorted(busy.items(), key=lambda item: (item[0][1], item[0][0])):
        reader = users[reader_id]
        if is_supervisor(reader):
            continue
        not_theirs = (
            CaseRead.objects.filter(reader_id=reader_id, case_id__in=case_ids).filter(never_theirs(reader_id))
            .values("case_id").distinct().count()
        )  # fmt: skip
        if not_theirs > threshold:
            found.append(UnusualReading(reader=reader, day=day, cases_not_theirs=not_theirs))
    return found


def readers_with_counts(since: dt.datetime) -> QuerySet:
    """Who read how many cases since a moment, the most first: the read log's front page."""
    return (
        CaseRead.objects.filter(read_at__gte=since)
        .values("reader_id", "reader__username")
        .annotate(reads=Count("id"), cases=Count("case_id", distinct=True))
        .order_by("-cases", "reader__username")
    )
