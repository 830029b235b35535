"""Everything that changes a stored case: its status, timeline, triage result, assignee and escalation state.

The one function that changes a status is `change_case_status`; every function here writes the timeline in the same
transaction. Storing new contacts is helpline.cases.intake.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connections, transaction
from django.db.models import Case as SqlCase
from django.db.models import F, QuerySet, Value, When
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _

from helpline.cases import selectors
from helpline.cases.models import (
    OPEN_STATUSES,
    PRIORITY_RANK,
    ActorKind,
    Caller,
    Case,
    CaseRead,
    CaseStatus,
    Direction,
    EventKind,
    Heartbeat,
    Message,
    TimelineEvent,
)

logger = logging.getLogger(__name__)

# Which status may follow which. Moving a resolved or closed case back to triaged or assigned is a reopen.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    CaseStatus.NEW: frozenset({CaseStatus.TRIAGED, CaseStatus.ASSIGNED, CaseStatus.RESOLVED, CaseStatus.CLOSED}),
    CaseStatus.TRIAGED: frozenset({CaseStatus.ASSIGNED, CaseStatus.RESOLVED, CaseStatus.CLOSED}),
    # Not straight to in progress: work starts on a case someone has taken, or the acknowledgement is never
    # recorded, the case shows overdue for ever and its ladder may stop with nobody having it in hand.
    CaseStatus.ASSIGNED: frozenset({CaseStatus.ACKNOWLEDGED, CaseStatus.TRIAGED, CaseStatus.RESOLVED}),
    CaseStatus.ACKNOWLEDGED: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.ASSIGNED, CaseStatus.RESOLVED}),
    CaseStatus.IN_PROGRESS: frozenset({CaseStatus.ASSIGNED, CaseStatus.RESOLVED}),
    CaseStatus.RESOLVED: frozenset({CaseStatus.CLOSED, CaseStatus.TRIAGED, CaseStatus.ASSIGNED}),
    CaseStatus.CLOSED: frozenset({CaseStatus.TRIAGED, CaseStatus.ASSIGNED}),
}

class CaseTransitionError(Exception):
    """The requested status change is not allowed from the case's current status."""


# --- Timeline and status -----------------------------------------------------------------------------------


# Events waiting to be written together (see `timeline_written_together`); None outside such a block.
_events_to_write: ContextVar[list[TimelineEvent] | None] = ContextVar("events_to_write", default=None)


def record_event(
    case: Case,
    kind: str,
    *,
    actor: AbstractBaseUser | None = None,
    actor_kind: str = ActorKind.SYSTEM,
    **details: Any,
) -> TimelineEvent:
    """Append one event to a case's timeline. Details must never hold a citizen's message text.

    Inside `timeline_written_together` the event is written when the block ends (and returned unsaved)."""
    if actor is not None:
        actor_kind = ActorKind.STAFF
    event = TimelineEvent(case=case, kind=kind, actor=actor, actor_kind=actor_kind, details=details)
    pending = _events_to_write.get()
    if pending is None:
        event.save()
    else:
        pending.append(event)
    return event


@contextmanager
def timeline_written_together() -> Iterator[None]:
    """Events recorded inside the block are inserted in one statement when it ends, in the order recorded.

    For the few events of one change in one transaction (a triage and its status, an assignment and its status):
    the same timeline, one round trip instead of one per event. Nothing inside may read those events back. If the
    block raises, nothing is written (its transaction is rolled back anyway). A block inside another writes with
    the outer one.
    """
    if _events_to_write.get() is not None:
        yield
        return
    pending: list[TimelineEvent] = []
    token = _events_to_write.set(pending)
    try:
        yield
    finally:
        _events_to_write.reset(token)
    if pending:
        TimelineEvent.objects.bulk_create(pending)


# Case rows waiting to be written together (see `written_together`), by id; None outside such a block.
_rows_to_write: ContextVar[dict[int, tuple[Case, set[str]]] | None] = ContextVar("rows_to_write", default=None)


