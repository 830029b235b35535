"""Home visits as timed sessions: start, extend, check out, the silent alarm, and the ladder that chases a worker
who did not check out. The ladder is the notifications ladder's machinery (a snapshot of the steps on the row, the
due time on the row, a step run only if the row is still at the step it was sent for, a savepoint per visit),
with steps of its own: call the worker, then the supervisor on duty, then every supervisor and the centre's
fallback numbers with the address and the police number, repeating until someone takes it or the worker checks
out. Nothing about an alarm ever goes to the worker's own phone.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from helpline.cases import ticks
from helpline.cases.dispatch import ALERTS_QUEUE
from helpline.cases.language import command_words, fold
from helpline.cases.models import Case, EventKind, mask_phone
from helpline.cases.selectors import case_by_reference
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import all_supervisors, is_supervisor, supervisors_on_duty
from helpline.visits import texts
from helpline.visits.models import (
    OPEN_VISIT_STATUSES,
    IncidentKind,
    StaffIncident,
    StaffSafety,
    Visit,
    VisitEvent,
    VisitEventKind,
    VisitStatus,
)
from notifications.ladder import Ladder
from notifications.models import (
    DeliveryStatus,
    Notification,
    NotificationChannel,
    NotificationKind,
    StaffSmsCommand,
)
from notifications.outbox import queue_notification

logger = logging.getLogger(__name__)

# Every notification about a visit carries this key prefix: how a call's webhook and an "OK <code>" reply find
# their visit. Visit notifications name no case (a case acknowledged long ago must not cancel a visit's alarm),
# and ride the critical queue.
VISIT_KEY_PREFIX = "visit:"
MAX_VISIT_MINUTES = 12 * 60
_PIN = re.compile(r"^\d{4,6}$")
_MINUTES = re.compile(r"^\d{1,3}$")
# Folded spellings (handle_visit_sms folds the word first): POMOĆ, ПОМОЋ and pomoc are all POMOC, ОК is OK.
START_WORDS = frozenset({"VISIT", "POSJETA", "V"})
SAFE_WORDS = frozenset({"SAFE", "SIGURAN", "SIGURNA", "SIGURNO"})
EXTEND_WORDS = frozenset({"EXTEND", "PRODUZI"})
# "HELP" may be taken by a carrier's own keyword handling on some numbers; POMOC always reaches us.
ALARM_WORDS = frozenset({"HELP", "POMOC", "SOS"})
ACKNOWLEDGE_WORDS = frozenset({"OK", "DA", "YES"})


class VisitRefused(Exception):
    """A visit action that cannot be done; the message is for the person who asked."""


class VisitStep:
    CALL_WORKER = "call_worker"
    SUPERVISOR_ON_DUTY = "notify_supervisor_on_duty"
    EVERYONE = "notify_all_supervisors_and_fallback"


def overdue_ladder() -> Ladder:
    wait = settings.VISIT_ESCALATION_WAIT_MINUTES
    steps = ((1, VisitStep.CALL_WORKER, wait), (2, VisitStep.SUPERVISOR_ON_DUTY, wait), (3, VisitStep.EVERYONE, wait))
    return Ladder(0, steps, 3)


def alarm_ladder() -> Ladder:
    return Ladder(0, ((1, VisitStep.EVERYONE, settings.VISIT_ALARM_REPEAT_MINUTES),), 1)


# --- PINs -------------------------------------------------------------------------------------------------


def set_pins(staff: StaffProfile, *, checkout_pin: str, duress_pin: str) -> StaffSafety:
    """The worker's own check-out PIN and duress PIN (4 to 6 digits, different from each other)."""
    if not _PIN.match(checkout_pin or "") or not _PIN.match(duress_pin or ""):
        raise VisitRefused(gettext("A PIN is 4 to 6 digits."))
    if checkout_pin == duress_pin:
        raise VisitRefused(gettext("The duress PIN must differ from the check-out PIN."))
    safety, _ = StaffSafety.objects.get_or_create(staff=staff)
    safety.checkout_pin_hash, safety.duress_pin_hash = make_password(checkout_pin), make_password(duress_pin)
    safety.save()
    return safety


def has_pins(staff: StaffProfile) -> bool:
    return StaffSafety.objects.filter(staff=staff).exclude(checkout_pin_hash="").exists()


def _pin_meaning(staff: StaffProfile, pin: str) -> str:
    """ "checkout", "duress", "wrong" or "none" (no PINs set)."""
    safety = StaffSafety.objects.filter(staff=staff).first()
    if safety is None or not safety.checkout_pin_hash:
        return "none"
    if check_password(pin, safety.checkout_pin_hash):
        return "checkout"
    if safety.duress_pin_hash and check_password(pin, safety.duress_pin_hash):
        return "duress"
    return "wrong"


