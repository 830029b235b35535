"""Who may use the staff API: the same tests the console applies (roster.selectors), so both answer alike."""
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from helpline.roster.selectors import is_staff_member, is_supervisor


class IsStaffMember(BasePermission):
    """A signed-in account without a staff profile (an admin-only account, say) is nobody on a case: 403."""

    message = _("Only the helpline's staff may do this.")

    def has_permission(self, request, view) -> bool:
        return is_staff_member(request.user)


class IsSupervisor(BasePermission):
    message = _("Only a supervisor may do this.")

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and is_supervisor(request.user))