@contextmanager
def written_together() -> Iterator[None]:
    """The changes of many cases held under their row locks in one transaction (a batch of triage, a batch of
    assignments): each case's row is updated, and the timeline events inserted, in one statement each when the
    block ends, instead of one UPDATE a case for its triage and one for its assignment (two of the five statements
    a contact cost the worker in a surge).

    As in `timeline_written_together`, nothing inside may read those rows back from the database, and nothing is
    written if the block raises. A block inside another writes with the outer one."""
    if _rows_to_write.get() is not None:
        yield
        return
    rows: dict[int, tuple[Case, set[str]]] = {}
    token = _rows_to_write.set(rows)
    try:
        with timeline_written_together():
            yield
            _write_case_rows(list(rows.values()))
    finally:
        _rows_to_write.reset(token)


def _save_locked_case(case: Case, fields: Iterable[str]) -> None:
    """Write fields of a case read for change in this transaction: now, or inside `written_together` with the
    others when the block ends."""
    pending = _rows_to_write.get()
    if pending is None:
        case.save(update_fields=list(dict.fromkeys(fields)))
        return
    held = pending.get(case.pk)
    if held is not None and held[0] is not case:  # another copy of the row: written first, as it would have been
        _write_case_rows([held])
        held = None
    pending[case.pk] = (case, (held[1] if held else set()) | set(fields))


def _write_case_rows(rows: list[tuple[Case, set[str]]]) -> None:
    by_fields: dict[frozenset[str], list[Case]] = {}
    for case, fields in rows:
        by_fields.setdefault(frozenset(fields), []).append(case)
    for fields, cases in by_fields.items():
        if len(cases) == 1:
            cases[0].save(update_fields=sorted(fields))
        else:
            _update_together(cases, sorted(fields))


def _update_together(cases: list[Case], names: list[str]) -> None:
    """One UPDATE of `names` on many rows. What bulk_update() writes, with fewer expressions: it builds a WHEN for
    every case and every field (in a batch of twenty, about two hundred, whose building cost the worker more CPU
    than the UPDATEs it saved); here a value the whole batch shares (the status, the time) is written as it is, and
    a field whose values differ (the priority) has a WHEN for each value, not for each case."""
    now = timezone.now()
    cast = connections[Case.objects.db].features.requires_casted_case_in_updates
    changes: dict[str, Any] = {}
    for field in (Case._meta.get_field(name) for name in names):
        groups: list[tuple[Any, list[int]]] = []
        for case in cases:
            if getattr(field, "auto_now", False):  # updated_at, stamped as save() stamps it
                setattr(case, field.attname, now)
            value = getattr(case, field.attname)
            for shared, ids in groups:
                if shared == value:
                    ids.append(case.pk)
                    break
            else:
                groups.append((value, [case.pk]))
        if len(groups) == 1:
            changes[field.attname] = Value(groups[0][0], output_field=field)
            continue
        choice = SqlCase(
            *(When(pk__in=ids, then=Value(value, output_field=field)) for value, ids in groups), output_field=field
        )
        changes[field.attname] = Cast(choice, output_field=field) if cast else choice
    if Case.objects.filter(pk__in=[case.pk for case in cases]).update(**changes) != len(cases):
        raise DatabaseError("a case held under its row lock was not updated")


def change_case_status(
    case: Case,
    to_status: str,
    *,
    actor: AbstractBaseUser | None = None,
    actor_kind: str = ActorKind.SYSTEM,
    reason: str = "",
    row_locked: bool = False,
    also_save: Iterable[str] = (),
    **details: Any,
) -> Case:
    """The one way a case's status changes: checks the transition under a row lock and writes the timeline.

    Returns the locked, updated case; the caller's own copy may be stale. With `row_locked` the caller read `case`
    with for_change() in its current transaction and it is changed as it is: no second read of the row and no
    savepoint (a refused transition is raised before anything is written). Triage and assignment, which hold the
    row already, spent two of every five queries on those. `also_save` names other fields the caller changed on the
    locked row, written in the same UPDATE as the status.
    """
    if row_locked:
        return _change_locked_case_status(
            case, to_status, actor=actor, actor_kind=actor_kind, reason=reason, also_save=also_save, **details
        )
    with transaction.atomic():
        locked = Case.objects.for_change().get(pk=case.pk)
        _change_locked_case_status(
            locked, to_status, actor=actor, actor_kind=actor_kind, reason=reason, also_save=also_save, **details
        )
    case.status, case.resolved_at = locked.status, locked.resolved_at
    return locked


