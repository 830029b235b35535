"""What the privacy app keeps of its own: legal holds on cases and the record of each anonymisation.

Both are one row per case, beside the case rather than on it, so the case domain knows nothing of retention.
"""
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from helpline.cases.models import Case


class LegalHold(models.Model):
    """A case that must be kept whatever its retention says (court proceedings, a police request, an inspection):
    neither the daily anonymisation nor a citizen's erasure request touches it while the hold stands."""

    case = models.OneToOneField(Case, verbose_name=_("case"), on_delete=models.CASCADE, related_name="legal_hold")
    reason = models.CharField(_("reason"), max_length=500)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("set by"), on_delete=models.PROTECT, related_name="+"
    )
    set_at = models.DateTimeField(_("set"))
    released_at = models.DateTimeField(_("released"), null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("released by"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )  # fmt: skip
    release_reason = models.CharField(_("reason for release"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("legal hold")
        verbose_name_plural = _("legal holds")

    def __str__(self) -> str:
        return f"{self.case} ({_('released') if self.released_at else _('in force')})"

    @property
    def is_in_force(self) -> bool:
        return self.released_at is None


class Basis(models.TextChoices):
    RETENTION = "retention", _("Retention period ended")
    REQUEST = "request", _("The person's request")


class Anonymisation(models.Model):
    """A case whose personal data was removed: when, why, under which rule or whose decision. Its presence is what
    makes the daily job idempotent and resumable: a case anonymised is never picked again."""

    case = models.OneToOneField(
        Case, verbose_name=_("case"), on_delete=models.CASCADE, related_name="anonymisation"
    )
    anonymised_at = models.DateTimeField(_("anonymised"))
    basis = models.CharField(_("basis"), max_length=20, choices=Basis.choices)
    rule = models.CharField(_("retention rule"), max_length=100, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("by"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )  # fmt: skip

    class Meta:
        verbose_name = _("anonymisation")
        verbose_name_plural = _("anonymisations")
        ordering = ["-anonymised_at"]

    def __str__(self) -> str:
        return f"{self.case} {self.basis}"