# --- The visit's life -------------------------------------------------------------------------------------


def _record(visit: Visit, kind: str, *, actor: AbstractBaseUser | None = None, **details) -> None:
    VisitEvent.objects.create(visit=visit, kind=kind, actor=actor, details=details)


def open_visit_of(staff: StaffProfile, *, lock: bool = False) -> Visit | None:
    """The worker's open visit as they know it: a duress alarm is over as far as their phone is concerned."""
    visits = Visit.objects.filter(worker=staff, status__in=OPEN_VISIT_STATUSES, is_duress=False)
    if lock:
        visits = visits.select_for_update(of=("self",))
    return visits.select_related("worker__user", "case", "colleague__user").first()


@transaction.atomic
def start_visit(
    worker: StaffProfile, *, minutes: int, address: str = "", case: Case | None = None,
    colleague: StaffProfile | None = None, via: str, by: AbstractBaseUser | None = None,
) -> Visit:
    """The worker goes in: the visit is timed from now, and its ladder starts to climb at the expected end."""
    if not 1 <= minutes <= MAX_VISIT_MINUTES:
        raise VisitRefused(gettext("A visit lasts 1 to %(max)s minutes.") % {"max": MAX_VISIT_MINUTES})
    StaffProfile.objects.select_for_update().get(pk=worker.pk)  # one open visit per worker, even from two phones
    existing = open_visit_of(worker)
    if existing is not None:
        raise VisitRefused(texts.already_open(existing))
    now = timezone.now()
    visit = Visit.objects.create(
        worker=worker, case=case, address=address.strip()[:300], colleague=colleague if colleague != worker else None,
        started_at=now, expected_end_at=now + dt.timedelta(minutes=minutes), started_via=via,
    )  # fmt: skip
    visit.escalation_due_at = visit.expected_end_at
    visit.escalation_ladder = overdue_ladder().as_snapshot()
    visit.save(update_fields=["escalation_due_at", "escalation_ladder"])
    _record(visit, VisitEventKind.STARTED, actor=by or worker.user, via=via, minutes=minutes,
            case=case.reference if case else None)  # fmt: skip
    return visit


def _locked(visit: Visit) -> Visit:
    return Visit.objects.select_for_update(of=("self",)).select_related("worker__user", "case", "colleague__user").get(
        pk=visit.pk
    )


# Without the PIN, a worker extends a visit that is not yet overdue by at most this much: someone else may hold
# their phone (signed in to the console or the app, or just texting), and "EXTEND 720" silenced the visit for twelve
# hours.
EXTEND_WITHOUT_PIN_MAX_MINUTES = 60


