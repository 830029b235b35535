"""Reads of the case domain that views, services and tasks share."""
from __future__ import annotations

from django.db.models import QuerySet

from helpline.models import OPEN_STATUSES, Caller, Case, Channel, Direction, Message


def open_case_for_caller(caller: Caller, *, lock: bool = False) -> Case | None:
    """The caller's one open case, if any; with lock=True the row stays locked until the transaction ends."""
    cases = Case.objects.filter(caller=caller, status__in=OPEN_STATUSES)
    if lock:
        cases = cases.select_for_update()
    return cases.first()


def case_by_reference(reference: str) -> Case | None:
    return Case.objects.filter(reference=reference.strip().upper()).first()


def replies_for_citizen(case: Case) -> QuerySet[Message]:
    """What staff wrote to the citizen and meant them to see; never internal notes or staff details."""
    return case.messages.filter(direction=Direction.OUTBOUND, is_visible_to_citizen=True).order_by("created_at")


def case_for_call(call_sid: str) -> Case | None:
    message = Message.objects.select_related("case").filter(twilio_sid=call_sid, channel=Channel.VOICE).first()
    return message.case if message is not None else None
