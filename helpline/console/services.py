"""What the console does that is its own: a supervisor's changes to the roster. Logging in is helpline.access;
actions on a case are helpline.casework.actions, shared with the staff API."""
from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from helpline.roster.models import Shift, StaffProfile
from helpline.roster.selectors import clashes_with_the_rotation, is_supervisor
from helpline.roster.services import remove_shift_from_roster

# --- The roster -----------------------------------------------------------------------------------------------


def _require_supervisor(user: AbstractBaseUser) -> None:
    if not is_supervisor(user):
        raise PermissionDenied(_("Only a supervisor may do this."))


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
    if clashes_with_the_rotation(shift, staff.pk, starts_at):
        raise ValueError(_("This person already has a shift starting at that time."))
    # Saved, not updated in the database directly: the audit trail (django-simple-history) records a save, with
    # who made it, and a queryset update would leave the change out of it.
    shift.staff, shift.starts_at, shift.ends_at, shift.note = staff, starts_at, ends_at, note
    shift.changed_by_hand = True  # a swap: the rotation's hourly generation must not put it back
    shift._history_user = by
    try:
        with transaction.atomic():
            shift.save(update_fields=["staff", "starts_at", "ends_at", "note", "changed_by_hand"])
    except IntegrityError:
        shift.refresh_from_db()
        raise ValueError(_("This person already has a shift starting at that time.")) from None
    return shift


def remove_shift(shift: Shift, *, by: AbstractBaseUser) -> None:
    _require_supervisor(by)
    remove_shift_from_roster(shift)