class PinRefused(VisitRefused):
    """An extension the worker's check-out PIN was needed for, and not given (`missing`) or wrong; recorded."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def extend_visit(visit: Visit, *, minutes: int, by: AbstractBaseUser, via: str, pin: str = "") -> Visit:
    """More time, counted from the expected end (or from now, when already overdue). The worker extending is the
    worker alive: an overdue ladder stops, and those already told hear the all-clear. An alarm is not extended.

    The one rule for every channel (SMS, console, API, the overdue call): the worker extending their own visit gives
    their check-out PIN once it is overdue, or for more than EXTEND_WITHOUT_PIN_MAX_MINUTES; without it, or with a
    wrong one, PinRefused. A supervisor extends someone else's visit on their own authority, and a worker with no
    PINs set extends as before. The duress PIN raises the silent alarm and returns a copy of the visit that only
    looks extended, never saved: the answer whoever is watching expects."""
    try:
        return _extend(visit, minutes=minutes, by=by, via=via, pin=(pin or "").strip())
    except PinRefused as refusal:  # recorded outside the rolled-back transaction
        reason = "extension without the PIN" if refusal.missing else "wrong PIN"
        _record(visit, VisitEventKind.REFUSED, actor=by, via=via, reason=reason)
        raise


@transaction.atomic
def _extend(visit: Visit, *, minutes: int, by: AbstractBaseUser, via: str, pin: str) -> Visit:
    visit = _locked(visit)
    _may_act_as_worker(visit, by)
    is_worker = by.pk == visit.worker.user_id
    meaning = _extension_pin_meaning(visit.worker, pin) if is_worker else "not needed"
    if meaning == "duress" or (is_worker and _is_pretending(visit) and meaning in ("checkout", "none")):
        # Under duress, or again on the visit the duress PIN "extended": the worker's screen shows what it expects,
        # and only a supervisor stops the alarm.
        return _looks_extended(visit, minutes=min(max(minutes, 1), MAX_VISIT_MINUTES), via=via)
    if not 1 <= minutes <= MAX_VISIT_MINUTES:
        raise VisitRefused(gettext("A visit lasts 1 to %(max)s minutes.") % {"max": MAX_VISIT_MINUTES})
    if visit.status not in (VisitStatus.ACTIVE, VisitStatus.OVERDUE):
        raise VisitRefused(gettext("This visit cannot be extended."))
    now = timezone.now()
    if meaning == "wrong":
        raise PinRefused(texts.wrong_pin(), missing=False)
    if meaning == "not given" and (_is_overdue(visit, now) or minutes > EXTEND_WITHOUT_PIN_MAX_MINUTES):
        raise PinRefused(texts.extend_needs_your_pin(EXTEND_WITHOUT_PIN_MAX_MINUTES), missing=True)
    was_escalated = visit.escalation_step > 0
    visit.expected_end_at = max(visit.expected_end_at, now) + dt.timedelta(minutes=minutes)
    _restart_overdue_clock(visit)
    visit.save()
    _record(visit, VisitEventKind.EXTENDED, actor=by, via=via, minutes=minutes)
    _stop_sending(visit)
    if was_escalated:
        _all_clear(visit)
    return visit


def _extension_pin_meaning(worker: StaffProfile, pin: str) -> str:
    """As `_pin_meaning`, and "not given" when the worker has PINs and gave none."""
    if pin:
        return _pin_meaning(worker, pin)
    return "not given" if has_pins(worker) else "none"


def _is_overdue(visit: Visit, now: dt.datetime) -> bool:
    """Past its expected end, whether or not the ladder's first step has run yet."""
    return visit.status == VisitStatus.OVERDUE or visit.escalation_step > 0 or visit.expected_end_at <= now


def _is_pretending(visit: Visit) -> bool:
    """An alarm raised by the duress PIN on an extension, still sounding: the worker's screens show the visit on."""
    return visit.status == VisitStatus.ALARM and visit.is_duress and visit.pretended_end_at is not None


def _looks_extended(visit: Visit, *, minutes: int, via: str) -> Visit:
    """The duress PIN on an extension: the alarm sounds, and the worker's screen or phone is shown the visit as if
    extended (an unsaved copy; the visit itself is now the alarm). The end it shows is kept, so that the screen
    still shows it after a reload, and a further "extension" moves it on."""
    was_pretending = _is_pretending(visit)
    shown_end = visit.pretended_end_at if was_pretending else visit.expected_end_at
    pretended_end = max(shown_end, timezone.now()) + dt.timedelta(minutes=minutes)
    if not was_pretending:
        raise_alarm(visit.worker, via=via, duress=True)
    Visit.objects.filter(pk=visit.pk).update(pretended_end_at=pretended_end)
    _record(visit, VisitEventKind.EXTENDED, actor=visit.worker.user, via=via, minutes=minutes,
            pretended=True, note="only on the worker's screen: the alarm goes on")  # fmt: skip
    return _locked(visit).as_the_worker_sees_it()


def _restart_overdue_clock(visit: Visit) -> None:
    visit.status = VisitStatus.ACTIVE
    visit.escalation_due_at = visit.expected_end_at
    visit.escalation_step, visit.escalation_loop, visit.escalation_run = 0, 0, visit.escalation_run + 1
    visit.escalation_ladder = overdue_ladder().as_snapshot()
    visit.acknowledged_at, visit.acknowledged_by = None, None


def _may_act_as_worker(visit: Visit, by: AbstractBaseUser) -> None:
    if by.pk != visit.worker.user_id and not is_supervisor(by):
        raise PermissionDenied(gettext("Only the worker or a supervisor may do this."))


@transaction.atomic
def check_out(visit: Visit, *, by: AbstractBaseUser, via: str) -> Visit:
    """The worker is out and safe: the visit ends and its escalation stops at once."""
    visit = _locked(visit)
    _may_act_as_worker(visit, by)
    if not visit.is_open:
        return visit
    was_escalated = visit.escalation_step > 0
    visit.status, visit.ended_at, visit.escalation_due_at = VisitStatus.CHECKED_OUT, timezone.now(), None
    visit.save(update_fields=["status", "ended_at", "escalation_due_at"])
    _record(visit, VisitEventKind.CHECKED_OUT, actor=by, via=via)
    _stop_sending(visit)
    if was_escalated:
        _all_clear(visit)
    return visit


