"""Filters for the staff case list (django-filter)."""
import django_filters
from django.db.models import Q, QuerySet

from helpline.models import Case, CaseStatus, Channel, Priority


class CaseFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=CaseStatus.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    category = django_filters.CharFilter()
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    assigned_to = django_filters.CharFilter(method="filter_assigned_to", help_text="A staff user id, or `me`.")
    escalated = django_filters.BooleanFilter(field_name="is_escalated")
    overdue = django_filters.BooleanFilter(field_name="is_overdue", help_text="The acknowledgement deadline passed.")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    search = django_filters.CharFilter(method="filter_search", help_text="Reference or message text.")
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
        matching = Case.objects.filter(messages__body__icontains=value).values("pk")
        return cases.filter(Q(reference__icontains=value) | Q(pk__in=matching))
