from django.contrib import admin
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin

from helpline.welfare.models import AreaWorker, Campaign, VisitEscalation, VisitTask, VulnerablePerson, WelfareCheck
from helpline.welfare.register import VulnerablePersonResource
from helpline.welfare.selectors import people_matching


@admin.register(VulnerablePerson)
class VulnerablePersonAdmin(ImportExportModelAdmin):
    """Import shows django-import-export's preview, with each row's errors, before anything is stored."""

    resource_classes = [VulnerablePersonResource]
    list_display = ("full_name", "municipality", "settlement", "needs", "number_needs_checking", "last_checked_at")
    list_filter = ("municipality", "number_needs_checking", "legal_basis", "is_active")
    # Names and numbers are encrypted: the search box finds names by word and numbers by their keyed hash
    # (selectors.people_matching), and settlements, stored in clear, by any part.
    search_fields = ("settlement",)
    search_help_text = _("Words of a name, a whole phone number or a settlement.")
    readonly_fields = ("last_checked_by", "last_checked_at", "created_at", "updated_at")

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return queryset.filter(people_matching(search_term) | Q(settlement__icontains=search_term.strip())), False

    def save_model(self, request, obj, form, change):
        obj.last_checked_by, obj.last_checked_at = request.user, timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("title", "status", "is_drill", "started_at", "started_by")
    readonly_fields = ("started_at", "finished_at", "started_by")


@admin.register(WelfareCheck)
class WelfareCheckAdmin(admin.ModelAdmin):
    list_display = ("campaign", "person", "state", "send_at", "answered_via")
    list_filter = ("state", "campaign")
    raw_id_fields = ("person", "case")


class VisitEscalationInline(admin.TabularInline):
    """The visit's timeline: each step of its ladder, whom it told and in which SMS (several visits share one)."""

    model = VisitEscalation
    fields = ("at", "step", "loop", "action", "reached", "recipient", "told_at", "notification")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(VisitTask)
class VisitTaskAdmin(admin.ModelAdmin):
    list_display = ("pk", "status", "assigned_to", "escalation_step", "escalation_due_at")
    list_filter = ("status",)
    inlines = [VisitEscalationInline]


admin.site.register(AreaWorker)