def _change_locked_case_status(
    locked: Case,
    to_status: str,
    *,
    actor: AbstractBaseUser | None,
    actor_kind: str,
    reason: str,
    also_save: Iterable[str],
    **details: Any,
) -> Case:
    from_status = locked.status
    if to_status not in ALLOWED_TRANSITIONS.get(from_status, ()):
        raise CaseTransitionError(
            _("A case that is %(from_status)s cannot become %(to_status)s.")
            % {"from_status": CaseStatus(from_status).label.lower(), "to_status": CaseStatus(to_status).label.lower()}
        )
    is_reopen = from_status in (CaseStatus.RESOLVED, CaseStatus.CLOSED)
    if is_reopen and locked.timeline.filter(kind=EventKind.ANONYMISED).exists():
        # Its words and contacts are gone, and retention passes over an anonymised case: reopened, it would be
        # worked blind and keep whatever was added to it for good. What comes now is a new contact.
        raise CaseTransitionError(
            _("The personal data of %(reference)s was erased, so it cannot be reopened: the person's next call, SMS "
              "or form opens a new case.")
            % {"reference": locked.reference}
        )
    if is_reopen and locked.caller_id is not None:
        other = selectors.open_case_for_caller(locked.caller)
        if other is not None:
            message = _("The caller already has an open case, %(reference)s; continue there.")
            raise CaseTransitionError(message % {"reference": other.reference})
    locked.status = to_status
    reopened_fields: list[str] = []
    if to_status == CaseStatus.RESOLVED:
        locked.resolved_at = timezone.now()
    elif is_reopen:
        locked.resolved_at = None
        # The old acknowledgement was of the case as it was: back on a desk it waits to be taken again, and whoever
        # reopens it starts the clock (casework's `do_reopen`, or the triage of the citizen's follow-up); until
        # then nothing counts it as in hand.
        locked.acknowledged_at, locked.escalation_due_at = None, None
        reopened_fields = ["acknowledged_at", "escalation_due_at"]
    _save_locked_case(locked, ["status", "resolved_at", "updated_at", *reopened_fields, *also_save])
    record_event(
        locked,
        EventKind.STATUS_CHANGED,
        actor=actor,
        actor_kind=actor_kind,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        reopened=is_reopen,
        **details,
    )
    return locked


# --- Triage results, assignment, reclassification (called by the triage app) -----------------------------

def higher_priority(a: str, b: str) -> str:
    return a if PRIORITY_RANK.get(a, 0) >= PRIORITY_RANK.get(b, 0) else b


# Why a contact has the priority of the same person's earlier one (triage's repeat-contact window is 24 hours):
# stored in English with the other reasons, for the API; the console shows it in the reader's language
# (helpline.casework.selectors.triage_reasons).
EARLIER_CONTACT_REASON = "raised because of the same person's earlier contact within 24 hours: {reference}"


def earlier_contact_reason(reference: str) -> str:
    return EARLIER_CONTACT_REASON.format(reference=reference)