@dataclass(frozen=True)
class CheckOutAnswer:
    """What the worker's screen or phone is told: the same for a check-out and a duress "check-out"."""

    reply: str
    visit: Visit | None = None
    accepted: bool = False


def check_out_with_pin(worker: StaffProfile, pin: str, *, via: str) -> CheckOutAnswer:
    """SAFE <PIN> on any channel. The duress PIN answers exactly as a check-out would, and raises the alarm."""
    meaning = _pin_meaning(worker, (pin or "").strip())
    visit = open_visit_of(worker)
    if meaning == "none":
        return CheckOutAnswer(texts.no_pin_set(), visit)
    if meaning == "wrong":
        if visit is not None:
            _record(visit, VisitEventKind.REFUSED, actor=worker.user, via=via, reason="wrong PIN")
        return CheckOutAnswer(texts.wrong_pin(), visit)
    if meaning == "duress":
        raise_alarm(worker, via=via, duress=True)
        # Someone may be watching: the answer is the one a real check-out gets, open visit or not.
        reply = texts.checked_out() if visit else texts.no_open_visit()
        return CheckOutAnswer(reply, visit, accepted=visit is not None)
    if visit is None:
        pretending = _pretended_visit_of(worker)
        if pretending is None:
            return CheckOutAnswer(texts.no_open_visit())
        return CheckOutAnswer(texts.checked_out(), _stop_pretending(pretending, via=via), accepted=True)
    return CheckOutAnswer(texts.checked_out(), check_out(visit, by=worker.user, via=via), accepted=True)


def _pretended_visit_of(worker: StaffProfile) -> Visit | None:
    return Visit.objects.filter(
        worker=worker, status=VisitStatus.ALARM, is_duress=True, pretended_end_at__isnull=False
    ).first()


@transaction.atomic
def _stop_pretending(visit: Visit, *, via: str) -> Visit:
    """The check-out PIN on the visit the duress PIN "extended": the worker's screen shows it checked out, and the
    alarm goes on until a supervisor takes it (a PIN can be given under threat too)."""
    visit = _locked(visit)
    Visit.objects.filter(pk=visit.pk).update(pretended_end_at=None)
    _record(visit, VisitEventKind.CHECKED_OUT, actor=visit.worker.user, via=via,
            note="during the duress alarm: the alarm goes on until a supervisor takes it")  # fmt: skip
    visit.pretended_end_at = None
    return visit.as_the_worker_sees_it()


@transaction.atomic
def raise_alarm(worker: StaffProfile, *, via: str, duress: bool = False) -> Visit:
    """The silent alarm: every supervisor and the centre's fallback numbers hear at once, with the address and the
    police number, and again until someone takes it. Without an open visit, an alarm with no address."""
    StaffProfile.objects.select_for_update().get(pk=worker.pk)
    visit = open_visit_of(worker, lock=True)
    now = timezone.now()
    sounding = Visit.objects.filter(worker=worker, status=VisitStatus.ALARM, is_duress=True, acknowledged_at=None)
    if visit is None and sounding.exists():
        return sounding.first()  # a duress alarm is already sounding for this worker
    if visit is None:
        visit = Visit.objects.create(worker=worker, started_at=now, expected_end_at=now, started_via=via)
    elif visit.status == VisitStatus.ALARM and visit.acknowledged_at is None:
        return visit  # already sounding
    visit.status, visit.alarm_raised_at, visit.is_duress = VisitStatus.ALARM, now, visit.is_duress or duress
    visit.escalation_ladder = alarm_ladder().as_snapshot()
    visit.escalation_step, visit.escalation_loop, visit.escalation_due_at = 0, 0, now
    visit.escalation_run += 1
    visit.acknowledged_at, visit.acknowledged_by = None, None
    visit.save()
    _record(visit, VisitEventKind.ALARM, actor=worker.user, via=via, duress=duress)
    _stop_sending(visit, only_to=worker.user)  # no overdue call may ring the phone now
    logger.warning("home visit alarm raised for visit %s", visit.pk)
    run_visit_escalation_step(visit, expected_step=1, now=now)
    return visit


