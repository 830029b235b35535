"""The admin for what the helpline sends and how it escalates. Supervisors edit escalation policies here; a ladder
that could leave a case unanswered is refused, and every change is kept with its author (django-simple-history)."""
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from simple_history.admin import SimpleHistoryAdmin

from notifications.ladder import ladder_problems
from notifications.models import DeliveryAttempt, EscalationPolicy, EscalationStep, Notification


class StepsThatCannotEndSilently(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        steps = [
            (form.cleaned_data["number"], form.cleaned_data["action"], form.cleaned_data["wait_minutes"])
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        problems = ladder_problems(steps, self.instance.repeat_from_step)
        if problems:
            raise ValidationError(problems)


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    formset = StepsThatCannotEndSilently
    extra = 0
    min_num = 1
    ordering = ["number"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(SimpleHistoryAdmin):
    list_display = ["priority", "acknowledge_within_minutes", "repeat_from_step", "step_summary"]
    inlines = [EscalationStepInline]

    @admin.display(description="steps")
    def step_summary(self, policy: EscalationPolicy) -> str:
        return " → ".join(f"{step.number}. {step.get_action_display()}" for step in policy.steps.order_by("number"))


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["at", "result", "error_code", "detail"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: who was told what, by which channel, and what Twilio reported."""

    list_display = ["created_at", "kind", "channel", "case", "recipient", "status", "attempts"]
    list_filter = ["kind", "channel", "status"]
    search_fields = ["case__reference"]
    inlines = [DeliveryAttemptInline]
    exclude = ["body", "to_number", "ack_code"]  # a staff phone number and the one-time code stay out of view

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