@transaction.atomic(savepoint=False)  # nothing here is caught and carried on from: no savepoint of its own
def record_triage(
    case: Case,
    *,
    row_locked: bool = False,
    priority: str,
    category: str,
    reasons: list[str],
    up_to_message_id: int | None,
    explained: list[dict] | None = None,
    raised_by_earlier_contact: str = "",
    category_decided: bool = False,
    awaiting_model: bool = False,
    critical_by_words: float = 0.0,
    second_look: bool = False,
    read_by_model: bool = False,
    read_all_written: bool = True,
) -> Case:
    """Store a classification. Automatic triage never lowers a priority a case already has: a follow-up that
    sounds calmer does not make the danger smaller, and a person was already called for the priority it had.

    The category changes with a raised priority, or when `category_decided` (the semantic model's second look,
    whose categories are the better ones). `raised_by_earlier_contact`: the reference of the same person's earlier
    case whose priority this one was given, said in the reasons too. `awaiting_model` marks the case for that
    second look, which reads the cases with the highest `critical_by_words` first; `second_look` says on the
    timeline that this classification is it, and `read_by_model` that the model read the text (its next reading
    takes what came since on its own). `explained`: the reasons as kinds and parameters, which the console says in
    the reader's language (without it, the English reasons are shown). With `row_locked`, `case` was read with
    for_change() in the caller's transaction and is changed as it is. `triaged_at` says when a triage last read
    everything the citizen had written: not `read_all_written` (a look ahead of the rules, a welfare answer raised to
    high unread), it stays, so the sweep still finds what is unread."""
    locked = case if row_locked else Case.objects.for_change().get(pk=case.pk)
    new_priority = higher_priority(priority, locked.priority)
    changed = new_priority != locked.priority
    if changed or not locked.category or category_decided:
        locked.category = category
    locked.priority = new_priority
    if read_all_written:
        locked.triaged_at = timezone.now()
    locked.awaiting_model, locked.critical_by_words = awaiting_model, critical_by_words if awaiting_model else 0.0
    triage_fields = ["priority", "category", "triaged_at", "awaiting_model", "critical_by_words", "updated_at"]
    details = {"second_look": True} if second_look else {}
    if raised_by_earlier_contact:
        reasons = [*reasons, earlier_contact_reason(raised_by_earlier_contact)]
    if read_by_model or second_look:
        details["read_by_model"] = True
    if explained:
        details["explained"] = explained
    # One UPDATE of the row and one INSERT of both events, where a new case's status changes too.
    with timeline_written_together():
        record_event(
            locked,
            EventKind.TRIAGED,
            priority=locked.priority,
            category=locked.category,
            suggested_priority=priority,
            reasons=reasons,
            up_to_message_id=up_to_message_id,
            raised_by_earlier_contact=raised_by_earlier_contact,
            **details,
        )
        if locked.status == CaseStatus.NEW:
            change_case_status(locked, CaseStatus.TRIAGED, reason="triage", row_locked=True, also_save=triage_fields)
        else:
            _save_locked_case(locked, triage_fields)
    case.priority, case.category, case.status = locked.priority, locked.category, locked.status
    case.awaiting_model, case.triaged_at = locked.awaiting_model, locked.triaged_at
    return locked


@transaction.atomic
def link_cases(case: Case, earlier: list[Case]) -> None:
    """Link a contact to the same person's earlier cases, once, on both timelines."""
    already = set(case.linked_cases.values_list("pk", flat=True))
    new = [other for other in earlier if other.pk not in already and other.pk != case.pk]
    if not new:
        return
    case.linked_cases.add(*new)
    record_event(case, EventKind.LINKED, references=[other.reference for other in new])


def assign_case(
    case: Case, assignee: AbstractBaseUser, *, by: AbstractBaseUser | None = None, explanation: str = "",
    row_locked: bool = False, acknowledge_by: dt.datetime | None = None, ladder: list[list] | None = None,
) -> Case:  # fmt: skip
    """Give the case to a staff member; the status becomes assigned and the timeline says why. With `row_locked`,
    `case` was read with for_change() in the caller's transaction (a batch of waiting cases) and is changed as is,
    with no savepoint: a refused assignment is raised before anything is written. With `acknowledge_by` and
    `ladder`, their acknowledgement clock starts in the same write (see `start_escalation_clock`)."""
    if row_locked:
        return _assign_locked_case(case, assignee, by, explanation, acknowledge_by, ladder)
    with transaction.atomic():
        locked = Case.objects.for_change().get(pk=case.pk)
        _assign_locked_case(locked, assignee, by, explanation, acknowledge_by, ladder)
    case.assigned_to, case.status = locked.assigned_to, locked.status
    return locked


