"""Admin for legal holds, the record of anonymisations and the read log: supervisors only, and every change through
helpline.privacy.services, so it reaches the case's timeline."""
from django.contrib import admin

from helpline.cases.models import CaseRead
from helpline.privacy import services
from helpline.privacy.models import Anonymisation, LegalHold
from helpline.roster.selectors import is_supervisor


class SupervisorsOnly(admin.ModelAdmin):
    def has_module_permission(self, request) -> bool:
        return is_supervisor(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_supervisor(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LegalHold)
class LegalHoldAdmin(SupervisorsOnly):
    list_display = ["case", "reason", "set_by", "set_at", "released_at", "released_by"]
    list_filter = [("released_at", admin.EmptyFieldListFilter)]
    search_fields = ["case__reference", "reason"]
    raw_id_fields = ["case"]
    fields = ["case", "reason"]

    def has_add_permission(self, request) -> bool:
        return is_supervisor(request.user)

    def save_model(self, request, obj, form, change) -> None:
        # The form already requires a reason and one hold per case; the service writes the timeline.
        services.set_legal_hold(obj.case, by=request.user, reason=obj.reason)


@admin.register(Anonymisation)
class AnonymisationAdmin(SupervisorsOnly):
    list_display = ["case", "basis", "rule", "by", "anonymised_at"]
    list_filter = ["basis"]
    search_fields = ["case__reference"]


@admin.register(CaseRead)
class CaseReadAdmin(SupervisorsOnly):
    """The read log: who opened which case's personal data, where, and when."""

    list_display = ["read_at", "reader", "case", "via"]
    list_filter = ["via"]
    search_fields = ["case__reference", "reader__username"]
    date_hierarchy = "read_at"
    list_select_related = ["reader", "case"]
