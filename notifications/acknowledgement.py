"""Taking a case: acknowledgement stops the ladder and cancels what was still queued to staff about it.

Acknowledging by SMS trusts nothing a stranger could forge. Caller ID can be spoofed and Twilio's signature only
proves that Twilio relayed the message, so an SMS acknowledges a case only when it comes from a person who was
notified about that case and carries the one-time code that notification carried ("OK 4821"). A plain "OK" takes
the most urgent waiting case notified to that person. Anything else changes nothing and is answered and recorded.
"""

from __future__ import annotations

import logging
import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case as SqlCase
from django.db.models import Q, When
from django.utils import timezone

from helpline.cases import intake
from helpline.cases import services as case_services
from helpline.cases.language import command_words
from helpline.cases.models import Case, CaseStatus, EventKind, Message, mask_phone
from helpline.cases.selectors import by_urgency, call_was_answered
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import is_supervisor
from helpline.roster.services import mark_assigned
from notifications import surge, texts
from notifications.models import DeliveryStatus, Notification
from notifications.outbox import STOPS_WHEN_ACKNOWLEDGED, WAITING_FOR_ACKNOWLEDGEMENT

logger = logging.getLogger(__name__)

LIVE_CALL = intake.LIVE_CALL
ACCEPT_WORDS = frozenset({"OK", "1", "DA", "YES", "ОК", "ДА"})
_CODE = re.compile(r"^\d{4,6}$")


class NotAllowed(Exception):
    """The person may not acknowledge this case (it is someone else's)."""


class NotOpen(NotAllowed):
    """Nobody acknowledges a resolved or closed case: it is reopened, with a reason, before anyone takes it."""


@transaction.atomic
def acknowledge_case(case: Case, *, by: AbstractBaseUser, via: str) -> Case:
    """The assignee (or a supervisor, or anyone while the case is unassigned) has taken the open case: the ladder
    stops at once and queued reminders are cancelled. Acknowledging twice is harmless. Raises NotOpen for a
    resolved or closed case: assigning it to whoever pressed would reopen it silently."""
    locked = Case.objects.for_change().get(pk=case.pk)
    if not by.is_active or (locked.assigned_to_id not in (None, by.pk) and not is_supervisor(by)):
        raise NotAllowed
    if not locked.is_open:
        raise NotOpen
    if locked.status in (CaseStatus.ACKNOWLEDGED, CaseStatus.IN_PROGRESS):
        return locked
    if locked.assigned_to_id != by.pk:
        locked = case_services.assign_case(locked, by, by=by, explanation=f"took the case ({via})", row_locked=True)
        mark_assigned(by.pk, timezone.now())
    locked = case_services.change_case_status(locked, CaseStatus.ACKNOWLEDGED, actor=by, reason=via)
    case_services.stop_escalation(locked, acknowledged_at=timezone.now())
    case_services.record_event(locked, EventKind.ACKNOWLEDGED, actor=by, via=via)
    Notification.objects.filter(case=locked, kind__in=STOPS_WHEN_ACKNOWLEDGED, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.CANCELLED, last_error="case acknowledged"
    )
    case.status = locked.status
    return locked


# --- By SMS from a staff phone ----------------------------------------------------------------------------------


def _cases_a_plain_ok_may_take(staff: StaffProfile):
    """Cases still waiting that were notified to this person (as assignee or escalation recipient), or are theirs
    (in surge mode a normal case is given without a message of its own: the digest counts them, and says to reply
    OK), and that they may still take: their own or unassigned ones, never one the ladder has since given to a
    colleague (a plain OK would then be refused on it again and again while their own case waits). A supervisor
    takes a colleague's case with the message's code: a plain OK is all a forged sender number needs, and it
    would take the centre's most urgent escalated case and stop its ladder without the supervisor knowing."""
    return _notified_or_theirs(staff).filter(Q(assigned_to=staff.user) | Q(assigned_to__isnull=True))


def _notified_or_theirs(staff: StaffProfile):
    notified = Notification.objects.filter(recipient=staff.user, case__isnull=False).values("case_id")
    return Case.objects.filter(Q(pk__in=notified) | Q(assigned_to=staff.user), status__in=WAITING_FOR_ACKNOWLEDGEMENT)


def _refuse(staff: StaffProfile, case: Case | None, why: str) -> None:
    logger.warning("SMS acknowledgement refused from %s: %s", mask_phone(str(staff.phone)), why)
    if case is not None:
        case_services.record_event(case, EventKind.FLAGGED, reason=f"SMS acknowledgement refused: {why}",
                                   staff_id=staff.user_id)  # fmt: skip