def _assign_locked_case(
    locked: Case, assignee: AbstractBaseUser, by: AbstractBaseUser | None, explanation: str,
    acknowledge_by: dt.datetime | None, ladder: list[list] | None,
) -> Case:  # fmt: skip
    clock = _escalation_clock_fields(locked, acknowledge_by, ladder) if acknowledge_by is not None else {}
    previous = locked.assigned_to
    before = {"assigned_to": previous} | {field: getattr(locked, field) for field in clock}
    locked.assigned_to = assignee
    for field, value in clock.items():
        setattr(locked, field, value)
    # One UPDATE of the row (status, assignee and clock) and one INSERT of both events.
    with timeline_written_together():
        if locked.status != CaseStatus.ASSIGNED:
            try:
                change_case_status(
                    locked, CaseStatus.ASSIGNED, actor=by, reason=explanation, row_locked=True,
                    also_save=["assigned_to", *clock],
                )  # fmt: skip
            except CaseTransitionError:
                for field, value in before.items():  # refused: the caller's copy of the row stays as it was
                    setattr(locked, field, value)
                raise
        else:
            _save_locked_case(locked, ["assigned_to", "updated_at", *clock])
        record_event(
            locked,
            EventKind.ASSIGNED,
            actor=by,
            assignee_id=assignee.pk,
            assignee=assignee.get_username(),
            previous=previous.get_username() if previous else None,
            explanation=explanation,
        )
    return locked


@transaction.atomic
def flag_unassignable(case: Case, *, explanation: str) -> Case:
    """Nobody on duty can take the case: it waits unassigned and is due for escalation at once."""
    locked = Case.objects.for_change().get(pk=case.pk)
    already_flagged = locked.escalation_due_at is not None
    if not already_flagged:
        escalate_at_once(locked)
        record_event(locked, EventKind.UNASSIGNED, explanation=explanation)
    return locked


@transaction.atomic
def reclassify_case(case: Case, *, priority: str, category: str, reason: str, by: AbstractBaseUser) -> Case:
    """A social worker or supervisor overrides triage, with a reason, on the timeline."""
    if not reason.strip():
        raise ValueError(_("A reason is required to change priority or category."))
    locked = Case.objects.for_change().get(pk=case.pk)
    before = {"priority": locked.priority, "category": locked.category}
    locked.priority, locked.category = priority, category
    locked.awaiting_model = False  # a person has decided: the model's second look never overrides them
    locked.save(update_fields=["priority", "category", "awaiting_model", "updated_at"])
    record_event(
        locked, EventKind.RECLASSIFIED, actor=by, before=before, priority=priority, category=category, reason=reason
    )
    case.priority, case.category = priority, category
    return locked


def _save_escalation_fields(case: Case, **changes: Any) -> None:
    Case.objects.filter(pk=case.pk).update(**changes, updated_at=timezone.now())
    for field, value in changes.items():
        setattr(case, field, value)


def start_escalation_clock(case: Case, *, acknowledge_by: dt.datetime, ladder: list[list]) -> None:
    """Someone was given the case: the acknowledgement deadline starts and the escalation policy's steps are copied
    onto the case, so that editing or deleting a policy later can never end this case's ladder silently.

    `ladder` is a list of [step number, action, minutes to wait after it]. The caller holds the case's row lock."""
    _save_escalation_fields(case, **_escalation_clock_fields(case, acknowledge_by, ladder))


def restart_escalation_clocks(cases: QuerySet[Case], *, acknowledge_by: dt.datetime, ladder: list[list]) -> int:
    """A new run of the ladder from its first step for each of `cases` still assigned and not taken, in one
    UPDATE (ending surge mode restarts hundreds). A case taken meanwhile is left alone: the row lock the UPDATE
    waits for makes PostgreSQL read its status again. Returns how many were restarted."""
    return cases.filter(status=CaseStatus.ASSIGNED, acknowledged_at__isnull=True).update(
        acknowledge_by=acknowledge_by, escalation_due_at=acknowledge_by, escalation_step=0, escalation_loop=0,
        escalation_ladder=ladder, escalation_run=F("escalation_run") + 1, updated_at=timezone.now(),
    )  # fmt: skip


def _escalation_clock_fields(case: Case, acknowledge_by: dt.datetime, ladder: list[list] | None) -> dict[str, Any]:
    """A new run of the ladder from its first step (`case` is the caller's locked copy)."""
    if ladder is None:
        raise ValueError("an acknowledgement clock needs the ladder it runs")
    return {
        "acknowledge_by": acknowledge_by, "escalation_due_at": acknowledge_by, "escalation_step": 0,
        "escalation_loop": 0, "escalation_ladder": ladder, "acknowledged_at": None,
        "escalation_run": case.escalation_run + 1,
    }  # fmt: skip


