"""Case work, as Zulip shapes its actions: `check_may` answers whether this person may do this to this case (one
rule for workers, supervisors, former assignees and unassigned cases), and each `do_*` checks, then changes the case
under its row lock through the layer that owns the change, which writes the timeline. The staff API and the
console are thin adapters over these functions, so their answers cannot drift apart again.
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
import time
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from helpline.cases import services as case_services
from helpline.cases.dispatch import (
    CRITICAL_QUEUE,
    MODEL_QUEUE,
    TRIAGE_QUEUE,
    enqueue_after_commit,
    publish,
    waiting_in_queues,
)
from helpline.cases.models import (
    OPEN_STATUSES,
    PRIORITY_RANK,
    ActorKind,
    Case,
    CaseStatus,
    Direction,
    Message,
    Priority,
)
from helpline.cases.selectors import by_urgency
from helpline.casework.selectors import cases_visible_to
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import is_staff_member, is_supervisor, on_duty
from notifications import acknowledgement, crisis, ladder, outbox, surge
from triage import selectors as triage_selectors
from triage import services as triage

logger = logging.getLogger(__name__)

TRIAGE_TASK = "helpline.casework.tasks.triage_case"
SECOND_LOOK_TASK = "helpline.casework.tasks.second_look"
UNTRIAGED_GRACE = dt.timedelta(seconds=30)
# After the first re-send, a case is re-sent only this often: in a surge the queue is long, not lost, and
# re-sending every sweep would flood it with copies exactly when the workers are busiest.
RESEND_BACKOFF = dt.timedelta(minutes=5)
# While doorbells wait in its queue, a case's own is most likely among them: it is rung again only after this long.
# The broker does lose doorbells (a restart without persistence), but then the queue comes back empty, and the
# first rule holds. This bounds the rest: a worker killed holding one, a queue that never empties for half an hour.
LOST_IN_A_BUSY_QUEUE = dt.timedelta(minutes=30)
# The sweep runs on a worker, not on the request path: it may wait for a busy broker longer than intake may.
QUEUE_READ_DEADLINE_SECONDS = 2.0


class Act(enum.StrEnum):
    VIEW = "view"
    ACKNOWLEDGE = "acknowledge"
    START = "start"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    REPLY = "reply"
    NOTE = "note"
    SAFE_CONTACT = "safe_contact"
    RECLASSIFY = "reclassify"
    ASSIGN = "assign"


class CaseNotVisible(Exception):
    """Not this person's to see: surfaces answer 404, with no hint that the case exists."""


class NotPermitted(Exception):
    """This person may see the case but not do this to it: surfaces answer 403 with the message."""


class CaseNotOpen(Exception):
    """A closed or resolved case must be reopened before it is given to someone (409)."""


class ChangedSinceSeen(Exception):
    """The person wrote, or the priority changed, after the page (or app) the worker acted from was loaded: 409 with
    what to look at, and the page shown again as it is now."""


class CannotReach(Exception):
    """A reply nobody could read (a withheld number, SMS not allowed, no status page): 409 with what to do instead."""


# The two kinds of "no", in the words a worker reads.
def _only_assignee_or_supervisor() -> str:
    return _("Only the assigned worker or a supervisor may do this.")


def check_may(user: AbstractBaseUser, case: Case, act: Act) -> None:
    """The one permission rule. Supervisors may do everything. Other staff see the cases assigned to them now or
    before and every open unassigned case; they take (acknowledge) a case that is theirs or nobody's, and they work
    on (start, resolve, reopen, reply, note, reclassify) only the case assigned to them now. Assigning is for
    supervisors. Only an open case is taken, by anyone: taking a resolved one would reopen it without a reason on
    its timeline, onto a desk that shows its contact details in clear. Raises CaseNotVisible, NotPermitted or
    CaseNotOpen."""
    if not is_staff_member(user) or not cases_visible_to(user).filter(pk=case.pk).exists():
        raise CaseNotVisible
    if act == Act.ACKNOWLEDGE and not case.is_open:
        raise CaseNotOpen(_("A closed or resolved case must be reopened first."))
    if is_supervisor(user) or act == Act.VIEW:
        return
    if act == Act.ASSIGN:
        raise NotPermitted(_("Only a supervisor may do this."))
    if act == Act.ACKNOWLEDGE:
        if case.assigned_to_id not in (None, user.pk):
            raise NotPermitted(_("This case is assigned to someone else."))
        return
    if case.assigned_to_id != user.pk:
        raise NotPermitted(_only_assignee_or_supervisor())