@transaction.atomic
def acknowledge_visit(visit: Visit, *, by: AbstractBaseUser, via: str) -> Visit:
    """A supervisor has taken the overdue visit or the alarm: the ladder stops; the visit stays on the board
    until the worker checks out or a supervisor ends it."""
    if not by.is_active or not is_supervisor(by):
        raise PermissionDenied(gettext("Only a supervisor may take a visit's alarm."))
    visit = _locked(visit)
    if not visit.is_open or visit.acknowledged_at is not None:
        return visit
    visit.acknowledged_at, visit.acknowledged_by, visit.escalation_due_at = timezone.now(), by, None
    visit.save(update_fields=["acknowledged_at", "acknowledged_by", "escalation_due_at"])
    _record(visit, VisitEventKind.ACKNOWLEDGED, actor=by, via=via)
    _stop_sending(visit)
    return visit


@transaction.atomic
def end_visit(visit: Visit, *, by: AbstractBaseUser, note: str = "") -> Visit:
    """A supervisor closes a visit the worker cannot check out of (the alarm was dealt with, the phone lost).
    An alarm or an overdue visit must have been taken first: one tap must not end an alarm nobody dealt with.
    Everyone who heard of it hears the all-clear, as after a check-out."""
    if not is_supervisor(by):
        raise PermissionDenied(gettext("Only a supervisor may end someone's visit."))
    visit = _locked(visit)
    if not visit.is_open:
        return visit
    if visit.status != VisitStatus.ACTIVE and visit.acknowledged_at is None:
        raise VisitRefused(gettext("Take the alarm first: end the visit once you know the worker is safe."))
    visit.status, visit.ended_at, visit.escalation_due_at = VisitStatus.ENDED, timezone.now(), None
    visit.save(update_fields=["status", "ended_at", "escalation_due_at"])
    _record(visit, VisitEventKind.ENDED, actor=by, note=note[:500])
    _stop_sending(visit)
    _all_clear(visit)
    logger.info("home visit %s ended by a supervisor (user %s)%s", visit.pk, by.pk,
                " after a duress alarm" if visit.is_duress else "")  # fmt: skip
    return visit


def _visit_notifications(visit: Visit):
    return Notification.objects.filter(idempotency_key__startswith=f"{VISIT_KEY_PREFIX}{visit.pk}:")


def _stop_sending(visit: Visit, *, only_to: AbstractBaseUser | None = None) -> None:
    """What is still queued about the visit is no longer true. (The outbox cancels by case; visit notifications
    name no case, so the visit cancels its own.)"""
    queued = _visit_notifications(visit).filter(status=DeliveryStatus.QUEUED)
    if only_to is not None:
        queued = queued.filter(recipient=only_to)
    queued.update(status=DeliveryStatus.CANCELLED, last_error="visit checked out, extended or taken")


def _all_clear(visit: Visit) -> None:
    """Those already told hear that the worker is safe, by SMS. Never the worker's phone; after a duress alarm
    not the colleague's either: both may be in the hands of whoever made the worker give the duress PIN, and an
    all-clear would tell them an alarm had been raised."""
    in_that_home = [visit.worker] + ([visit.colleague] if visit.is_duress and visit.colleague else [])
    told = _visit_notifications(visit).exclude(idempotency_key__contains=":clear:")
    for person in in_that_home:
        told = told.exclude(recipient=person.user)
    numbers = {str(n) for n in told.values_list("to_number", flat=True).distinct()}
    numbers -= {str(person.phone) for person in in_that_home if person.phone}
    for index, number in enumerate(sorted(numbers)):
        queue_notification(
            keep_letters=True,  # an address to find, exactly as written
            key=f"{VISIT_KEY_PREFIX}{visit.pk}:clear:{visit.events.count()}:{index}", to_number=number,
            body=texts.all_clear(visit), kind=NotificationKind.ESCALATION, queue=ALERTS_QUEUE,
        )  # fmt: skip


def confirm_safe_by_call(notification_id: int, *, pin: str | None = None) -> bool:
    """The worker answered the overdue call (their PIN, or 1 when they have none): alive, so the visit gets more
    time and the ladder stops. The duress PIN answers as if confirmed (someone may be listening) and raises the
    alarm. Returns whether to say it was confirmed."""
    notification = Notification.objects.filter(pk=notification_id).first()
    visit = visit_of_notification(notification)
    if visit is None or notification.recipient_id != visit.worker.user_id or visit.status != VisitStatus.OVERDUE:
        return False
    if pin is not None:
        meaning = _pin_meaning(visit.worker, pin.strip("#"))
        if meaning == "duress":
            raise_alarm(visit.worker, via="key press", duress=True)
            return True
        if meaning != "checkout":
            _record(visit, VisitEventKind.REFUSED, actor=notification.recipient, via="key press", reason="wrong PIN")
            return False
    extend_visit(visit, minutes=settings.VISIT_SAFE_CALL_EXTENSION_MINUTES, by=notification.recipient,
                 via="key press", pin=(pin or "").strip("#"))  # fmt: skip
    _record(visit, VisitEventKind.SAFE_CONFIRMED, actor=notification.recipient, via="key press")
    return True


