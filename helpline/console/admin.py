"""The admin's case and caller pages under the one rule for contact details (helpline.casework.contact_details).

helpline.cases registers them without any contact details, because the case domain may not import the roster that
says who is a supervisor; this surface, like the console and the API, applies the rule and adds them back.
"""
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from helpline.cases import admin as case_admin
from helpline.cases.models import Caller, Case
from helpline.cases.services import record_read
from helpline.casework.contact_details import MASKED_EXPLANATION, contact_details, may_see_contact_details
from helpline.roster.selectors import is_supervisor

admin.site.unregister(Case)
admin.site.unregister(Caller)


@admin.register(Case)
class CaseAdmin(case_admin.CaseAdmin):
    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The admin's case page shows the conversation and contact details: a read, logged like the console's."""
        case = self.get_object(request, object_id)
        if case is not None and request.method == "GET" and self.has_view_or_change_permission(request, case):
            record_read(case, reader=request.user, via="admin")
        return super().change_view(request, object_id, form_url, extra_context)

    def _may_see(self, request, case: Case | None) -> bool:
        return is_supervisor(request.user) if case is None else may_see_contact_details(request.user, case)

    def get_exclude(self, request, obj=None):
        excluded = list(super().get_exclude(request, obj) or [])
        if self._may_see(request, obj):
            excluded = [field for field in excluded if field not in case_admin.CONTACT_FIELDS]
        return excluded

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "caller_number"] if self._may_see(request, obj) else [*fields, "masked_contact"]

    @admin.display(description=_("caller's number"))
    def caller_number(self, case: Case) -> str:
        """Shown only to those who may see contact details (get_readonly_fields): the caller field shows it masked."""
        return str(case.caller.phone) if case.caller_id else "-"

    @admin.display(description=_("contact"))
    def masked_contact(self, case: Case) -> str:
        details = contact_details(case, None)  # nobody: always the masked form
        shown = " · ".join(value for value in (details.phone, details.name, details.email) if value)
        return f"{shown or '-'} ({MASKED_EXPLANATION})"


@admin.register(Caller)
class CallerAdmin(case_admin.CallerAdmin):
    """A caller's number and name, searchable by number: supervisors only."""

    def has_view_permission(self, request, obj=None) -> bool:
        return is_supervisor(request.user) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_supervisor(request.user) and super().has_change_permission(request, obj)

    def has_module_permission(self, request) -> bool:
        return is_supervisor(request.user) and super().has_module_permission(request)
