"""Staff profiles, rotation patterns, shifts and absences: who works when.

The tables were first made by the triage app, and these models keep its app label (`triage_staffprofile`, ...), so
moving the code here changed no table, migration or admin address. Migrations stay in triage/migrations.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from helpline.cases.encryption import EncryptedPhoneNumberField, phone_index, with_index_fields


class Role(models.TextChoices):
    WORKER = "worker", _("Social worker")
    SUPERVISOR = "supervisor", _("Supervisor")


class StaffProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="staff_profile"
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.WORKER)
    phone = EncryptedPhoneNumberField(_("phone"), blank=True)
    # The number's keyed hash: an SMS from a staff phone is recognised without the number stored in clear.
    phone_index = models.CharField(max_length=32, blank=True, db_index=True, editable=False)
    languages = models.JSONField(_("languages"), default=list, blank=True, help_text=_('For example ["bs", "en"].'))
    skills = models.JSONField(
        _("skills"),
        default=list,
        blank=True,
        help_text=_('Categories this person is trained for, e.g. ["child_protection"].'),
    )
    max_open_cases = models.PositiveIntegerField(_("maximum open cases"), default=8)
    is_active = models.BooleanField(_("active"), default=True)
    last_assigned_at = models.DateTimeField(_("last assigned"), null=True, blank=True)
    # When something sent to this person's phone last failed to arrive (an SMS undelivered or refused for good, a
    # call that could not be placed); cleared when something arrives or the phone is heard from. For an hour after
    # it, assignment passes over such a person while anyone else can take the case, and the board shows it.
    phone_failing_since = models.DateTimeField(_("phone last failed"), null=True, blank=True, editable=False)
    # Who changed what and when (the admin's History): a rota or a role rewritten leaves a trace.
    history = HistoricalRecords(excluded_fields=["last_assigned_at", "phone_failing_since"])

    class Meta:
        app_label = "triage"
        verbose_name = _("staff profile")
        verbose_name_plural = _("staff profiles")

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.get_username()

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.phone_index = phone_index(self.phone)
        kwargs["update_fields"] = with_index_fields(kwargs.get("update_fields"), {"phone": "phone_index"})
        super().save(*args, **kwargs)

    @property
    def is_supervisor(self) -> bool:
        return self.role == Role.SUPERVISOR


class RotationPattern(models.Model):
    """A repeating roster: a cycle of days, each with who works from when to when (local time)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    starts_on = models.DateField(_("first day of the cycle"))
    cycle_days = models.PositiveIntegerField(_("days in the cycle"), default=7)
    is_active = models.BooleanField(_("active"), default=True)
    history = HistoricalRecords()

    class Meta:
        app_label = "triage"
        verbose_name = _("rotation pattern")
        verbose_name_plural = _("rotation patterns")

    def __str__(self) -> str:
        return self.name


class RotationSlot(models.Model):
    """One shift in a rotation. An end time at or before the start time ends on the next day."""

    pattern = models.ForeignKey(RotationPattern, on_delete=models.CASCADE, related_name="slots")
    staff = models.ForeignKey(StaffProfile, verbose_name=_("staff member"), on_delete=models.CASCADE)
    day_in_cycle = models.PositiveIntegerField(_("day in the cycle"), help_text=_("0 is the cycle's first day."))
    start_time = models.TimeField(_("starts"))
    end_time = models.TimeField(_("ends"))
    # Days whose shift from this slot a supervisor removed by hand: the hourly generation does not put it back.
    # A database default for the version before, which inserts slots without it while a deploy runs.
    days_removed = models.JSONField(default=list, db_default=[], blank=True, editable=False)
    history = HistoricalRecords()

    class Meta:
        app_label = "triage"
        verbose_name = _("rotation slot")
        verbose_name_plural = _("rotation slots")
        ordering = ["day_in_cycle", "start_time"]

    def __str__(self) -> str:
        return f"{self.pattern}: {self.day_in_cycle} {self.start_time}-{self.end_time}"


class Shift(models.Model):
    """Someone on duty from a moment to a moment. Generated from rotations or entered by hand."""

    staff = models.ForeignKey(
        StaffProfile, verbose_name=_("staff member"), on_delete=models.CASCADE, related_name="shifts"
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    pattern = models.ForeignKey(RotationPattern, null=True, blank=True, on_delete=models.SET_NULL, editable=False)
    # Which slot on which day a generated shift comes from: the shift follows its slot when a supervisor edits the
    # rotation (another person, other hours), and goes when the slot does. Empty for shifts entered by hand.
    slot = models.ForeignKey(
        "RotationSlot", null=True, blank=True, on_delete=models.SET_NULL, editable=False, related_name="shifts"
    )
    slot_day = models.DateField(null=True, blank=True, editable=False)
    # A generated shift a supervisor changed by hand (a swap): the rotation never changes it back.
    changed_by_hand = models.BooleanField(default=False, db_default=False, editable=False)
    note = models.CharField(_("note"), max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        app_label = "triage"
        verbose_name = _("shift")
        verbose_name_plural = _("shifts")
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["starts_at", "ends_at"], name="shift_window")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="shift_ends_after_start"
            ),
            # What identifies a generated shift. Not (staff, starts_at, pattern): when two people whose slots start
            # together are swapped, one of them holds both shifts for a moment while the roster follows the slots.
            models.UniqueConstraint(
                fields=["slot", "slot_day"], condition=models.Q(slot__isnull=False), name="one_shift_per_slot_and_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.staff} {self.starts_at:%Y-%m-%d %H:%M}"


class Absence(models.Model):
    """A one-off override: sick leave, leave, or the giving side of a swap. It takes precedence over shifts."""

    staff = models.ForeignKey(
        StaffProfile, verbose_name=_("staff member"), on_delete=models.CASCADE, related_name="absences"
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        app_label = "triage"
        verbose_name = _("absence")
        verbose_name_plural = _("absences")
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="absence_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.staff} {self.starts_at:%Y-%m-%d}"