def advance_escalation(
    case: Case, *, step: int, due_at: dt.datetime | None, loop: int | None = None, escalated: bool = True
) -> None:
    """A step of the ladder ran: record which (the fencing token the next run compares) and when the next is due.
    A case past its deadline is escalated from its first step on."""
    changes: dict[str, Any] = {"escalation_step": step, "escalation_due_at": due_at, "is_escalated": escalated}
    if loop is not None:
        changes["escalation_loop"] = loop
    _save_escalation_fields(case, **changes)


def escalate_at_once(case: Case) -> None:
    """Nobody could be given the case: a new run of the ladder, its first step due now. The caller holds the lock."""
    _save_escalation_fields(
        case, escalation_due_at=timezone.now(), escalation_step=0, escalation_loop=0,
        escalation_run=case.escalation_run + 1,
    )  # fmt: skip


def stop_escalation(case: Case, *, acknowledged_at: dt.datetime | None = None) -> None:
    """Someone took the case (or it left the waiting states): no further step runs."""
    changes: dict[str, Any] = {"escalation_due_at": None}
    if acknowledged_at is not None:
        changes["acknowledged_at"] = acknowledged_at
        if case.first_acknowledged_at is None:
            changes["first_acknowledged_at"] = acknowledged_at
    _save_escalation_fields(case, **changes)


def reopen_target(case: Case) -> str:
    """What a reopened case returns to: its worker's desk if it had one, else the triaged queue."""
    return CaseStatus.ASSIGNED if case.assigned_to_id else CaseStatus.TRIAGED


def record_safe_contact(
    case: Case, *, safe_to_call: bool | None, safe_to_text: bool | None, by: AbstractBaseUser
) -> Case:
    """What the person told a worker (on the phone, say) about whether a call or an SMS is safe; None is "not
    asked". Every outbound message obeys it. The caller holds the case's row lock."""
    before = {"safe_to_call": case.safe_to_call, "safe_to_text": case.safe_to_text}
    case.safe_to_call, case.safe_to_text = safe_to_call, safe_to_text
    case.save(update_fields=["safe_to_call", "safe_to_text", "updated_at"])
    record_event(
        case, EventKind.SAFE_CONTACT_RECORDED, actor=by, before=before, safe_to_call=safe_to_call,
        safe_to_text=safe_to_text,
    )  # fmt: skip
    return case


def limit_contact(
    case: Case, *, safe_to_call: bool | None, safe_to_text: bool | None, safe_contact_note: str
) -> TimelineEvent | None:
    """What a citizen said again about contacting them, where it makes contact safer: a No to calls or SMS, a
    note on when it is safe added. Anything else (a Yes after a No, a note taken away) is ignored: an abuser may
    send the form again too. Call it under the case's row lock; the event says what changed, never the note."""
    changed: dict[str, Any] = {}
    if safe_to_call is False and case.safe_to_call is not False:
        case.safe_to_call = changed["safe_to_call"] = False
    if safe_to_text is False and case.safe_to_text is not False:
        case.safe_to_text = changed["safe_to_text"] = False
    note = safe_contact_note.strip()
    if note and note not in case.safe_contact_note:
        joined = f"{case.safe_contact_note}\n{note}" if case.safe_contact_note else note
        limit = Case._meta.get_field("safe_contact_note").max_length
        case.safe_contact_note = joined if len(joined) <= limit else note[:limit]  # the latest words first
        changed["note_added"] = True
    if not changed:
        return None
    fields = [name for name in ("safe_to_call", "safe_to_text") if name in changed]
    _save_locked_case(case, fields + (["safe_contact_note"] if "note_added" in changed else []))
    return record_event(case, EventKind.CONTACT_LIMITED, actor_kind=ActorKind.CITIZEN, **changed)


def add_note(case: Case, text: str, *, by: AbstractBaseUser) -> TimelineEvent:
    """An internal note: on the timeline for staff, never shown to the citizen."""
    return record_event(case, EventKind.NOTE, actor=by, text=text)


def record_reply(case: Case, text: str, *, by: AbstractBaseUser, channel: str, delivery_status: str = "") -> Message:
    """A reply written to the citizen: a message on the case they may read (status page or SMS)."""
    message = Message.objects.create(
        case=case, direction=Direction.OUTBOUND, channel=channel, body=text, is_visible_to_citizen=True,
        delivery_status=delivery_status,
    )  # fmt: skip
    record_event(case, EventKind.MESSAGE_SENT, actor=by, message_id=message.pk, channel=channel)
    return message