def acknowledged_by_key_press(notification_id: int) -> bool:
    notification = Notification.objects.select_related("recipient").filter(pk=notification_id).first()
    visit = visit_of_notification(notification)
    if visit is None or notification.recipient is None or notification.recipient_id == visit.worker.user_id:
        return False
    try:
        visit = acknowledge_visit(visit, by=notification.recipient, via="key press")
    except PermissionDenied:
        return False
    return visit.acknowledged_by_id == notification.recipient_id  # not when someone else had taken it first


def visit_of_notification(notification: Notification | None) -> Visit | None:
    if notification is None or not notification.idempotency_key.startswith(VISIT_KEY_PREFIX):
        return None
    raw = notification.idempotency_key.split(":")[1]
    if not (raw.isascii() and raw.isdigit()):
        return None
    return Visit.objects.select_related("worker__user", "case", "colleague__user").filter(pk=int(raw)).first()


# --- Incidents and privacy ------------------------------------------------------------------------------------


def record_incident(
    *, staff_affected: StaffProfile, kind: str, occurred_at: dt.datetime, place: str, description: str,
    perpetrator: str, reported_by: AbstractBaseUser, case: Case | None = None, visit: Visit | None = None,
    police_informed: bool = False,
) -> StaffIncident:
    """Aggression or a threat against staff, for the centre's monthly report."""
    if kind not in IncidentKind.values:
        raise VisitRefused(gettext("Choose what happened."))
    if reported_by.pk != staff_affected.user_id and not is_supervisor(reported_by):
        raise PermissionDenied(gettext("Report what happened to you, or ask a supervisor."))
    return StaffIncident.objects.create(
        staff_affected=staff_affected, kind=kind, occurred_at=occurred_at, place=place[:200], description=description,
        perpetrator=perpetrator[:200], reported_by=reported_by, case=case, visit=visit or None,
        police_informed=police_informed,
    )  # fmt: skip


