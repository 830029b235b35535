"""What the console does that is its own: login throttling, and a supervisor's changes to the roster. Actions on
a case are helpline.casework.actions, shared with the staff API."""
from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from helpline.roster.models import Shift, StaffProfile
from helpline.roster.selectors import is_supervisor

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