def may(user: AbstractBaseUser, case: Case, act: Act) -> bool:
    """For showing or hiding a button; the action itself checks again."""
    try:
        check_may(user, case, act)
    except (CaseNotVisible, NotPermitted, CaseNotOpen):
        return False
    return True


# --- Staff actions ------------------------------------------------------------------------------------------------


def do_acknowledge(case: Case, *, by: AbstractBaseUser, via: str) -> Case:
    check_may(by, case, Act.ACKNOWLEDGE)
    try:
        return acknowledgement.acknowledge_case(case, by=by, via=via)
    except acknowledgement.NotOpen:  # resolved by someone else meanwhile
        raise CaseNotOpen(_("A closed or resolved case must be reopened first.")) from None
    except acknowledgement.NotAllowed:  # taken by someone else meanwhile
        raise NotPermitted(_("This case is assigned to someone else.")) from None


def _locked_and_checked(case: Case, by: AbstractBaseUser, act: Act) -> Case:
    """The case as it is now, locked for the caller's transaction, and the rule asked again of it. The surfaces
    read the case before the request's turn came: a reassign or a resolution that landed meanwhile must decide,
    not the copy (a worker resolved a case just given to a colleague, cancelling the colleague's alert)."""
    locked = Case.objects.for_change().get(pk=case.pk)
    check_may(by, locked, act)
    return locked


def do_start(case: Case, *, by: AbstractBaseUser, reason: str = "") -> Case:
    """Work starts on a case someone has taken. Its worker starting a case given to them takes it first (the
    ladder stops, the acknowledgement counts); anyone else is refused: starting would stop nothing and leave the
    case waiting, unacknowledged, on its worker's desk."""
    check_may(by, case, Act.START)
    with transaction.atomic():
        locked = _locked_and_checked(case, by, Act.START)
        if locked.status == CaseStatus.ASSIGNED:
            if locked.assigned_to_id != by.pk:
                raise case_services.CaseTransitionError(
                    _("Its worker has not acknowledged this case yet. Acknowledge and take it, or give it to "
                      "someone else, before starting work on it.")
                )  # fmt: skip
            locked = acknowledgement.acknowledge_case(locked, by=by, via="started work")
        started = case_services.change_case_status(
            locked, CaseStatus.IN_PROGRESS, actor=by, reason=reason or "started work", row_locked=True
        )
    case.status = started.status
    return started


@dataclass(frozen=True)
class Seen:
    """What the worker's page or app showed of the case when they chose to act. None: not said (a console page
    loaded before the fields existed), so not checked; the API requires the message id. 0: no message was shown."""

    last_message_id: int | None = None
    priority: str | None = None


def _check_nothing_new_since(case: Case, seen: Seen) -> None:
    """Asked of the locked row: intake stores a follow-up under the same lock, so a message the check cannot see yet
    is not there to be missed. Only the person's messages count; a reply or a note by staff is no news to read."""
    if seen.last_message_id is not None:
        if seen.last_message_id and not case.messages.filter(pk=seen.last_message_id).exists():
            raise ChangedSinceSeen(_("The page showed a message that is not on this case: open the case again."))
        if case.messages.filter(direction=Direction.INBOUND, pk__gt=seen.last_message_id).exists():
            raise ChangedSinceSeen(
                _("A new message arrived since you opened the case: read it before closing the case.")
            )
    if seen.priority is not None and seen.priority != case.priority:
        raise ChangedSinceSeen(_("The case's priority changed since you opened it: see why before closing the case."))


def do_resolve(case: Case, *, by: AbstractBaseUser, outcome: str, seen: Seen | None = None) -> Case:
    """`seen`: what the worker's page showed. A message from the person or a new priority since then refuses the
    resolution (ChangedSinceSeen): "he is back with a knife" must not be closed unread from a page loaded before it."""
    check_may(by, case, Act.RESOLVE)
    with transaction.atomic():
        locked = _locked_and_checked(case, by, Act.RESOLVE)
        if seen is not None:
            _check_nothing_new_since(locked, seen)
        resolved = case_services.change_case_status(locked, CaseStatus.RESOLVED, actor=by, reason=outcome,
                                                    row_locked=True)  # fmt: skip
    case.status, case.resolved_at = resolved.status, resolved.resolved_at
    return resolved