def handle_staff_sms(staff: StaffProfile, body: str) -> str:
    """An SMS from a registered staff phone is a command, never a citizen case: "OK", or "OK 4821" with the code
    of a notification this person received. Returns the reply to send back."""
    answer = surge.answer_call_out(staff, body)  # "1" to a call-out means "I am coming", not "I take a case"
    if answer is not None:
        return answer
    words = [word.upper() for word in command_words(body)]
    plain_ok = len(words) == 1 and words[0] in ACCEPT_WORDS
    over = surge.reply_to_an_ended_call_out(staff, body)
    if over is not None and not (plain_ok and _cases_a_plain_ok_may_take(staff).exists()):
        return over  # "1 u 22" or "2" to a call-out of a surge just ended: not a case command gone wrong
    if not words or words[0] not in ACCEPT_WORDS:
        return texts.command_help()
    if plain_ok:
        case = by_urgency(_cases_a_plain_ok_may_take(staff)).first()
        if case is None and is_supervisor(staff.user) and _notified_or_theirs(staff).exists():
            return texts.use_the_code()  # a colleague's case, escalated to them: taken with its code
        if case is None:
            return texts.nothing_to_acknowledge()
        return _acknowledge_by_sms(case, staff)
    code = words[1]
    if not _CODE.match(code):
        named = Case.objects.filter(reference=code).first()
        _refuse(staff, named, "a reference instead of the notification's code")
        return texts.use_the_code()
    with transaction.atomic():
        # Four digits repeat among the many alerts a supervisor gets in a night: the code of a case still waiting,
        # and not yet used, is the one meant; before, the newest message with the code won, and "OK 4821" was
        # refused as used (its case long closed), or took the wrong case, while the one meant went on escalating.
        still_waiting = Q(case__status__in=WAITING_FOR_ACKNOWLEDGEMENT, ack_code_used_at__isnull=True)
        notification = (
            Notification.objects.for_change(of=("self",)).select_related("case")
            .filter(recipient=staff.user, ack_code=code, case__isnull=False)
            .order_by(SqlCase(When(still_waiting, then=0), default=1), "-created_at").first()
        )  # fmt: skip
        if notification is None:
            _refuse(staff, None, "a code this person was never sent")
            return texts.code_not_recognised()
        case = notification.case
        if case.status not in WAITING_FOR_ACKNOWLEDGEMENT or notification.ack_code_used_at is not None:
            _refuse(staff, case, "a code already used, or for a case already taken")
            return texts.code_already_used(case)
        Notification.objects.filter(case=case, ack_code=code).update(ack_code_used_at=timezone.now())
        return _acknowledge_by_sms(case, staff)


def _acknowledge_by_sms(case: Case, staff: StaffProfile) -> str:
    try:
        acknowledge_case(case, by=staff.user, via="SMS")
    except NotAllowed:
        return texts.not_yours(case)
    return texts.acknowledged(case)


# --- By key press on a call the service placed ------------------------------------------------------------------


def acknowledged_by_key_press(notification_id: int) -> Case | None:
    """The person the service called pressed 1: only that person, only for that notification's case. Returns the
    case as it now stands, whose assignee says whether it is theirs (someone may have taken it, or the ladder given
    it to a colleague, while their phone rang), or None when the call was about no case."""
    notification = Notification.objects.select_related("case", "recipient").filter(pk=notification_id).first()
    if notification is None or notification.case is None or notification.recipient is None:
        return None
    try:
        return acknowledge_case(notification.case, by=notification.recipient, via="key press")
    except NotAllowed:
        return Case.objects.select_related("assigned_to").get(pk=notification.case_id)


def accept_call(case: Case, staff: StaffProfile, *, call: Message) -> Case:
    """A staff member pressed 1 on a live call: the case is theirs and acknowledged (supervisors may take any), and
    this call is answered (`call_was_answered`), so the hunt stops and the call is not a missed one."""
    with transaction.atomic():
        locked = Case.objects.for_change().get(pk=case.pk)
        if locked.assigned_to_id != staff.user_id:
            locked = case_services.assign_case(
                locked, staff.user, explanation="answered the live call", row_locked=True
            )
            mark_assigned(staff.user_id, timezone.now())
        try:
            locked = acknowledge_case(locked, by=staff.user, via=LIVE_CALL)
        except NotOpen:
            # Resolved while the phone rang (by its own worker, who holds it): the person is on the line now, and
            # the call is answered all the same; whoever talks with them reopens the case if it needs it.
            logger.warning("%s was answered live after it was resolved", locked.reference)
        if not call_was_answered(call):  # Twilio may post the key press twice
            case_services.record_event(locked, EventKind.CALL_ANSWERED, actor=staff.user, message_id=call.pk)
        return locked