def purge_visit_addresses(now: dt.datetime | None = None) -> int:
    """Storage limitation (Zakon o zaštiti ličnih podataka): an ended visit's address is kept
    VISIT_ADDRESS_RETENTION_DAYS, long enough to review an incident, then removed."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.VISIT_ADDRESS_RETENTION_DAYS)
    with transaction.atomic():
        old = list(
            Visit.objects.select_for_update(skip_locked=True)
            .exclude(status__in=OPEN_VISIT_STATUSES).exclude(address="").filter(ended_at__lt=cutoff)[:1000]
        )  # fmt: skip
        for visit in old:
            visit.address, visit.address_purged_at = "", now
            visit.save(update_fields=["address", "address_purged_at"])
            _record(visit, VisitEventKind.ADDRESS_PURGED)
            # The alarm and overdue messages about it carried the address too.
            _visit_notifications(visit).update(body="")
        # The answers to staff SMS commands ("you have taken the home visit... Address: ...") are kept only to
        # answer Twilio's retries of the same SMS, which come within minutes: a day is plenty.
        StaffSmsCommand.objects.filter(received_at__lt=now - dt.timedelta(days=1)).delete()
    return len(old)


# --- The ladder ---------------------------------------------------------------------------------------------


def run_due_visit_escalations(now: dt.datetime | None = None, *, limit: int = 100) -> int:
    """Claim visits whose next step is due and run each step once: SKIP LOCKED plus the step-number check make two
    beats harmless; a savepoint per visit keeps one failing visit from holding back the rest."""
    now = now or timezone.now()
    due = Visit.objects.filter(escalation_due_at__lte=now, status__in=OPEN_VISIT_STATUSES, acknowledged_at__isnull=True)
    return ticks.run_each_due(
        due.order_by("escalation_due_at"),
        lambda visit: run_visit_escalation_step(visit, expected_step=visit.escalation_step + 1, now=now),
        limit=limit,
    )


def run_visit_escalation_step(visit: Visit, *, expected_step: int, now: dt.datetime) -> bool:
    """Run step `expected_step` if the visit still waits for it (the fencing token). A step that reached nobody
    falls through to the next at once, at most one pass of the ladder per tick."""
    with transaction.atomic():
        locked = _locked(visit)
        if (
            locked.escalation_step != expected_step - 1
            or locked.escalation_due_at is None
            or not locked.is_open
            or locked.acknowledged_at is not None
        ):
            return False
        ladder = Ladder.from_snapshot(locked.escalation_ladder or overdue_ladder().as_snapshot())
        due = locked.escalation_due_at
        if locked.status == VisitStatus.ACTIVE:
            locked.status = VisitStatus.OVERDUE
        position, wait, loop = expected_step, 0, 0
        for _ in range(len(ladder.steps) + 1):
            action, wait, loop = ladder.step_at(position)
            reached = _run_action(locked, action, position)
            _record(locked, VisitEventKind.ESCALATED, step=position, loop=loop, action=action, reached=reached,
                    lateness_seconds=round((now - due).total_seconds(), 1))  # fmt: skip
            logger.info("home visit %s (%s) escalation step %s: %s, %s", locked.pk, locked.status, position, action,
                        "someone told" if reached else "nobody to tell")  # fmt: skip
            if reached:
                break
            position += 1
        locked.escalation_step, locked.escalation_loop = position, loop
        locked.escalation_due_at = now + dt.timedelta(minutes=max(wait, 1))
        locked.save(update_fields=["status", "escalation_step", "escalation_loop", "escalation_due_at"])
        visit.status, visit.escalation_step = locked.status, locked.escalation_step
        return True


def _run_action(visit: Visit, action: str, step: int) -> bool:
    run = f"r{visit.escalation_run}:" if visit.escalation_run else ""
    key = f"{VISIT_KEY_PREFIX}{visit.pk}:{run}{step}"
    worker_user = visit.worker.user_id
    if action == VisitStep.CALL_WORKER:
        if visit.status == VisitStatus.ALARM or not visit.worker.phone:
            return False
        told = _send(visit, visit.worker, f"{key}:worker", texts.overdue_to_worker(visit), call=True)
        return told
    if action == VisitStep.SUPERVISOR_ON_DUTY:
        on_duty = supervisors_on_duty(timezone.now()).exclude(phone="").exclude(user_id=worker_user).order_by("pk")
        person = on_duty.first()
        return bool(person) and _tell_with_code(visit, person, key, texts.overdue_to_supervisor)
    if action == VisitStep.EVERYONE:
        is_alarm = visit.status == VisitStatus.ALARM
        render = texts.alarm_to_everyone if is_alarm else texts.overdue_to_everyone
        to_fallback = texts.alarm_to_fallback if is_alarm else texts.overdue_to_fallback
        told = False
        for person in all_supervisors():
            if person.user_id != worker_user:
                told |= _tell_with_code(visit, person, key, render)
        for index, number in enumerate(settings.ESCALATION_FALLBACK_NUMBERS):
            for channel in (NotificationChannel.VOICE, NotificationChannel.SMS):
                told |= queue_notification(
                    keep_letters=True,  # an address to find, exactly as written
                    key=f"{key}:fallback:{index}:{channel}", to_number=number, body=to_fallback(visit),
                    kind=NotificationKind.ESCALATION, channel=channel, queue=ALERTS_QUEUE,
                ) is not None  # fmt: skip
        return told
    logger.error("unknown visit escalation action %r on visit %s", action, visit.pk)
    return False


def _tell_with_code(visit: Visit, person: StaffProfile, key: str, render) -> bool:
    """By SMS and a call, with a one-time code: "OK <code>" from this person's phone takes the visit."""
    code = f"{secrets.randbelow(10_000):04d}"
    return _send(visit, person, f"{key}:{person.pk}", render(visit, code), call=True, code=code)


def _send(visit: Visit, person: StaffProfile, key: str, body: str, *, call: bool, code: str = "") -> bool:
    told = False
    for channel in [NotificationChannel.SMS] + ([NotificationChannel.VOICE] if call else []):
        told |= queue_notification(
            keep_letters=True,  # an address to find, exactly as written
            key=f"{key}:{channel}", to_number=str(person.phone or ""), body=body, kind=NotificationKind.ESCALATION,
            recipient=person.user, channel=channel, ack_code=code, queue=ALERTS_QUEUE,
        ) is not None  # fmt: skip
    return told


# --- Commands by SMS from a staff phone -----------------------------------------------------------------------