def do_reopen(case: Case, *, by: AbstractBaseUser, reason: str = "") -> Case:
    """Back to its worker's desk (theirs again at once when they reopen it themselves; otherwise they are told and
    their clock starts, or it goes to someone on duty when they cannot act on it), or to the queue."""
    check_may(by, case, Act.REOPEN)
    with transaction.atomic():
        locked = _locked_and_checked(case, by, Act.REOPEN)
        target = case_services.reopen_target(locked)
        reopened = case_services.change_case_status(locked, target, actor=by, reason=reason or "reopened",
                                                    row_locked=True)  # fmt: skip
        if reopened.assigned_to_id is None:
            return reopened
        if reopened.assigned_to_id == by.pk:
            return acknowledgement.acknowledge_case(reopened, by=by, via="reopened")
        return _to_someone_who_can_act(reopened, why="reopened")


def _holder_can_act(case: Case) -> tuple[StaffProfile | None, bool]:
    """The case's worker, and whether they can act on it now: active, and on duty."""
    holder = StaffProfile.objects.filter(user_id=case.assigned_to_id).first()
    if holder is None:
        return None, False
    return holder, on_duty(timezone.now()).filter(pk=holder.pk).exists()


def _gone(holder: StaffProfile | None) -> bool:
    """No longer with the centre (deactivated, or their login is): unlike someone off duty, they will not be back."""
    return holder is None or not holder.is_active or not holder.user.is_active


def _to_someone_who_can_act(case: Case, *, why: str) -> Case:
    """A case back on its worker's desk with no clock (reopened): their clock starts and they are told when they
    can act on it now; otherwise (off duty, on leave, deactivated) it goes to someone on duty by the assignment
    policy, or, with nobody on duty, up the ladder at once."""
    holder, can_act = _holder_can_act(case)
    if holder is None or not can_act:
        gone = _gone(holder)
        return ladder.hand_on(
            case, away=case.assigned_to_id, reason=f"{why}; its worker is off duty or no longer active",
            back_to_them_if_nobody=not gone,
        )  # fmt: skip
    return ladder.hand_over(case, holder, explanation=why)


def do_reply(case: Case, *, by: AbstractBaseUser, text: str) -> Message:
    """Sent through the case's channel by the outbox, which also obeys the caller's opt-out and safe-contact wish."""
    check_may(by, case, Act.REPLY)
    with transaction.atomic():
        locked = _locked_and_checked(case, by, Act.REPLY)
        try:
            return outbox.reply_to_citizen(locked, text, by=by)
        except outbox.ReplyCannotReach as error:
            raise CannotReach(str(error)) from None


def do_add_note(case: Case, *, by: AbstractBaseUser, text: str) -> None:
    check_may(by, case, Act.NOTE)
    with transaction.atomic():
        case_services.add_note(_locked_and_checked(case, by, Act.NOTE), text, by=by)


def do_record_safe_contact(
    case: Case, *, by: AbstractBaseUser, safe_to_call: bool | None, safe_to_text: bool | None
) -> Case:
    """What the person said about a safe call or SMS, recorded by their worker (a voice caller is never asked by
    the service: until this is recorded, replies on a voice case are not texted)."""
    check_may(by, case, Act.SAFE_CONTACT)
    with transaction.atomic():
        locked = _locked_and_checked(case, by, Act.SAFE_CONTACT)
        return case_services.record_safe_contact(locked, safe_to_call=safe_to_call, safe_to_text=safe_to_text, by=by)


