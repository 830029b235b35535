"""Reads of the case domain that views, services and tasks share."""

from __future__ import annotations

from django.db.models import BooleanField, F, IntegerField, Q, QuerySet, Value, When
from django.db.models import Case as Case_
from django.utils import timezone

from helpline.cases.citizen_code import normalise_reference
from helpline.cases.models import (
    OPEN_STATUSES,
    PRIORITY_RANK,
    Caller,
    Case,
    Channel,
    Direction,
    EventKind,
    Message,
)


def open_case_for_caller(caller: Caller, *, lock: bool = False, is_drill: bool = False) -> Case | None:
    """The caller's one open case, if any; with lock=True the row stays locked until the transaction ends.
    A drill contact never joins a real case, nor a real contact a drill case."""
    cases = Case.objects.filter(caller=caller, status__in=OPEN_STATUSES, is_drill=is_drill)
    if lock:
        cases = cases.for_change()
    return cases.first()


def case_by_reference(reference: str) -> Case | None:
    """The case a citizen or a worker names, however they typed it ("sos 2026 42" is SOS-2026-00042)."""
    normalised = normalise_reference(reference)
    return (
        Case.objects.filter(reference=normalised).first()
        or Case.objects.filter(given_references__reference=normalised).first()  # given during an outage
    )


def replies_for_citizen(case: Case) -> QuerySet[Message]:
    """What staff wrote to the citizen and meant them to see; never internal notes or staff details."""
    return case.messages.filter(direction=Direction.OUTBOUND, is_visible_to_citizen=True).order_by("created_at")


def conversation_for_citizen(case: Case) -> QuerySet[Message]:
    """What the citizen wrote and what staff wrote back to them, in order; never internal notes."""
    visible = Q(direction=Direction.INBOUND) | Q(direction=Direction.OUTBOUND, is_visible_to_citizen=True)
    return case.messages.filter(visible).order_by("created_at", "id")


def call_message(call_sid: str, *, lock: bool = False) -> Message | None:
    """The message a call was stored as; with lock=True its row stays locked until the transaction ends."""
    messages = Message.objects.select_related("case").filter(twilio_sid=call_sid, channel=Channel.VOICE)
    if lock:
        messages = messages.select_for_update(of=("self",))
    return messages.first()


def case_for_call(call_sid: str) -> Case | None:
    message = call_message(call_sid)
    return message.case if message is not None else None


def latest_call_on(case: Case) -> Message | None:
    calls = case.messages.filter(channel=Channel.VOICE, direction=Direction.INBOUND)
    return calls.order_by("-created_at", "-id").first()


def call_was_answered(call: Message) -> bool:
    """A staff member pressed 1 on this call and was put through. Asked of the call, never of its case: a case
    answered live once may be called again, and that call must still ring the next person and end in a voicemail."""
    return call.case.timeline.filter(kind=EventKind.CALL_ANSWERED, details__message_id=call.pk).exists()


