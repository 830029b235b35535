"""Filters for the staff case list (django-filter)."""
import datetime as dt

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
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


class CaseFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=CaseStatus.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    category = django_filters.CharFilter()
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    assigned_to = django_filters.CharFilter(method="filter_assigned_to", help_text="A staff user id, or `me`.")
    escalated = django_filters.BooleanFilter(field_name="is_escalated")
    drill = django_filters.BooleanFilter(field_name="is_drill", help_text="Rehearsal cases from `manage.py drill`.")
    overdue = django_filters.BooleanFilter(field_name="is_overdue", help_text="The acknowledgement deadline passed.")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    search = django_filters.CharFilter(
        method="filter_search",
        help_text="Reference, or words of the messages (any case, script or accents; a word's beginning is enough).",
    )
    ordering = django_filters.OrderingFilter(
        fields=(("urgency", "priority"), ("created_at", "created"), ("acknowledge_by", "deadline"))
    )

    class Meta:
        model = Case
        fields: list[str] = []

    def filter_assigned_to(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        if value == "me":
            return cases.filter(assigned_to=self.request.user)
        return cases.filter(assigned_to_id=value) if value.isdigit() else cases.none()

    def filter_search(self, cases: QuerySet[Case], name: str, value: str) -> QuerySet[Case]:
        value = value.strip()
        if not value:
            return cases
        return cases.filter(cases_matching(value))
