"""Home visits as timed sessions (as lone-worker services run them), the worker's check-out and duress PINs, and
incidents of aggression against staff."""
from __future__ import annotations

import copy

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from helpline.cases.models import Case
from helpline.roster.models import StaffProfile


class VisitStatus(models.TextChoices):
    ACTIVE = "active", _("In progress")
    CHECKED_OUT = "checked_out", _("Checked out")
    OVERDUE = "overdue", _("Overdue")
    ALARM = "alarm", _("Alarm")
    ENDED = "ended", _("Ended by a supervisor")


# A visit in one of these is still someone's worry: the worker is (or may be) still inside.
OPEN_VISIT_STATUSES = (VisitStatus.ACTIVE, VisitStatus.OVERDUE, VisitStatus.ALARM)


class Visit(models.Model):
    """One home visit. Like a case's ladder, the next escalation step's due time and number live on the row, and
    the ladder's steps are copied onto it when it starts to climb."""

    worker = models.ForeignKey(StaffProfile, verbose_name=_("worker"), on_delete=models.PROTECT, related_name="visits")
    case = models.ForeignKey(
        Case, verbose_name=_("case"), null=True, blank=True, on_delete=models.SET_NULL, related_name="visits"
    )
    # Shown only to supervisors and the worker; emptied some days after the visit ends (purge_visit_addresses).
    address = models.CharField(_("address"), max_length=300, blank=True)
    address_purged_at = models.DateTimeField(_("address removed"), null=True, blank=True)
    colleague = models.ForeignKey(
        StaffProfile, verbose_name=_("colleague"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="visits_as_colleague",
    )  # fmt: skip
    status = models.CharField(
        _("status"), max_length=20, choices=VisitStatus.choices, default=VisitStatus.ACTIVE, db_index=True
    )
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    expected_end_at = models.DateTimeField(_("expected end"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True, db_index=True)
    started_via = models.CharField(_("started via"), max_length=20, blank=True)
    # Raised with the duress PIN: the worker's own screens show a normal check-out (someone may be watching).
    is_duress = models.BooleanField(_("duress"), default=False)
    alarm_raised_at = models.DateTimeField(_("alarm raised"), null=True, blank=True)
    # The duress PIN given to "extend" the visit: the end the worker's own screens show, as if it were extended,
    # for as long as the alarm sounds. Without it a reload showed the visit over, to whoever made them extend it.
    pretended_end_at = models.DateTimeField(_("end shown to the worker"), null=True, blank=True)
    escalation_due_at = models.DateTimeField(_("escalation due"), null=True, blank=True, db_index=True)
    escalation_step = models.PositiveIntegerField(_("escalation steps run"), default=0)
    escalation_loop = models.PositiveIntegerField(_("escalation loops"), default=0)
    # Which run of the ladder this is (an extension restarts the overdue clock, an alarm starts its own ladder):
    # in the steps' message keys, so a later run is not taken for a copy of an earlier one with the same steps.
    # A database default for the version before, which inserts visits without it while a deploy runs.
    escalation_run = models.PositiveIntegerField(_("escalation runs"), default=0, db_default=0)
    escalation_ladder = models.JSONField(_("escalation steps"), default=dict, blank=True, editable=False)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("acknowledged by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )  # fmt: skip

    class Meta:
        verbose_name = _("home visit")
        verbose_name_plural = _("home visits")
        ordering = ["-started_at"]
        constraints = [
            # A duress alarm stays open for supervisors while, to the worker's phone, the visit is over: the worker
            # (or whoever holds the phone) may start another one without learning anything.
            models.UniqueConstraint(
                fields=["worker"], condition=models.Q(status__in=["active", "overdue", "alarm"], is_duress=False),
                name="one_open_visit_per_worker",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.worker} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_VISIT_STATUSES

    def as_the_worker_sees_it(self) -> Visit:
        """A duress alarm, as the worker's own screens show it (someone may be standing behind them): the visit
        "extended" while that pretence lasts, otherwise a check-out. An unsaved copy; any other visit as it is."""
        if not self.is_duress:
            return self
        seen = copy.copy(self)
        seen.is_duress, seen.escalation_step, seen.acknowledged_at, seen.acknowledged_by = False, 0, None, None
        if self.status == VisitStatus.ALARM and self.pretended_end_at is not None:
            late = self.pretended_end_at <= timezone.now()
            seen.status = VisitStatus.OVERDUE if late else VisitStatus.ACTIVE
            seen.expected_end_at, seen.ended_at = self.pretended_end_at, None
        else:
            seen.status, seen.ended_at = VisitStatus.CHECKED_OUT, self.ended_at or self.alarm_raised_at
        return seen


class VisitEventKind(models.TextChoices):
    STARTED = "started", _("Started")
    EXTENDED = "extended", _("Extended")
    CHECKED_OUT = "checked_out", _("Checked out")
    ESCALATED = "escalated", _("Escalated")
    ALARM = "alarm", _("Alarm raised")
    ACKNOWLEDGED = "acknowledged", _("Taken by a supervisor")
    ENDED = "ended", _("Ended by a supervisor")
    SAFE_CONFIRMED = "safe_confirmed", _("Worker confirmed safe on a call")
    REFUSED = "refused", _("Command refused")
    ADDRESS_PURGED = "address_purged", _("Address removed")


class VisitEvent(models.Model):
    """The visit's own timeline: what the board and the incident review read. Never the address."""

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(_("time"), default=timezone.now)
    kind = models.CharField(_("event"), max_length=20, choices=VisitEventKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("visit event")
        verbose_name_plural = _("visit events")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.visit_id} {self.kind}"


class StaffSafety(models.Model):
    """A worker's personal PINs: the check-out PIN ends a visit, the duress PIN seems to and raises the alarm.
    Stored hashed, like passwords: whoever reads the database must not learn them."""

    staff = models.OneToOneField(StaffProfile, on_delete=models.CASCADE, related_name="safety")
    checkout_pin_hash = models.CharField(max_length=128, blank=True)
    duress_pin_hash = models.CharField(max_length=128, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("visit PINs")
        verbose_name_plural = _("visit PINs")

    def __str__(self) -> str:
        return str(self.staff)


class IncidentKind(models.TextChoices):
    VERBAL = "verbal", _("Verbal aggression or insults")
    THREAT = "threat", _("Threat")
    PHYSICAL = "physical", _("Physical attack")
    PROPERTY = "property", _("Damage to property")
    STALKING = "stalking", _("Following or harassment")
    OTHER = "other", _("Other")


class StaffIncident(models.Model):
    """Aggression or a threat against a staff member: the record the monthly report to the centre and the
    professional association is made of."""

    kind = models.CharField(_("what happened"), max_length=20, choices=IncidentKind.choices)
    occurred_at = models.DateTimeField(_("when"))
    place = models.CharField(_("where"), max_length=200, help_text=_("A place, not a home address: 'client's home, "
                                                                      "Centar municipality', 'centre's office'."))
    description = models.TextField(_("what was said or done"))
    perpetrator = models.CharField(_("by whom"), max_length=200, help_text=_("For example 'client's partner'."))
    staff_affected = models.ForeignKey(
        StaffProfile, verbose_name=_("staff member affected"), on_delete=models.PROTECT, related_name="incidents"
    )
    case = models.ForeignKey(
        Case, verbose_name=_("case"), null=True, blank=True, on_delete=models.SET_NULL, related_name="staff_incidents"
    )
    visit = models.ForeignKey(
        Visit, verbose_name=_("visit"), null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    police_informed = models.BooleanField(_("police informed"), default=False)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("reported by"), on_delete=models.PROTECT, related_name="+"
    )
    reported_at = models.DateTimeField(_("reported"), default=timezone.now)

    class Meta:
        verbose_name = _("incident against staff")
        verbose_name_plural = _("incidents against staff")
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.occurred_at:%Y-%m-%d}"