def record_read(
    case: Case, *, reader: AbstractBaseUser, via: str, unless_read_within: dt.timedelta | None = None
) -> None:
    """Who opened a case's personal data, and where (console page, API, conversation poll, voicemail, admin,
    export). With `unless_read_within`, a read the same person made the same way that recently stands for this one:
    a page polling every few seconds is one read in the log, not hundreds."""
    if unless_read_within is not None:
        since = timezone.now() - unless_read_within
        if CaseRead.objects.filter(case=case, reader=reader, via=via[:30], read_at__gte=since).exists():
            return
    CaseRead.objects.create(case=case, reader=reader, via=via[:30])


# --- Anonymisation (retention and erasure; the rules of when live in helpline.privacy) -------------------------

# Timeline details that may hold words a person wrote or said (notes, reasons, triage's quoted words, the outcome):
# blanked on anonymisation. The timeline is otherwise append-only; storage limitation is the one exception the law
# makes to keeping it as written.
# Triage's explained reasons quote the words too: dropped whole, and the console falls back to `reasons` (below).
FREE_TEXT_DETAILS = frozenset({"text", "reason", "outcome", "explanation", "idempotency_key", "explained"})


# The record of how the case's data was kept and removed: written by supervisors and the service, never by citizens.
_PRIVACY_EVENTS = frozenset({EventKind.ANONYMISED, EventKind.LEGAL_HOLD_SET, EventKind.LEGAL_HOLD_RELEASED,
                             EventKind.DATA_EXPORTED})  # fmt: skip


class CaseStillOpen(Exception):
    """An open case is being worked; it is anonymised only once it is resolved or closed."""


def _without_free_text(details: dict) -> dict:
    kept = {key: ("" if key in FREE_TEXT_DETAILS else value) for key, value in details.items()}
    if "references" in kept:  # its own "linked to earlier contacts: SOS-...": the person's cases that still name them
        kept["references"] = []
    if isinstance(kept.get("reasons"), list):  # "Threat (critical): 'ubit cu'": keep the rule, not the words
        kept["reasons"] = [str(reason).split(" (")[0] for reason in kept["reasons"]]
    return kept


@transaction.atomic
def anonymise_case(
    case: Case, *, basis: str, actor: AbstractBaseUser | None = None, reason: str = "", **details: Any
) -> Case:
    """Remove what identifies the person from a resolved or closed case: message text, voicemail references, names,
    numbers, e-mails, the safe-contact note, staff notes and reasons, links to the person's other cases, and the
    caller once no case of theirs is left (a number that opted out of SMS stays, nameless, to honour it). Kept, so
    the figures do not change: dates, channel, status, priority, category, language, who worked it, acknowledgement
    and resolution times, escalation.

    Voicemail must already be deleted at Twilio (helpline.privacy does that first). Safe to run twice."""
    locked = Case.objects.for_change().get(pk=case.pk)
    if locked.is_open:
        raise CaseStillOpen(_("Case %(reference)s is still open.") % {"reference": locked.reference})
    caller_id = locked.caller_id
    locked.caller = None
    locked.contact_name = locked.contact_phone = locked.contact_email = locked.safe_contact_note = ""
    locked.citizen_token_hash = ""
    locked.idempotency_key = None
    locked.save(update_fields=[
        "caller", "contact_name", "contact_phone", "contact_email", "safe_contact_note", "citizen_token_hash",
        "idempotency_key", "updated_at",
    ])  # fmt: skip
    _forget_links_to(locked.reference, on_cases=list(locked.linked_cases.values_list("pk", flat=True)))
    locked.linked_cases.clear()
    locked.messages.update(body="", search_tokens="", recording_url="", recording_sid="", twilio_sid=None)
    events = [event for event in locked.timeline.all() if event.kind not in _PRIVACY_EVENTS]
    for event in events:
        event.details = _without_free_text(event.details or {})
    TimelineEvent.objects.bulk_update(events, ["details"])
    if caller_id is not None and not Case.objects.filter(caller_id=caller_id).exists():
        # A number that texted STOP stays, without a name, as the record that keeps us from texting it again (the
        # person's objection outlives their data); any other caller with no case left is deleted.
        Caller.objects.filter(pk=caller_id, has_opted_out=False).delete()
        Caller.objects.filter(pk=caller_id).update(name="")
    record_event(locked, EventKind.ANONYMISED, actor=actor, basis=basis, reason=reason, **details)
    case.caller = None
    return locked


