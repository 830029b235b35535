"""Triage rules (data supervisors edit in the admin) and the categories a case can have.

The roster's models (staff, shifts) live in helpline.roster.models and are imported here so that Django registers
them under this app's label, where their tables and migrations have always been."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from helpline.cases.encryption import EncryptedTextField
from helpline.cases.models import Case, Priority
from helpline.roster.models import Absence, Role, RotationPattern, RotationSlot, Shift, StaffProfile


class Category(models.TextChoices):
    """Ours map onto Child Helpline International's categories."""

    DOMESTIC_VIOLENCE = "domestic_violence", _("Domestic violence")
    CHILD_PROTECTION = "child_protection", _("Child protection")
    SUICIDE_SELF_HARM = "suicide_self_harm", _("Suicide and self-harm")
    MENTAL_HEALTH = "mental_health", _("Mental health")
    ELDERLY_DISABILITY = "elderly_disability", _("Elderly and disabled people")
    MATERIAL_NEED = "material_need", _("Material need")
    ADDICTION = "addiction", _("Addiction")
    INFORMATION = "information", _("Information")
    OTHER = "other", _("Other")


class TriageRule(models.Model):
    """One pattern of how people write about a danger or a need, with the priority and category it suggests.

    Terms are written once, in lower-case Latin without diacritics; they match Cyrillic and diacritics too.
    Each line of `terms` is one phrase of word beginnings ("popi tablet" matches "popila sam sve tablete").
    """

    name = models.CharField(
        _("name"), max_length=120, unique=True, help_text=_("Shown to social workers as the reason.")
    )
    category = models.CharField(_("category"), max_length=40, choices=Category.choices)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices)
    terms = models.TextField(
        _("terms"),
        help_text=_(
            "One phrase per line, lower case, no diacritics. Each word matches the beginning of a word; "
            "start a word with = to match it whole; words of a phrase may have up to two words between them. "
            "'a|b' matches either; 'a + b' needs both anywhere in the message; 'a & b' needs both in one sentence."
        ),
    )
    can_be_negated = models.BooleanField(
        _("can be negated"),
        default=True,
        help_text=_("A negation just before the phrase ('ne', 'nije', 'not') cancels the match."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    history = HistoricalRecords()  # who changed a rule, when, and what it said before

    class Meta:
        verbose_name = _("triage rule")
        verbose_name_plural = _("triage rules")
        ordering = ["category", "name"]

    def __str__(self) -> str:
        return self.name

class TriageCorrection(models.Model):
    """A person changed what triage said about a case: the text triage read, its verdict and theirs.

    Staff corrections are labelled examples for the next training of the semantic model
    (`manage.py export_triage_corrections`). The text is the citizen's and the reason may name them, so both are
    encrypted, blanked when the case is anonymised (the labels stay, for how often triage is corrected), and the
    text is never quoted back as a "resembles" example (see triage.semantic.training.LabelledMessage).
    """

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="triage_corrections", verbose_name=_("case")
    )
    text = EncryptedTextField(_("text triaged"))
    predicted_priority = models.CharField(
        _("predicted priority"), max_length=10, choices=Priority.choices, blank=True
    )
    predicted_category = models.CharField(_("predicted category"), max_length=40, choices=Category.choices, blank=True)
    corrected_priority = models.CharField(_("corrected priority"), max_length=10, choices=Priority.choices)
    corrected_category = models.CharField(_("corrected category"), max_length=40, choices=Category.choices)
    reason = EncryptedTextField(_("reason"), blank=True)
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("by")
    )
    corrected_at = models.DateTimeField(_("corrected at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("triage correction")
        verbose_name_plural = _("triage corrections")
        ordering = ["corrected_at", "id"]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.predicted_priority}/{self.predicted_category} -> " \
            f"{self.corrected_priority}/{self.corrected_category}"


__all__ = [
    "Absence", "Category", "Role", "RotationPattern", "RotationSlot", "Shift", "StaffProfile", "TriageCorrection",
    "TriageRule",
]