def do_reclassify(case: Case, *, by: AbstractBaseUser, priority: str, category: str, reason: str) -> Case:
    """A person overrides triage; the change is kept as a labelled example for the model's next training."""
    check_may(by, case, Act.RECLASSIFY)
    with transaction.atomic():
        locked = _locked_and_checked(case, by, Act.RECLASSIFY)
        before_priority, before_category = locked.priority, locked.category
        changed = case_services.reclassify_case(locked, priority=priority, category=category, reason=reason, by=by)
        triage.record_correction(
            changed, before_priority=before_priority, before_category=before_category, by=by, reason=reason
        )
        waits_for_its_worker = changed.status == CaseStatus.ASSIGNED and changed.acknowledged_at is None
        if PRIORITY_RANK.get(priority, 0) > PRIORITY_RANK.get(before_priority, 0) and waits_for_its_worker:
            # The clock and ladder were the old priority's: raised to critical by hand, the case waited 15 minutes
            # for its next step, with no call, and in surge mode with no message at all.
            changed = _to_someone_who_can_act(
                changed, why=f"priority raised by hand from {before_priority or 'none'} to {priority}"
            )
    case.priority, case.category = changed.priority, changed.category
    return changed


def do_assign(case: Case, *, by: AbstractBaseUser, staff: StaffProfile | None = None) -> Case:
    """A supervisor gives the case to a person, or (no person named) to whoever the assignment policy picks besides
    its current worker. Their acknowledgement clock starts and they are told. Whether the case is open is asked of
    the locked row: a reassign that landed just after the case was resolved reopened it."""
    check_may(by, case, Act.ASSIGN)
    with transaction.atomic():
        locked = _locked_and_checked(case, by, Act.ASSIGN)
        if not locked.is_open:
            raise CaseNotOpen(_("A closed or resolved case must be reopened first."))
        if staff is None:
            return ladder.assign_by_policy(locked, exclude=locked.assigned_to_id, reason="assigned by a supervisor")
        return ladder.hand_over(locked, staff, by=by, explanation="assigned by a supervisor", row_locked=True)


def do_take_next(user: AbstractBaseUser) -> Case | None:
    """Give the worker the most urgent case nobody has, and count it as acknowledged: they chose to take it.

    Two workers pressing at once get two different cases: the candidate row is locked with SKIP LOCKED, so the
    second press passes over the case the first one is taking instead of waiting for it and failing.
    """
    with transaction.atomic():
        waiting = Case.objects.filter(assigned_to__isnull=True, status__in=OPEN_STATUSES)
        case = by_urgency(waiting).for_change(skip_locked=True).first()
        if case is None:
            return None
        return do_acknowledge(case, by=user, via="console: take next")


# --- Surge mode (supervisors) ------------------------------------------------------------------------------------


def _require_supervisor(user: AbstractBaseUser) -> None:
    if not is_staff_member(user) or not is_supervisor(user):
        raise NotPermitted(_("Only a supervisor may do this."))


def do_start_surge(*, by: AbstractBaseUser, name: str, citizen_notice: str = "", citizen_notice_english: str = ""):
    _require_supervisor(by)
    return surge.start_surge(
        by=by, name=name, citizen_notice=citizen_notice, citizen_notice_english=citizen_notice_english
    )


@transaction.atomic
def do_end_surge(*, by: AbstractBaseUser):
    """Surge mode off; the cases that waited quietly start their ladders again from the first step."""
    _require_supervisor(by)
    ended = surge.end_surge(by=by)
    if ended is not None:
        ladder.restart_ladders_after_surge()
    return ended


def do_declare_crisis_event(*, by: AbstractBaseUser, **fields) -> crisis.CrisisEvent:
    """Raises ValueError with a message for the supervisor when the event cannot group or answer anything."""
    _require_supervisor(by)
    return crisis.declare_event(by=by, **fields)


def do_end_crisis_event(event, *, by: AbstractBaseUser):
    _require_supervisor(by)
    return crisis.end_event(event, by=by)


def do_broadcast_to_crisis_event(
    event, *, by: AbstractBaseUser, token: str, text: str, text_cyrillic: str = "", text_english: str = ""
):
    """One reply to every citizen grouped into the event, sent by a worker; the form's token makes a re-click a
    no-op."""
    _require_supervisor(by)
    return crisis.start_broadcast(
        event, by=by, token=token, text=text, text_cyrillic=text_cyrillic, text_english=text_english
    )


def do_call_out(*, by: AbstractBaseUser) -> int:
    """Ask off-duty and reserve staff to come in (surge mode must be on)."""
    _require_supervisor(by)
    return surge.call_out(by=by)


