from django.contrib import admin

from helpline.visits.models import StaffIncident, Visit, VisitEvent


class VisitEventInline(admin.TabularInline):
    model = VisitEvent
    extra = 0
    readonly_fields = ["at", "kind", "actor", "details"]
    can_delete = False


@admin.register(Visit)
class VisitAdmin(admin.ModelAdmin):
    list_display = ["worker", "case", "status", "started_at", "expected_end_at", "ended_at", "escalation_step"]
    list_filter = ["status"]
    readonly_fields = ["escalation_due_at", "escalation_step", "escalation_loop", "acknowledged_at", "acknowledged_by",
                       "alarm_raised_at", "is_duress", "address_purged_at"]  # fmt: skip
    raw_id_fields = ["worker", "case", "colleague"]
    inlines = [VisitEventInline]


@admin.register(StaffIncident)
class StaffIncidentAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "kind", "staff_affected", "case", "police_informed"]
    list_filter = ["kind", "police_informed"]
    raw_id_fields = ["staff_affected", "case", "visit"]
