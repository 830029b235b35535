"""Filters for the staff case list (django-filter)."""
import datetime as dt

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.constants import EMPTY_VALUES
from django_filters.fields import IsoDateTimeField

from helpline.cases.models import Case, CaseStatus, Channel, Priority
from helpline.cases.search import cases_matching


def as_utc(value: dt.datetime) -> dt.datetime:
    """Any offset a client sends, as UTC; a moment outside what the database stores is a field error, not a 500."""
    try:
        return value.astimezone(dt.UTC) if value.tzinfo else value
    except OverflowError:
        raise ValidationError("Date and time out of range.", code="invalid") from None


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        return as_utc(parsed) if parsed is not None else None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class ChoicesField(django_filters.fields.MultipleChoiceField):
    """An empty value (`?priority=`) is "not given", as it is for every other filter, not a wrong choice."""

    def clean(self, value):
        return super().clean([choice for choice in value or [] if choice != ""])


class ChoicesFilter(django_filters.MultipleChoiceFilter):
    field_class = ChoicesField


class YesNoField(forms.NullBooleanField):
    """true or false (1 or 0); empty is "not given". Anything else is a 400, not quietly "not given" as Django's
    NullBooleanField reads "null" or a typo: a client asking for drill=ture must not get every case."""

    widget = forms.TextInput  # the value as sent (NullBooleanField's select turns anything unknown into None)

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in (True, "true", "True", "1"):
            return True
        if value in (False, "false", "False", "0"):
            return False
        raise ValidationError(_("Enter true or false."), code="invalid")


class YesNoFilter(django_filters.BooleanFilter):
    field_class = YesNoField


class StableOrderingFilter(django_filters.OrderingFilter):
    """The client's order, then the case's age and id: many cases share a priority or have no deadline, and with
    ties left to PostgreSQL a page could repeat some and skip others (a critical case fell between two pages)."""

    TIE_BREAKERS = ("created_at", "pk")

    def filter(self, qs, value):
        ordered = super().filter(qs, value)
        if value in EMPTY_VALUES:
            return ordered  # the list's own order, which ends with its own tie-breakers
        return ordered.order_by(*ordered.query.order_by, *self.TIE_BREAKERS)


class CaseFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices=CaseStatus.choices)
    priority = ChoicesFilter(choices=Priority.choices)
    category = django_filters.CharFilter()
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    assigned_to = django_filters.CharFilter(method="filter_assigned_to", help_text="A staff user id, or `me`.")
    escalated = YesNoFilter(field_name="is_escalated")
    drill = YesNoFilter(field_name="is_drill", help_text="Rehearsal cases from `manage.py drill`.")
    overdue = YesNoFilter(field_name="is_overdue", help_text="The acknowledgement deadline passed.")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    search = django_filters.CharFilter(
        method="filter_search",
        help_text="Reference, or words of the messages (any case, script or accents; a word's beginning is enough).",
    )
    ordering = StableOrderingFilter(
        fields=(("urgency", "priority"), ("created_at", "created"), ("acknowledge_by", "deadline"))
    )

    class Meta:
        model = Case
        fields: list[str] = []

    def filter_assigned_to(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        if value == "me":
            return cases.filter(assigned_to=self.request.user)
        return cases.filter(assigned_to_id=value) if value.isascii() and value.isdigit() else cases.none()

    def filter_search(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        value = value.strip()
        if not value:
            return cases
        return cases.filter(cases_matching(value))