# --- What the service does by itself ------------------------------------------------------------------------------


# How many other new cases one triage doorbell takes along (`triage.triage_waiting_cases`). In a surge the triage
# queue holds thousands of doorbells; a batch reads the rules, the crisis events and the assignment turn once for
# all its cases, and their own doorbells then cost one query each. Twenty keep a batch's transaction to tens of
# milliseconds, so the case rows it holds are soon free again.
TAKEN_ALONG = 20
# The critical worker's doorbell takes along fewer: the other new cases that sound critical (`Case.sounds_critical`),
# read by the model in one batch and given out in one assignment turn. Its own case waits for their reading (about
# 15 ms each), so in quiet times, when none waits, nothing changes; in a surge it does the work of several doorbells.
CRITICAL_TAKEN_ALONG = 8


def do_triage_case(case_id: int) -> Case | None:
    """Classify the case by the rules (triage) and group it into the crisis events it names, under the case's row
    lock; if someone has it and the citizen wrote again, tell them. A case that is not critical takes along other
    new cases waiting for triage (`TAKEN_ALONG`); one a critical rule matched, the other new cases that sound
    critical (`CRITICAL_TAKEN_ALONG`). Then, once that has committed, give waiting cases to people on
    duty in a batch (these among them, most urgent first), unless a batch already in line will, or this process saw
    everyone at their maximum moments ago and none of them is critical (the tick's turn gives them out when someone
    has room); and ring the model worker for its second look (`do_second_look`): nobody waits for the model.

    A doorbell for a case already triaged as it stands (a batch took it along, or a copy of the doorbell came
    first) costs one query and does nothing more."""
    if triage_selectors.triaged_as_written(case_id):
        return None
    try:
        triaged = _triage_with_those_waiting(case_id, take_along=True)
    except triage.TakenAlongCaseFailed:
        triaged = _triage_with_those_waiting(case_id, take_along=False)  # rolled back: its own case, alone
    if not triaged:
        return None
    case = triaged[0]
    waiting = [each for each in triaged if each.assigned_to_id is None and each.status == CaseStatus.TRIAGED]
    if waiting and not all(ladder.turn_would_give_nothing_to(each) for each in waiting):
        given = ladder.assign_waiting()
        if case.pk in given:
            return given[case.pk]
        if case in waiting:
            case.refresh_from_db(fields=["status", "assigned_to", "acknowledge_by", "escalation_due_at"])
    return case


def _waits_for_its_worker(case: Case) -> bool:
    return case.status == CaseStatus.ASSIGNED and case.acknowledged_at is None


def _raised_by_triage(run: triage.TriageRun) -> bool:
    # A case given out before its first triage (a supervisor's choice) runs the normal ladder (`ladder_for`).
    return PRIORITY_RANK.get(run.case.priority, 0) > PRIORITY_RANK[run.priority_before or Priority.NORMAL]


def _follow_up_reaches_someone(case: Case, *, reads_critical: bool) -> Case:
    """The citizen wrote again on a case someone has. Reopened by writing (back on the desk with no clock): its
    worker's clock starts again, or it goes to someone who can act. Otherwise its worker is told of an urgent
    follow-up when they can act on it now; when they cannot (off duty, on leave, deactivated), an urgent follow-up,
    or any on a case whose worker is gone, goes to someone on duty: "he is back with a knife" must not wait for
    tomorrow's shift, nor go to a phone that is switched off for the night."""
    if _waits_for_its_worker(case) and case.escalation_due_at is None:
        return _to_someone_who_can_act(case, why="the citizen wrote again")
    holder, can_act = _holder_can_act(case)
    # Urgent by what the new message says (or a critical case), not by a priority that never goes down, nor by an
    # earlier message's rule: a "thank you, see you on Tuesday" on a high case must not take it from its worker
    # every evening.
    urgent = reads_critical or case.priority == Priority.CRITICAL
    gone = _gone(holder)
    if can_act or not (urgent or gone):
        outbox.tell_assignee_of_follow_up(case)
        return case
    return ladder.hand_on(
        case, away=case.assigned_to_id, reason="the citizen wrote again; its worker is off duty or no longer active",
        back_to_them_if_nobody=not gone,
    )  # fmt: skip


