"""Supervisors edit triage rules and the roster here, and see the coming week's gaps."""
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _

from helpline.roster.models import Absence, RotationPattern, RotationSlot, Shift, StaffProfile
from helpline.roster.services import coming_week_gaps
from triage.models import TriageRule


@admin.register(TriageRule)
class TriageRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "priority", "can_be_negated", "is_active", "updated_at"]
    list_filter = ["category", "priority", "is_active"]
    search_fields = ["name", "terms"]


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    list_display = ["__str__", "role", "phone", "languages", "skills", "max_open_cases", "is_active"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]


class RotationSlotInline(admin.TabularInline):
    model = RotationSlot
    extra = 1


@admin.register(RotationPattern)
class RotationPatternAdmin(admin.ModelAdmin):
    list_display = ["name", "starts_on", "cycle_days", "is_active"]
    inlines = [RotationSlotInline]


@admin.register(Shift)
class ShiftAdmin(admin.ModelAdmin):
    list_display = ["staff", "starts_at", "ends_at", "pattern", "note"]
    list_filter = ["staff__role", "pattern"]
    date_hierarchy = "starts_at"

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
class AbsenceAdmin(admin.ModelAdmin):
    list_display = ["staff", "starts_at", "ends_at", "reason"]