def _forget_links_to(reference: str, *, on_cases: list[int]) -> None:
    """The person's other cases said "linked to earlier contacts: SOS-..." naming this one: with the caller known
    there, the anonymised case could be opened and tied back to them (its category, its dates, its worker)."""
    naming = [
        event for event in TimelineEvent.objects.filter(kind=EventKind.LINKED, case_id__in=on_cases)
        if reference in (event.details or {}).get("references", [])
    ]  # fmt: skip
    for event in naming:
        event.details = {**event.details, "references": [r for r in event.details["references"] if r != reference]}
    TimelineEvent.objects.bulk_update(naming, ["details"])


# --- Callers ---------------------------------------------------------------------------------------------------


def merge_duplicate_caller(*, keep: Caller, duplicate: Caller) -> list[str]:
    """One number as two callers: a contact that came in while the blind index was being rotated was not recognised
    and made a second. Within the caller's transaction, with both rows locked: the duplicate's cases move to `keep`,
    which keeps an opt-out (and a name) either had, and the duplicate is deleted. Returns [] when merged; when both
    have an open case (a caller has one at most), nothing changes and the two cases' references are returned, for
    a person to resolve one and run the rotation again."""
    both = Case.objects.filter(caller__in=[keep, duplicate], status__in=OPEN_STATUSES)
    for is_drill in (False, True):
        open_cases = list(both.filter(is_drill=is_drill).order_by("pk").values_list("caller_id", "reference"))
        if {caller_id for caller_id, reference in open_cases} == {keep.pk, duplicate.pk}:
            return [reference for caller_id, reference in open_cases]
    Case.objects.filter(caller=duplicate).update(caller=keep)
    keep.has_opted_out = keep.has_opted_out or duplicate.has_opted_out
    keep.name = keep.name or duplicate.name
    duplicate.delete()
    Caller.objects.filter(pk=keep.pk).update(has_opted_out=keep.has_opted_out, name=keep.name)
    return []


def mark_triage_requested(case_ids: list[int]) -> None:
    Case.objects.filter(pk__in=case_ids).update(triage_requested_at=timezone.now())


def mark_triage_not_requested(case_ids: list[int]) -> None:
    """Their doorbell could not be rung (the broker was away): the next sweep rings them without waiting."""
    Case.objects.filter(pk__in=case_ids).update(triage_requested_at=None)


# --- Periodic ----------------------------------------------------------------------------------------------


def record_heartbeat(name: str) -> None:
    record_heartbeats([name])


def record_heartbeats(names: list[str]) -> None:
    """Now, for each name, in one statement (INSERT ... ON CONFLICT DO UPDATE): a worker beats for itself and each
    of its queues every two seconds, and a locked read and an update for each name (in savepoints) made that 34
    statements a beat for the general worker."""
    now = timezone.now()
    Heartbeat.objects.bulk_create(
        [Heartbeat(name=name, beat_at=now) for name in names],
        update_conflicts=True, unique_fields=["name"], update_fields=["beat_at"],
    )  # fmt: skip


def end_drill(started_at: dt.datetime | None = None) -> int:
    """Resolve the drill's cases still open (every drill's, without `started_at`), so they leave the queues and stop
    escalating. Returns how many."""
    open_drill_cases = Case.objects.filter(is_drill=True, status__in=OPEN_STATUSES)
    if started_at is not None:
        open_drill_cases = open_drill_cases.filter(created_at__gte=started_at)
    ended = 0
    for case in open_drill_cases.only("pk"):
        try:
            change_case_status(case, CaseStatus.RESOLVED, reason="drill ended", outcome="drill")
            ended += 1
        except CaseTransitionError:
            continue  # someone moved it meanwhile; it is theirs to finish
    return ended