def _written_before_it_was_resolved(case: Case, run: triage.TriageRun) -> bool:
    """The citizen wrote while the case was open, and it was resolved before triage read that (in a surge the
    triage queue is minutes behind the worker pressing Resolve): nobody has read it."""
    written_at = run.first_read_anew_at
    return written_at is not None and (case.resolved_at is None or written_at <= case.resolved_at)


def _reopen_for_what_was_not_read(case: Case) -> Case:
    """Back to its worker's desk (or the queue), to be chased as any follow-up is; as it stands when it cannot be
    reopened (erased, or the person has another open case), and its worker is told."""
    try:
        return case_services.change_case_status(
            case, case_services.reopen_target(case), actor_kind=ActorKind.CITIZEN, row_locked=True,
            reason="The citizen wrote before it was resolved; nobody had read it.",
        )  # fmt: skip
    except case_services.CaseTransitionError:
        logger.warning("%s has a message nobody read but cannot be reopened; its worker is told", case.reference)
        outbox.tell_assignee_of_follow_up(case)
        return case


@transaction.atomic
def _triage_with_those_waiting(case_id: int, *, take_along: bool) -> list[Case]:
    """Triage the case and (`take_along`) a batch of the new cases waiting behind it, group them into the crisis
    events they name, and ring the model worker for the ones it will read. The cases triaged, the doorbell's first;
    none when the case does not exist."""
    rules = triage_selectors.active_rules()
    run = triage.triage_case(case_id, rules=rules)
    if run is None:
        return []
    case = run.case
    events = crisis.active_events()
    crisis.group_case(case, events)
    if run.read_follow_up and not case.is_open and _written_before_it_was_resolved(case, run):
        case = _reopen_for_what_was_not_read(case)
    if case.assigned_to_id is not None and case.is_open:
        if _waits_for_its_worker(case) and _raised_by_triage(run):
            # As when a person raises it (`do_reclassify`): the clock and ladder were the old priority's, and "he is
            # back with a knife" on a low case waited an hour for its first reminder, with no call.
            case = _to_someone_who_can_act(
                case, why=f"triage raised the priority from {run.priority_before or 'none'} to {case.priority}"
            )
        elif run.read_follow_up:
            case = _follow_up_reaches_someone(case, reads_critical=run.reads_critical)
    triaged = [case]
    # The critical worker (whose doorbells are the messages critical rules match) never carries a batch of calm
    # ones: it takes along a few other messages that sound critical, which the model reads with its own. A
    # follow-up's doorbell rides the queue its own words chose.
    if not take_along:
        taken_along = []
    elif run.reads_critical:
        taken_along = triage.triage_waiting_cases(
            besides=case.pk, limit=CRITICAL_TAKEN_ALONG, rules=rules, critical=True
        )
    elif case.priority != Priority.CRITICAL:
        taken_along = triage.triage_waiting_cases(besides=case.pk, limit=TAKEN_ALONG, rules=rules)
    else:
        taken_along = []  # critical by the same person's earlier contact: given out at once, alone
    for other in taken_along:
        crisis.group_case(other.case, events)
        triaged.append(other.case)
    if any(each.awaiting_model for each in triaged):
        enqueue_after_commit(SECOND_LOOK_TASK, queue=MODEL_QUEUE)
    return triaged


# How long one ring of the model worker's doorbell keeps reading batches: long enough to empty a normal queue,
# short enough that a killed or restarted worker loses little (the cases stay marked, and beat rings again).
SECOND_LOOK_SECONDS = 20.0


def do_second_look(*, seconds: float = SECOND_LOOK_SECONDS) -> int:
    """The semantic model reads what the rules triaged, batch after batch, most urgent first, for up to `seconds`.
    A case it raises is acted on at once: one nobody has yet is given out (a critical one even to someone at
    their maximum); one given to someone who has not acknowledged it is handed to them again under the ladder of
    its new priority (for critical: a call, and the short deadline); one already taken stays with its worker,
    whose case shows the new priority. Returns how many cases were read."""
    deadline = time.monotonic() + seconds
    read = 0
    while True:
        looks = triage.second_look()
        read += len(looks)
        waiting_raised = False
        for look in looks:
            with transaction.atomic():
                case = Case.objects.for_change().get(pk=look.case.pk)
                crisis.group_case(case)  # the model's category may name an event the rules' did not
                if look.raised_from and case.is_open:
                    waiting_raised |= _act_on_raised_priority(case, look.raised_from, by="the semantic model")
        if waiting_raised:
            ladder.assign_waiting()
        if not looks or time.monotonic() > deadline:
            return read