def handle_visit_sms(staff: StaffProfile, body: str) -> str | None:
    """A visit command from a registered staff phone (the caller has matched the number to `staff`): the reply
    to send, "" for the silent alarm (send nothing back), or None when the SMS is not a visit command."""
    words = command_words(body)
    if not words:
        return None
    # Folded: Cyrillic, diacritics and case do not matter (PRODUŽI, продужи, сигуран, POMOĆ are all commands).
    first = fold(words[0]).upper()
    rest = words[1:]
    # However it goes on ("POMOĆ! napada me muž klijentice"): a false alarm costs a supervisor a call; a missed one
    # leaves a worker alone with whoever holds them.
    if first in ALARM_WORDS:
        raise_alarm(staff, via="SMS")
        return ""  # silent: nothing buzzes on a phone someone else may be holding
    if first in SAFE_WORDS:
        if not rest:
            return texts.no_pin_set() if not has_pins(staff) else texts.wrong_pin()
        return check_out_with_pin(staff, rest[0], via="SMS").reply
    if first in EXTEND_WORDS and rest and _MINUTES.match(rest[0]):
        return _extend_by_sms(staff, int(rest[0]), pin=rest[1] if len(rest) > 1 else "")
    if first in START_WORDS:
        return _start_by_sms(staff, body)
    if first in ACKNOWLEDGE_WORDS and len(rest) == 1:
        return _acknowledge_by_code(staff, rest[0])
    return None


def _extend_by_sms(staff: StaffProfile, minutes: int, *, pin: str) -> str:
    """EXTEND <minutes> [PIN], by `extend_visit`'s rule: once the visit is overdue (supervisors are being told), or
    for more than EXTEND_WITHOUT_PIN_MAX_MINUTES, only the check-out PIN extends it and calls them off. The duress
    PIN answers exactly as an extension would, and raises the alarm."""
    visit = open_visit_of(staff)
    if visit is None:
        return texts.no_open_visit()
    try:
        return texts.visit_extended(extend_visit(visit, minutes=minutes, by=staff.user, via="SMS", pin=pin))
    except PinRefused as refusal:
        return texts.extend_needs_pin(EXTEND_WITHOUT_PIN_MAX_MINUTES) if refusal.missing else str(refusal)
    except VisitRefused as refusal:
        return str(refusal)


def _start_by_sms(staff: StaffProfile, body: str) -> str:
    """VISIT <case reference> <minutes> [address], VISIT <minutes> [address], or V <minutes> [address]. The address
    is kept as written, commas and all."""
    parts = body.strip().split(None, 2)
    reference = ""
    if len(parts) >= 2 and not _MINUTES.match(parts[1]):
        reference = parts[1].upper()
        parts = parts[:1] + (parts[2].split(None, 1) if len(parts) > 2 else [])
    if len(parts) < 2 or not _MINUTES.match(parts[1]):
        return texts.visit_help()
    case = staff_case_by_reference(staff, reference) if reference else None
    address = parts[2] if len(parts) > 2 else ""
    try:
        visit = start_visit(staff, minutes=int(parts[1]), address=address, case=case, via="SMS")
    except VisitRefused as refusal:
        return str(refusal)
    reply = texts.visit_started(visit, has_pin=has_pins(staff))
    if reference and case is None:
        reply += " " + texts.case_not_linked(reference)
    return reply


def staff_case_by_reference(staff: StaffProfile, reference: str) -> Case | None:
    """The case a worker names for a visit or an incident, however they typed its reference: only their own (held
    now or before), or any for a supervisor. Any other reference names nothing: linking a visit
    or an incident to a colleague's case put it in the supervisors' report under a case the worker may not see."""
    case = case_by_reference(reference)
    if case is None or staff.is_supervisor or case.assigned_to_id == staff.user_id:
        return case
    # Held before and since given to a colleague: still theirs to report an incident on (threatened on the visit,
    # then the case moved on), as it is still theirs to read.
    held_before = case.timeline.filter(kind=EventKind.ASSIGNED, details__assignee_id=staff.user_id).exists()
    return case if held_before else None


def _acknowledge_by_code(staff: StaffProfile, code: str) -> str | None:
    """OK <code> with the code of a visit alert this person received; None lets the case commands try it."""
    if not re.match(r"^\d{4}$", code):
        return None
    notification = (
        Notification.objects.filter(recipient=staff.user, ack_code=code, idempotency_key__startswith=VISIT_KEY_PREFIX)
        .order_by("-created_at").first()
    )  # fmt: skip
    visit = visit_of_notification(notification)
    if visit is None or not visit.is_open:
        # A finished visit's code is spent: the same four digits may be the code of a case waiting for this person.
        return None
    try:
        visit = acknowledge_visit(visit, by=staff.user, via="SMS")
    except PermissionDenied as refusal:
        logger.warning("visit acknowledgement refused from %s", mask_phone(str(staff.phone)))
        return str(refusal)
    if visit.acknowledged_by_id != staff.user_id:
        return texts.taken_by_someone_else(visit)
    return texts.taken_by_you(visit)
