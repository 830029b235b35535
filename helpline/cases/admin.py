"""Admin for the case domain. The timeline is append-only, so it is shown read-only everywhere."""
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from helpline.cases.encryption import phone_index
from helpline.cases.intake import normalise_phone
from helpline.cases.models import Caller, Case, Message, TimelineEvent


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ["created_at", "direction", "channel", "body", "call_status", "recording_url", "delivery_status"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TimelineInline(admin.TabularInline):
    model = TimelineEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "actor_kind", "actor", "details"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


CONTACT_FIELDS = ["contact_name", "contact_phone", "contact_email", "safe_contact_note"]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["reference", "channel", "status", "priority", "category", "language", "assigned_to", "created_at"]
    list_filter = ["status", "priority", "channel", "language", "needs_callback"]
    search_fields = ["reference"]
    date_hierarchy = "created_at"
    inlines = [MessageInline, TimelineInline]
    # Status and assignment change only through the services, which write the timeline.
    readonly_fields = [
        "reference", "channel", "status", "priority", "category", "caller", "assigned_to", "created_at",
        "updated_at", "triaged_at", "resolved_at", "suspected_automated",
        "over_address_limit",
    ]  # fmt: skip
    # Contact details are not shown here: the rule for who sees them (helpline.casework.contact_details) lives above
    # the case domain, and helpline.console.admin extends this page with them under that rule.
    exclude = ["citizen_token_hash", *CONTACT_FIELDS]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Caller)
class CallerAdmin(admin.ModelAdmin):
    list_display = ["masked_phone", "name", "has_opted_out", "created_at"]
    # Numbers are encrypted: the search box takes a whole number and looks it up by its blind index.
    search_fields = ["phone_index"]
    search_help_text = _("A whole phone number, in any usual form (061 123 456, +387 61 123 456).")

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        number = normalise_phone(search_term)
        return queryset.filter(phone_index=phone_index(number) if number else "-"), False


@admin.register(TimelineEvent)
class TimelineEventAdmin(admin.ModelAdmin):
    list_display = ["case", "kind", "actor_kind", "actor", "created_at"]
    list_filter = ["kind", "actor_kind"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
