"""What a staff member does in the console. Each function checks the role rules (the same as the staff API's)
and calls the case, notification or roster service that writes the change and its timeline."""
from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from helpline import selectors as case_selectors
from helpline import services as case_services
from helpline.models import OPEN_STATUSES, Case, CaseStatus, Message
from notifications import services as notification_services
from triage.models import Shift, StaffProfile

# --- Logging in ---------------------------------------------------------------------------------------------


def _login_key(ip: str, username: str) -> str:
    # Hashed, so any username (spaces, long text) makes a valid cache key and none is stored in clear.
    digest = hashlib.sha256(f"{ip}|{username.strip().lower()}".encode()).hexdigest()
    return f"console-login-failures:{digest}"


def login_is_throttled(ip: str, username: str) -> bool:
    return cache.get(_login_key(ip, username), 0) >= settings.CONSOLE_LOGIN_ATTEMPTS


def record_failed_login(ip: str, username: str) -> None:
    key = _login_key(ip, username)
    # The window starts at the first failure and is not extended by later ones.
    if not cache.add(key, 1, timeout=settings.CONSOLE_LOGIN_WINDOW_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=settings.CONSOLE_LOGIN_WINDOW_SECONDS)


def clear_failed_logins(ip: str, username: str) -> None:
    cache.delete(_login_key(ip, username))


# --- Who may do what (the staff API's rules) ------------------------------------------------------------


def may_work_on(user: AbstractBaseUser, case: Case) -> bool:
    """Status changes, replies, notes and reclassification: the assigned worker or a supervisor."""
    return case_selectors.is_supervisor(user) or case.assigned_to_id == user.pk


def _require_work_on(user: AbstractBaseUser, case: Case) -> None:
    if not may_work_on(user, case):
        raise PermissionDenied(_("Only the assigned worker or a supervisor may do this."))


def _require_supervisor(user: AbstractBaseUser) -> None:
    if not case_selectors.is_supervisor(user):
        raise PermissionDenied(_("Only a supervisor may do this."))


# --- The queue ----------------------------------------------------------------------------------------------


def take_next_case(user: AbstractBaseUser) -> Case | None:
    """Give the worker the most urgent case nobody has, and count it as acknowledged: they chose to take it.

    Two workers pressing at once get two different cases: the candidate row is locked with SKIP LOCKED, so the
    second press passes over the case the first one is taking instead of waiting for it and failing.
    """
    with transaction.atomic():
        candidates = (
            case_selectors.with_urgency(Case.objects.filter(assigned_to__isnull=True, status__in=OPEN_STATUSES))
            .order_by("-urgency", "created_at", "pk")
            .select_for_update(skip_locked=True)
        )
        case = candidates.first()
        if case is None:
            return None
        return notification_services.acknowledge_case(case, by=user, via="console: take next")


# --- Actions on a case ----------------------------------------------------------------------------------------


def acknowledge(case: Case, *, by: AbstractBaseUser) -> Case:
    """Anyone who can see the case may take it while it is unassigned; otherwise its worker or a supervisor."""
    try:
        return notification_services.acknowledge_case(case, by=by, via="console")
    except notification_services.NotAllowed:
        raise PermissionDenied(_("This case is assigned to someone else.")) from None


def start_work(case: Case, *, by: AbstractBaseUser, reason: str = "") -> Case:
    _require_work_on(by, case)
    return case_services.change_case_status(case, CaseStatus.IN_PROGRESS, actor=by, reason=reason or "started work")


def resolve(case: Case, *, by: AbstractBaseUser, outcome: str) -> Case:
    _require_work_on(by, case)
    return case_services.change_case_status(case, CaseStatus.RESOLVED, actor=by, reason=outcome)


def reopen(case: Case, *, by: AbstractBaseUser, reason: str = "") -> Case:
    _require_work_on(by, case)
    target = CaseStatus.ASSIGNED if case.assigned_to_id else CaseStatus.TRIAGED
    return case_services.change_case_status(case, target, actor=by, reason=reason or "reopened")


def reply(case: Case, *, by: AbstractBaseUser, text: str) -> Message:
    """Sent through the case's channel by the notifications app, which also obeys the caller's opt-out."""
    _require_work_on(by, case)
    return notification_services.reply_to_citizen(case, text, by=by)


def add_note(case: Case, *, by: AbstractBaseUser, text: str) -> None:
    _require_work_on(by, case)
    case_services.add_note(case, text, by=by)


def reclassify(case: Case, *, by: AbstractBaseUser, priority: str, category: str, reason: str) -> Case:
    _require_work_on(by, case)
    return case_services.reclassify_case(case, priority=priority, category=category, reason=reason, by=by)


class CaseNotOpen(Exception):
    """A closed or resolved case must be reopened before it is given to someone."""


def reassign(case: Case, *, by: AbstractBaseUser, staff: StaffProfile) -> Case:
    """A supervisor gives the case to someone else; their acknowledgement clock starts (and they are told)."""
    _require_supervisor(by)
    if not case.is_open:
        raise CaseNotOpen(_("A closed or resolved case must be reopened first."))
    case = case_services.assign_case(case, staff.user, by=by, explanation="assigned by a supervisor")
    notification_services.start_acknowledgement_clock(case, staff)
    return case


# --- The roster -----------------------------------------------------------------------------------------------


def add_shift(
    *, by: AbstractBaseUser, staff: StaffProfile, starts_at: dt.datetime, ends_at: dt.datetime, note: str = ""
) -> Shift:
    _require_supervisor(by)
    return Shift.objects.create(staff=staff, starts_at=starts_at, ends_at=ends_at, note=note)


def move_shift(
    shift: Shift, *, by: AbstractBaseUser, staff: StaffProfile, starts_at: dt.datetime, ends_at: dt.datetime,
    note: str = "",
) -> Shift:  # fmt: skip
    _require_supervisor(by)
    try:
        with transaction.atomic():
            Shift.objects.filter(pk=shift.pk).update(staff=staff, starts_at=starts_at, ends_at=ends_at, note=note)
    except IntegrityError:
        raise ValueError(_("This person already has a shift starting at that time.")) from None
    shift.refresh_from_db()
    return shift


def remove_shift(shift: Shift, *, by: AbstractBaseUser) -> None:
    _require_supervisor(by)
    shift.delete()