def with_urgency(cases: QuerySet[Case]) -> QuerySet[Case]:
    """Adds `urgency` (critical 4 ... untriaged 0) and `is_overdue` (acknowledgement deadline passed)."""
    now = timezone.now()
    return cases.annotate(
        urgency=Case_(
            *(When(priority=priority, then=Value(rank)) for priority, rank in PRIORITY_RANK.items() if rank),
            default=Value(0),
            output_field=IntegerField(),
        ),
        # A CASE, not a bare comparison: with no deadline SQL would answer NULL, not false.
        is_overdue=Case_(
            When(Q(acknowledge_by__lt=now, acknowledged_at__isnull=True, status__in=OPEN_STATUSES), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
    )


def by_urgency(cases: QuerySet[Case]) -> QuerySet[Case]:
    """The one urgency order: real cases before a drill's (a rehearsal on the running service never goes before
    a real person), then critical first (by rank, never by the priority's text), then, within a priority, cases
    not flagged before those sent over the per-address limit, and those before the ones that filled the hidden
    trap field, then the nearest acknowledgement deadline, then the oldest."""
    return with_urgency(cases).order_by(
        "is_drill", "-urgency", "suspected_automated", "over_address_limit", F("acknowledge_by").asc(nulls_last=True),
        "created_at", "pk",
    )  # fmt: skip


def phone_indexes_of(case: Case) -> list[str]:
    """The blind indexes of the case's numbers (the caller's and the one given on the web), to find the same
    person's other cases."""
    return [n for n in (case.caller.phone_index if case.caller_id else "", case.contact_phone_index) if n]


def from_the_same_number(case: Case) -> Q | None:
    """Cases from either of the case's numbers (as the caller, or given on the web), or None when it has none.

    The callers are looked up first (a number is one caller at most), so the condition is on the case's own
    indexed columns: the same condition through a join to the callers was read by a scan of every case, 11 ms at
    6,000 cases and growing, on every triage."""
    numbers = phone_indexes_of(case)
    if not numbers:
        return None
    caller_ids = {case.caller_id} if case.caller_id else set()
    others = [n for n in numbers if not (case.caller_id and n == case.caller.phone_index)]
    if others:
        caller_ids |= set(Caller.objects.filter(phone_index__in=others).values_list("pk", flat=True))
    return Q(caller_id__in=caller_ids) | Q(contact_phone_index__in=numbers)


SAID_SMS_NOT_SAFE = "the citizen said SMS is not safe"
OPTED_OUT_OF_SMS = "the citizen opted out of SMS"
NOT_ASKED_ABOUT_SMS = "the citizen was not asked whether SMS is safe"


def why_the_case_may_not_be_texted(case: Case) -> str:
    """The one rule every SMS to a citizen about their case obeys (a worker's reply, a crisis event's automatic
    answer and broadcast, and the outbox again right before sending): why this case's citizen may not be texted,
    or "" when they may. Someone who texted us may be texted back; someone who called or wrote on the web only
    when they said SMS is safe: whoever they fear may read the phone, and a caller is never asked by the service
    (a worker records what they said). What the number's other cases say is `why_the_number_may_not_be_texted`."""
    if case.safe_to_text is False:
        return SAID_SMS_NOT_SAFE
    if case.caller_id and case.caller.has_opted_out:
        return OPTED_OUT_OF_SMS
    if case.channel != Channel.SMS and case.safe_to_text is not True:
        return NOT_ASKED_ABOUT_SMS
    return ""


def case_may_be_texted(prefix: str = "") -> Q:
    """`why_the_case_may_not_be_texted` as a filter, on cases or through a relation (`prefix="case__"`)."""
    return (
        ~Q(**{f"{prefix}safe_to_text": False})
        & ~Q(**{f"{prefix}caller__has_opted_out": True})
        & (Q(**{f"{prefix}channel": Channel.SMS}) | Q(**{f"{prefix}safe_to_text": True}))
    )


def why_the_number_may_not_be_texted(number_index: str) -> str:
    """Why no SMS may go to this number (its blind index), or "" when one may. The citizen's word is kept on one
    case or on the caller, but it is about the phone: a STOP from the number, or "texts are not safe" (someone else
    reads that phone) on the latest case that came from it or gave it and answered the question, holds for every
    case of theirs. A later form that says texts are safe again lifts it: the citizen's latest word counts."""
    if not number_index:
        return ""
    callers = Caller.objects.filter(phone_index=number_index)
    if callers.filter(has_opted_out=True).exists():
        return "the citizen opted out of SMS"
    # Two reads, each by its own index, and the latest answer picked here: one read with OR and ORDER BY ... LIMIT 1
    # walked the created_at index back through every case when none matched (80 ms at 300,000 cases, asked for
    # every citizen SMS sent and every contact a crisis event groups).
    answered = Case.objects.filter(safe_to_text__isnull=False)
    fields = ("created_at", "pk", "safe_to_text")
    answers = [
        *answered.filter(caller__phone_index=number_index).values_list(*fields),
        *answered.filter(contact_phone_index=number_index).values_list(*fields),
    ]
    if answers and max(answers)[2] is False:
        return "the citizen said SMS is not safe"
    return ""


def earlier_cases_of(case: Case) -> QuerySet[Case]:
    """The same person's other cases: by caller, by the number they gave, and cases linked by triage."""
    same_person = Q(pk__in=case.linked_cases.values("pk"))
    same_number = from_the_same_number(case)
    if same_number is not None:
        same_person |= same_number
    return Case.objects.filter(same_person).exclude(pk=case.pk).order_by("-created_at")
