"""Shapes of the staff case API. Contact details are masked except for the assigned worker and supervisors
(helpline.casework.contact_details)."""
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from helpline.cases.models import Case, CaseStatus, Message, Priority, TimelineEvent, mask_phone
from helpline.casework.actions import Seen
from helpline.casework.contact_details import ContactDetails, contact_details
from notifications.models import Notification
from triage.models import Category


class StaffRefSerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "name"]

    def get_name(self, user) -> str:
        return user.get_full_name() or user.get_username()


class CaseListSerializer(serializers.ModelSerializer):
    caller = serializers.SerializerMethodField()
    assigned_to = StaffRefSerializer(read_only=True, allow_null=True)
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = Case
        fields = [
            "id", "reference", "channel", "status", "priority", "category", "language", "caller", "assigned_to",
            "created_at", "acknowledge_by", "acknowledged_at", "is_overdue", "is_escalated", "escalation_step",
            "escalation_loop", "needs_callback", "is_drill",
        ]  # fmt: skip

    def _number(self, case: Case) -> str:
        if case.caller_id:
            return str(case.caller.phone)
        return str(case.contact_phone or "")

    @extend_schema_field(serializers.CharField())
    def get_caller(self, case: Case) -> str:
        return mask_phone(self._number(case))


class MessageSerializer(serializers.ModelSerializer):
    # Blank when there is none, so declared as text: an empty string is no URL.
    recording_url = serializers.CharField(read_only=True)

    class Meta:
        model = Message
        fields = ["id", "direction", "channel", "body", "created_at", "delivery_status", "recording_url",
                  "is_visible_to_citizen"]  # fmt: skip


class TimelineSerializer(serializers.ModelSerializer):
    actor = StaffRefSerializer(read_only=True)

    class Meta:
        model = TimelineEvent
        fields = ["kind", "actor_kind", "actor", "created_at", "details"]


class EarlierCaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Case
        fields = ["id", "reference", "status", "priority", "category", "created_at"]


class NotificationLogSerializer(serializers.ModelSerializer):
    """Who was told about the case, by which channel, and the delivery status Twilio reported."""

    recipient = StaffRefSerializer(read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "created_at", "kind", "channel", "recipient", "status", "attempts", "sent_at"]


class CaseDetailSerializer(CaseListSerializer):
    """Contact details follow helpline.casework.contact_details: in clear for the assignee and supervisors only."""

    caller_phone = serializers.SerializerMethodField()
    contact_name = serializers.SerializerMethodField()
    contact_email = serializers.SerializerMethodField()  # blank when not given
    safe_contact_note = serializers.SerializerMethodField()
    messages = MessageSerializer(many=True, read_only=True)
    timeline = TimelineSerializer(many=True, read_only=True)
    earlier_cases = serializers.SerializerMethodField()
    notifications = serializers.SerializerMethodField()

    class Meta(CaseListSerializer.Meta):
        fields = [
            *CaseListSerializer.Meta.fields, "caller_phone", "contact_name", "contact_email", "safe_to_call",
            "safe_to_text", "safe_contact_note", "messages", "timeline", "earlier_cases", "notifications",
        ]  # fmt: skip

    def _contact(self, case: Case) -> ContactDetails:
        return contact_details(case, self.context["request"].user)

    @extend_schema_field(serializers.CharField())
    def get_caller_phone(self, case: Case) -> str:
        return self._contact(case).phone

    @extend_schema_field(serializers.CharField())
    def get_contact_name(self, case: Case) -> str:
        return self._contact(case).name

    @extend_schema_field(serializers.CharField())
    def get_contact_email(self, case: Case) -> str:
        return self._contact(case).email

    @extend_schema_field(serializers.CharField())
    def get_safe_contact_note(self, case: Case) -> str:
        return self._contact(case).safe_contact_note

    @extend_schema_field(EarlierCaseSerializer(many=True))
    def get_earlier_cases(self, case: Case) -> list[dict]:
        return EarlierCaseSerializer(self.context.get("earlier_cases", []), many=True).data

    @extend_schema_field(NotificationLogSerializer(many=True))
    def get_notifications(self, case: Case) -> list[dict]:
        return NotificationLogSerializer(self.context.get("notification_log", []), many=True).data


class ResolveSerializer(serializers.Serializer):
    """What the app showed travels with Resolve, so a message that came after it is read before the case closes."""

    outcome = serializers.CharField(max_length=1000)
    # Required: a resolution that says nothing of what was shown closed cases over a message nobody had read.
    seen_message_id = serializers.IntegerField(
        min_value=0,
        error_messages={"required": _("Say which message the app showed last (its id, or 0 for none): a message "
                                      "the person sent after it must be read before the case is closed.")},
        help_text="The id of the newest message the app showed on this case (0: none). A message from the person "
        "after it refuses the resolution with 409.",
    )  # fmt: skip
    seen_priority = serializers.ChoiceField(
        choices=[("", "not triaged yet"), *Priority.choices], required=False, allow_blank=True,
        help_text="The priority the app showed. A different priority now refuses the resolution with 409. Left out, "
        "not checked.",
    )  # fmt: skip

    def validate(self, data: dict) -> dict:
        data["seen"] = Seen(last_message_id=data.get("seen_message_id"), priority=data.get("seen_priority"))
        return data


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class AssignSerializer(serializers.Serializer):
    staff_id = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="The user id of the staff member; omitted, whoever the assignment policy picks besides the current "
        "worker.",
    )  # fmt: skip


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=5000)


class ReplySerializer(serializers.Serializer):
    text = serializers.CharField(max_length=1600)


class PersonsAnswer(serializers.BooleanField):
    """true, false, or null for "not asked", and never left out: a missing answer taken for "not asked" would wipe
    a "no" recorded before."""

    default_error_messages = {
        "required": _("Say what the person answered: true (safe), false (not safe) or null (not asked)."),
        "invalid": _("Answer true (safe), false (not safe) or null (not asked)."),
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_null=True, **kwargs)


class SafeContactRecordSerializer(serializers.Serializer):
    """What the person said about being contacted (on the phone, say), as the console records it. Both answers are
    sent each time: the record replaces the one before. (Not named SafeContactSerializer: the schema would give the
    citizen's form's own safe_contact this one's required fields.)"""

    safe_to_call = PersonsAnswer(help_text="Is it safe to call them? null: not asked.")
    safe_to_text = PersonsAnswer(
        help_text="Is it safe to send them an SMS? null: not asked (a voice caller's replies are then not texted)."
    )


class SafeContactRecordedSerializer(CaseListSerializer):
    class Meta(CaseListSerializer.Meta):
        fields = [*CaseListSerializer.Meta.fields, "safe_to_call", "safe_to_text"]


class ReclassifySerializer(serializers.Serializer):
    priority = serializers.ChoiceField(choices=Priority.choices)
    category = serializers.ChoiceField(choices=Category.choices)
    reason = serializers.CharField(max_length=1000)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


STATUS_CHOICES = CaseStatus.choices
