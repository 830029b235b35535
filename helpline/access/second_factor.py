"""The second factor (django-otp): an authenticator app's six-digit code (TOTP), with single-use recovery codes.

Required for supervisors on the board, the roster and the supervisor API, and for everyone in the admin
(SECOND_FACTOR_REQUIRED); optional for workers, and once a person has one it is asked for on every sign-in.
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext as _
from django_otp import devices_for_user, match_token, user_has_device
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from helpline.access.revocation import end_all_access
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import is_supervisor

RECOVERY_CODES = 10


def has_second_factor(user) -> bool:
    return user_has_device(user, confirmed=True)


def must_have_second_factor(user) -> bool:
    """Supervisors (and superusers) must set one up before they may use what only they can use."""
    return settings.SECOND_FACTOR_REQUIRED and is_supervisor(user)


def pending_authenticator(user) -> TOTPDevice:
    """The authenticator being set up: its key is shown until the person confirms a first code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=_("Authenticator app"), confirmed=False)


@transaction.atomic
def confirm_authenticator(user, code: str) -> tuple[TOTPDevice, list[str]] | None:
    """Confirms the pending authenticator with a first code; returns it and fresh recovery codes, or None."""
    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
    if device is None or not device.verify_token(code.strip()):
        return None
    TOTPDevice.objects.filter(user=user, confirmed=True).delete()  # one authenticator at a time
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return device, new_recovery_codes(user)


@transaction.atomic
def new_recovery_codes(user) -> list[str]:
    """Ten single-use codes for a lost phone; earlier ones stop working."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name="recovery", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def device_for_code(user, code: str) -> Device | None:
    """The device that accepts this code (an authenticator code, or a recovery code, which is used up)."""
    code = "".join(code.split())
    return match_token(user, code) if code else None


@transaction.atomic
def reset_second_factor(staff: StaffProfile, *, by) -> None:
    """A supervisor's reset for someone who lost their phone and codes: every device goes, and so does every
    session and token, so the person signs in again and sets up a new authenticator."""
    if not is_supervisor(by):
        raise PermissionDenied(_("Only a supervisor may do this."))
    for device in devices_for_user(staff.user, confirmed=None):
        device.delete()
    end_all_access(staff.user)