def _act_on_raised_priority(case: Case, raised_from: str, *, by: str) -> bool:
    """True when the case waits for someone (assignment will take it, most urgent first). `by`: what raised it."""
    if case.assigned_to_id is None:
        return case.status == CaseStatus.TRIAGED
    if case.status != CaseStatus.ASSIGNED or case.acknowledged_at is not None:
        return False  # its worker has it in hand
    staff = StaffProfile.objects.filter(user_id=case.assigned_to_id).first()
    if staff is not None:
        ladder.hand_over(
            case, staff,
            explanation=f"{by} raised the priority from {raised_from} to {case.priority}",
            row_locked=True,  # read for change by the caller
        )  # fmt: skip
    return False


def do_assign_waiting() -> int:
    """The tick's share: cases waiting for room (someone resolved a case, came on duty, or a triage's batch was
    left to the turn in line) are given out; the supervisors hear of those left waiting too long."""
    given = len(ladder.assign_waiting())
    ladder.tell_supervisors_of_cases_waiting_for_room()
    return given


def sweep_untriaged(now: dt.datetime | None = None, *, limit: int = 500) -> int:
    """Ring triage again for cases whose doorbell the broker lost: still new 30 s after intake, or triaged and
    written to again since (whoever has them). A doorbell rung less than LOST_IN_A_BUSY_QUEUE ago counts as lost
    only when its queue is empty: while doorbells wait there, it is most likely among them. Returns how many were
    re-sent."""
    now = now or timezone.now()
    stale = now - UNTRIAGED_GRACE
    never_resent = Q(triage_requested_at__lt=F("created_at") + dt.timedelta(seconds=5))
    due_again = Q(triage_requested_at__lt=now - RESEND_BACKOFF)
    # No stamp: the doorbell was never taken by the broker (it was down), so there is no message to wait for.
    never_rung = Q(triage_requested_at__isnull=True)
    waiting = list(
        Case.objects.filter(status=CaseStatus.NEW)
        .filter(Q(created_at__lt=stale) & (never_resent | due_again) | never_rung)
        .order_by("created_at")
        .values_list("pk", "triage_requested_at")[:limit]
    )
    # A triaged case needs triage again only when the citizen wrote after it was triaged (that doorbell may be the
    # one lost); one nobody has is otherwise given out by the assignment tick. Re-sending every waiting case instead
    # put hundreds of needless triage runs a minute in front of new contacts during a surge. A case someone has
    # counts too: only triage of the follow-up restarts a reopened case's clock or hands "he is back" on from a
    # worker who went off duty.
    written_since_triage = Message.objects.filter(
        case=OuterRef("pk"), direction=Direction.INBOUND, created_at__gt=OuterRef("triaged_at")
    )
    # Rung once, by the intake that stored the message: lost after the grace. Rung again by a sweep since: not
    # again before RESEND_BACKOFF, so a case the sweep keeps seeing (hosts' clocks apart) is not rung every 30 s.
    rung_only_by_intake = written_since_triage.filter(
        created_at__gte=OuterRef("triage_requested_at") - dt.timedelta(seconds=5)
    )
    # Classified without reading the text (a welfare "2" raised to high): the rules have not read it yet.
    not_read = Q(triaged_at__isnull=True) & (never_resent | due_again | never_rung)
    written = Exists(written_since_triage) & (Exists(rung_only_by_intake) | due_again | never_rung)
    written_again = list(
        Case.objects.filter(status__in=OPEN_STATUSES).exclude(status=CaseStatus.NEW)
        .filter(not_read | written)
        .exclude(triage_requested_at__gte=stale)
        .order_by("created_at")
        .values_list("pk", "triage_requested_at")[:limit]
    )
    if not waiting and not written_again:
        return 0
    # In a surge the triage queue holds minutes of doorbells, and every case behind them passes the grace: copying
    # them all (5,722 copies for 6,000 contacts at 100/s) doubled the work in front of new contacts, and a copy
    # joins the back of the same queue, so it is served no sooner than the doorbell it copies. While a queue holds
    # doorbells (or the broker cannot say how many), a case is taken for lost only after LOST_IN_A_BUSY_QUEUE.
    queued = waiting_in_queues(CRITICAL_QUEUE, TRIAGE_QUEUE, deadline=QUEUE_READ_DEADLINE_SECONDS)
    busy = {name for name, count in (queued or {}).items() if count}
    # Which queue a case rides (read from its first message) matters only to ring it, or when one queue is busy and
    # the other empty: in a surge both are busy, and reading 500 messages every 10 s to decide nothing cost the
    # general worker a twentieth of its CPU.
    queues: dict[int, str] = {}

    def queue_of(case_id: int) -> str:
        if not queues:  # every case's at once, at the first question; a follow-up by its own words
            bodies = _first_inbound_bodies([case_id for case_id, _ in waiting])
            bodies.update(_last_inbound_bodies([case_id for case_id, _ in written_again]))
            queues.update({case: triage.queue_for_text(bodies.get(case, "")) for case, _ in waiting + written_again})
        return queues[case_id]

    def taken_for_lost(case_id: int, rung_at: dt.datetime | None) -> bool:
        if rung_at is None or rung_at < now - LOST_IN_A_BUSY_QUEUE:
            return True
        if queued is None or busy >= {CRITICAL_QUEUE, TRIAGE_QUEUE}:
            return False
        return queue_of(case_id) not in busy

    case_ids = [case_id for case_id, rung_at in waiting + written_again if taken_for_lost(case_id, rung_at)]
    behind = len(waiting) + len(written_again) - len(case_ids)
    if behind:
        logger.info("sweep: %s cases not triaged yet wait in busy queues %s; not rung again", behind, queued)
    if case_ids:
        case_services.mark_triage_requested(case_ids)
        for sent, case_id in enumerate(case_ids):
            if not publish(TRIAGE_TASK, case_id, queue=queue_of(case_id)):
                # The broker is away: the rest would each wait the publish deadline, and stamped they would wait
                # RESEND_BACKOFF after it returns. Unstamped, the first sweep after it returns rings them all.
                case_services.mark_triage_not_requested(case_ids[sent:])
                logger.warning("sweep re-sent triage for %s cases; the broker took no more", sent)
                return sent
        logger.warning("sweep re-sent triage for %s cases", len(case_ids))
    return len(case_ids)


