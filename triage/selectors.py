"""Reads for triage: the active rules, compiled once per change, and who is on duty."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import NamedTuple

from django.db import DatabaseError, connection
from django.db.models import Count, Max, Q

from helpline.cases.kept_reads import kept_for_a_second
from helpline.cases.models import Caller, Case, CaseStatus, Direction, EventKind, Message, TimelineEvent
from helpline.cases.selectors import phone_indexes_of
from triage.classification import CompiledRule, compile_rule
from triage.models import TriageCorrection, TriageRule

logger = logging.getLogger(__name__)

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "data" / "default_rules.json"

_compiled_cache: dict[str, object] = {"stamp": None, "rules": []}
_shipped_cache: list[CompiledRule] = []


@kept_for_a_second(TriageRule)
def _rules_stamp() -> dict[str, object]:
    """What changes when a supervisor adds, edits or removes a rule: asked at most once a second per process."""
    return TriageRule.objects.aggregate(changed=Max("updated_at"), count=Count("id"))


def active_rules() -> list[CompiledRule]:
    """The active rules, compiled; recompiled only when a supervisor changed them. A change made in this process
    is seen at once, one made in another (the console's web process) within a second."""
    stamp = _rules_stamp()
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


_critical_cache: dict[str, object] = {"rules": [], "source": None}


def shipped_rules() -> list[CompiledRule]:
    """The rules shipped with the service (triage/data/default_rules.json), compiled once per process."""
    if not _shipped_cache:
        _shipped_cache.extend(
            compile_rule(
                name=rule["name"],
                category=rule["category"],
                priority=rule["priority"],
                terms="\n".join(rule["terms"]),
                can_be_negated=rule["can_be_negated"],
            )
            for rule in json.loads(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
        )
    return _shipped_cache


def forget_compiled_rules() -> None:
    """As a process just started: no rules compiled yet (for tests)."""
    _compiled_cache.update(stamp=None, rules=[])


def critical_rules() -> list[CompiledRule]:
    """The active critical rules, for the request path's choice of queue and its quick danger check; picked again
    whenever the active rules were recompiled.

    While the rules cannot be read (an outage: intake spools what arrives), those last compiled in this process, or
    the shipped ones in a process that has compiled none with a critical rule among them: a danger message spooled
    in an outage must still be recognised, and its citizen told to call the police now, when no worker can be
    alerted. (Triage itself, and the evaluation, still fail on rules they cannot read.)"""
    try:
        rules = active_rules()
    except DatabaseError:
        logger.warning("the triage rules could not be read; the quick check uses those compiled before, or the shipped")
        compiled: list[CompiledRule] = _compiled_cache["rules"]  # type: ignore[assignment]
        rules = compiled if any(rule.priority == "critical" for rule in compiled) else shipped_rules()
    if _critical_cache["source"] is not rules:
        _critical_cache["rules"] = [rule for rule in rules if rule.priority == "critical"]
        _critical_cache["source"] = rules
    return _critical_cache["rules"]  # type: ignore[return-value]


def inbound_texts(case_ids: list[int]) -> dict[int, tuple[str, int | None]]:
    """Each case's messages from the citizen joined, and the last one's id (what its triage read up to), in one
    query; a case with no message is left out."""
    texts: dict[int, tuple[str, int | None]] = {}
    rows = Message.objects.filter(case_id__in=case_ids, direction=Direction.INBOUND).order_by("case_id", "id")
    for case_id, message_id, body in rows.values_list("case_id", "id", "body"):
        text, _ = texts.get(case_id, ("", None))
        texts[case_id] = (f"{text}\n{body}" if text and body else text or body or "", message_id)
    return texts


def written_after(case_id: int, message_id: int | None) -> tuple[str, dt.datetime | None]:
    """The citizen's messages on the case after `message_id` (every one, with None) joined, and when the first of
    them was stored: what a follow-up's triage reads anew."""
    rows = Message.objects.filter(case_id=case_id, direction=Direction.INBOUND).order_by("id")
    if message_id is not None:
        rows = rows.filter(pk__gt=message_id)
    bodies, first_at = [], None
    for body, created_at in rows.values_list("body", "created_at"):
        first_at = first_at or created_at
        if body:
            bodies.append(body)
    return "\n".join(bodies), first_at


def lock_new_cases_not_triaged(*, besides: set[int], limit: int, sounding_critical: bool = False) -> list[Case]:
    """Up to `limit` new cases nobody has triaged yet, oldest first, other than those `besides`: those whose
    doorbell rides the critical queue (`sounding_critical`) or the others; locked for the caller's transaction, with
    their callers. Cases another worker holds are skipped, not waited for. One statement: PostgreSQL takes the rows
    it can lock until it has `limit`."""
    return list(
        Case.objects.select_related("caller")
        .for_change(of=("self",), skip_locked=True)
        .filter(status=CaseStatus.NEW, triaged_at__isnull=True, sounds_critical=sounding_critical)
        .exclude(pk__in=besides)
        .order_by("created_at", "pk")[:limit]
    )


def triaged_as_written(case_id: int) -> bool:
    """True when the case's last triage read up to the last message the citizen wrote: a doorbell for it has nothing
    to do. One query and no lock, so that the doorbells of cases a batch triaged (`triage_waiting_cases`), and the
    copies of one doorbell, cost next to nothing. A message comes before its doorbell (published once it commits),
    so a follow-up is never missed here."""
    with connection.cursor() as cursor:
        cursor.execute(_triaged_as_written_sql(), [Direction.INBOUND, EventKind.TRIAGED, case_id])
        row = cursor.fetchone()
    if row is None:
        return False
    last_message_id, read_up_to = row
    # The key reads as text on PostgreSQL and as a number on SQLite.
    return (None if last_message_id is None else str(last_message_id)) == (
        None if read_up_to is None else str(read_up_to)
    )


# Written out, not built by the ORM: the same query through two subqueries and a JSON key cost 1.1 ms of CPU a
# doorbell to compile (0.2 ms as SQL), and in a surge most doorbells are answered by this query alone. Constant text
# with parameters; the tables are helpline's Message, TimelineEvent and Case (tests/test_triage_batches.py runs it).
_TRIAGED_AS_WRITTEN = (
    "SELECT (SELECT m.id FROM helpline_message m WHERE m.case_id = c.id AND m.direction = %s"
    " ORDER BY m.id DESC LIMIT 1),"
    " (SELECT {up_to} FROM helpline_timelineevent e WHERE e.case_id = c.id AND e.kind = %s"
    " ORDER BY e.id DESC LIMIT 1)"
    " FROM helpline_case c WHERE c.id = %s AND c.triaged_at IS NOT NULL"
)
_UP_TO_BY_VENDOR = {
    "postgresql": _TRIAGED_AS_WRITTEN.replace("{up_to}", "e.details ->> 'up_to_message_id'"),
    "sqlite": _TRIAGED_AS_WRITTEN.replace("{up_to}", "json_extract(e.details, '$.up_to_message_id')"),
}


def _triaged_as_written_sql() -> str:
    return _UP_TO_BY_VENDOR[connection.vendor]


def recent_cases_of_same_callers(cases: list[Case], *, window: dt.timedelta) -> dict[int, list[Case]]:
    """The same person's other cases, for each of `cases`, since `window` before it was created: from either of its
    numbers (the caller's, or the one given on the web, which may be a caller's too), by case id, oldest first. One
    query for all of them (two when a number given on the web is a caller's), so that a triage batch reads them
    once. A case of the batch itself is its object in `cases`, so that what triage changed in it earlier in the same
    transaction is seen, as a query per case would see it."""
    numbers = {case.pk: phone_indexes_of(case) for case in cases}
    # A number given on the web may be a caller's: their cases count as the same person's.
    given = {n for case in cases for n in numbers[case.pk] if not (case.caller_id and n == case.caller.phone_index)}
    caller_of = dict(Caller.objects.filter(phone_index__in=given).values_list("phone_index", "pk")) if given else {}
    callers = {
        case.pk: {case.caller_id} - {None} | {caller_of[n] for n in numbers[case.pk] if n in caller_of}
        for case in cases
    }
    all_numbers = {n for found in numbers.values() for n in found}
    if not all_numbers:
        return {}
    all_callers = {pk for found in callers.values() for pk in found}
    same_number = Q(caller_id__in=all_callers) | Q(contact_phone_index__in=all_numbers)
    since = min(case.created_at for case in cases) - window
    in_batch = {case.pk: case for case in cases}
    rows = Case.objects.filter(same_number, created_at__gte=since).order_by("created_at", "pk")
    candidates = [in_batch.get(other.pk, other) for other in rows]
    found: dict[int, list[Case]] = {}
    for case in cases:
        if not numbers[case.pk]:
            continue
        earliest = case.created_at - window
        found[case.pk] = [
            other
            for other in candidates
            if other.pk != case.pk
            and other.created_at >= earliest
            and (other.caller_id in callers[case.pk] or other.contact_phone_index in numbers[case.pk])
        ]
    return found


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


class AwaitingModel(NamedTuple):
    """A case waiting for the model's second look: its inbound messages joined, those the model has not read yet
    joined (all of them when it never read the case), and the last message's id."""

    case_id: int
    text: str
    new_text: str
    last_message_id: int | None


def awaiting_model(limit: int) -> list[AwaitingModel]:
    """Cases the semantic model has not read yet, the likeliest critical by their words first, then the oldest.

    Not by the rules' priority: on the three unseen authors' sets, the first third of the waiting messages held 0.28
    of the critical ones the rules had missed when ordered by the rules' priority then age, and 0.85 by words.
    """
    waiting = Case.objects.filter(awaiting_model=True).order_by("-critical_by_words", "created_at", "pk")
    case_ids = list(waiting.values_list("pk", flat=True)[:limit])
    read_up_to = _read_by_model_up_to(case_ids)
    texts: dict[int, list[str]] = {case_id: [] for case_id in case_ids}
    new: dict[int, list[str]] = {case_id: [] for case_id in case_ids}
    last_ids: dict[int, int | None] = dict.fromkeys(case_ids)
    rows = Message.objects.filter(case_id__in=case_ids, direction=Direction.INBOUND).order_by("case_id", "id")
    for case_id, message_id, body in rows.values_list("case_id", "id", "body"):
        if body:
            texts[case_id].append(body)
            if message_id > read_up_to.get(case_id, 0):
                new[case_id].append(body)
        last_ids[case_id] = message_id
    return [
        AwaitingModel(case_id, "\n".join(texts[case_id]), "\n".join(new[case_id]), last_ids[case_id])
        for case_id in case_ids
    ]


def _read_by_model_up_to(case_ids: list[int]) -> dict[int, int]:
    """The last message the model read of each case (in a second look, or in a first triage a critical rule sent
    to it); a case it never read is left out."""
    if not case_ids:
        return {}
    rows = TimelineEvent.objects.filter(case_id__in=case_ids, kind=EventKind.TRIAGED).filter(
        Q(details__read_by_model=True) | Q(details__second_look=True)
    )
    read: dict[int, int] = {}
    for case_id, up_to in rows.values_list("case_id", "details__up_to_message_id"):
        if up_to is not None:
            read[case_id] = max(read.get(case_id, 0), int(up_to))
    return read
