"""Supervisors edit triage rules and the roster here, see the coming week's gaps, and read each change's history
(who, when, before and after: the History button on every rule, staff profile, rotation, shift and absence)."""
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from helpline.access import second_factor
from helpline.roster.models import Absence, RotationPattern, RotationSlot, Shift, StaffProfile
from helpline.roster.services import coming_week_gaps
from triage.models import TriageRule


@admin.register(TriageRule)
class TriageRuleAdmin(SimpleHistoryAdmin):
    list_display = ["name", "category", "priority", "can_be_negated", "is_active", "updated_at"]
    list_filter = ["category", "priority", "is_active"]
    search_fields = ["name", "terms"]


@admin.register(StaffProfile)
class StaffProfileAdmin(SimpleHistoryAdmin):
    list_display = ["__str__", "role", "phone", "languages", "skills", "max_open_cases", "is_active"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]
    actions = ["reset_second_factor"]

    @admin.action(description=_("Reset the second factor (the person signs in again and sets up a new one)"))
    def reset_second_factor(self, request, queryset) -> None:
        for staff in queryset.select_related("user"):
            second_factor.reset_second_factor(staff, by=request.user)
        self.message_user(request, _("Second factor reset for %(count)d people.") % {"count": queryset.count()})


class RotationSlotInline(admin.TabularInline):
    model = RotationSlot
    extra = 1


@admin.register(RotationPattern)
class RotationPatternAdmin(SimpleHistoryAdmin):
    list_display = ["name", "starts_on", "cycle_days", "is_active"]
    inlines = [RotationSlotInline]


@admin.register(Shift)
class ShiftAdmin(SimpleHistoryAdmin):
    list_display = ["staff", "starts_at", "ends_at", "pattern", "note"]
    list_filter = ["staff__role", "pattern"]
    date_hierarchy = "starts_at"

    def save_model(self, request, obj, form, change) -> None:
        # A swap made here, like one made in the console: the rotation's hourly generation must not put it back.
        if change and {"staff", "starts_at", "ends_at"} & set(form.changed_data):
            obj.changed_by_hand = True
        super().save_model(request, obj, form, change)

    def get_urls(self):
        gaps = path("gaps/", self.admin_site.admin_view(self.gaps_view), name="triage_shift_gaps")
        return [gaps, *super().get_urls()]

    def gaps_view(self, request):
        context = {
            **self.admin_site.each_context(request),
            "title": _("Gaps in the coming week"),
            "gaps": coming_week_gaps(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/triage/gaps.html", context)


@admin.register(Absence)
class AbsenceAdmin(SimpleHistoryAdmin):
    list_display = ["staff", "starts_at", "ends_at", "reason"]