def ring_triage_again_at_next_sweep(case_id: int) -> None:
    """A triage doorbell failed (a bug, or the database still away after its retries) and was taken off its queue:
    unstamped, the case is rung by the next sweep, busy queues or not, as one whose doorbell was never rung."""
    for attempt in range(2):
        try:
            case_services.mark_triage_not_requested([case_id])
            return
        except DatabaseError:
            if attempt == 0:
                connection.close_if_unusable_or_obsolete()  # a failover broke the connection: the next one is new
    logger.warning("triage of case id %s failed and its stamp could not be cleared: the sweep rings it again "
                   "within %s", case_id, LOST_IN_A_BUSY_QUEUE)  # fmt: skip


def _last_inbound_bodies(case_ids: list[int]) -> dict[int, str]:
    """Each case's latest message from the citizen: a lost follow-up's doorbell rides the queue its words choose
    ("he is back with a knife" the critical one), not the first message's."""
    bodies: dict[int, str] = {}
    rows = Message.objects.filter(case_id__in=case_ids, direction=Direction.INBOUND).order_by("case_id", "-id")
    for case_id, body in rows.values_list("case_id", "body"):
        bodies.setdefault(case_id, body or "")
    return bodies


def _first_inbound_bodies(case_ids: list[int]) -> dict[int, str]:
    """Each case's first message from the citizen: what intake chose its triage queue by."""
    bodies: dict[int, str] = {}
    rows = Message.objects.filter(case_id__in=case_ids, direction=Direction.INBOUND).order_by("case_id", "id")
    for case_id, body in rows.values_list("case_id", "body"):
        bodies.setdefault(case_id, body or "")
    return bodies
