"""The public contact form and the citizen's status check."""
import uuid

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from phonenumber_field.formfields import PhoneNumberField

YES_NO_UNSURE = [("yes", _("Yes")), ("no", _("No")), ("", _("I am not sure"))]


def _yes_no(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def new_idempotency_key() -> str:
    """One per rendered form: pressing Send twice, or the browser resending after a timeout, stores one message."""
    return uuid.uuid4().hex


class IdempotencyKeyField(forms.CharField):
    widget = forms.HiddenInput

    def __init__(self) -> None:
        super().__init__(required=False, max_length=100)


class MessageField(forms.CharField):
    """A citizen's message, checked for length on the server only. A maxlength attribute would make the browser cut
    a pasted text at the limit without a word; instead the page comes back with the whole text in the box and says
    how long it is, so the person can shorten it or send the rest as a follow-up."""

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        attrs.pop("maxlength", None)
        return attrs


class InquiryForm(forms.Form):
    message = MessageField(
        label=_("What is happening? How can we help?"),
        max_length=settings.MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 8}),
    )
    name = forms.CharField(
        label=_("Your name"), required=False, max_length=200, help_text=_("Optional. You may stay anonymous.")
    )
    phone = PhoneNumberField(
        label=_("Phone number"), required=False, region="BA", help_text=_("Optional. For example 061 123 456.")
    )
    email = forms.EmailField(label=_("E-mail"), required=False, help_text=_("Optional."))
    safe_to_call = forms.TypedChoiceField(
        label=_("Is it safe for us to call you?"),
        choices=YES_NO_UNSURE, coerce=_yes_no, empty_value=None, required=False, widget=forms.RadioSelect,
    )  # fmt: skip
    safe_to_text = forms.TypedChoiceField(
        label=_("Is it safe for us to send you an SMS?"),
        choices=YES_NO_UNSURE, coerce=_yes_no, empty_value=None, required=False, widget=forms.RadioSelect,
    )  # fmt: skip
    safe_contact_note = forms.CharField(
        label=_("When is it safe to contact you?"),
        required=False,
        max_length=500,
        help_text=_("For example: weekdays between 9 and 12, when I am alone."),
    )
    # A trap for bots, hidden from people and screen readers. Named so that browsers do not autofill it.
    leave_this_empty = forms.CharField(required=False, label=_("Leave this field empty"))
    idempotency_key = IdempotencyKeyField()

    def clean(self) -> dict:
        data = super().clean()
        # Only when no number came at all: an invalid number has its own error already.
        if data.get("safe_to_call") and not data.get("phone") and "phone" not in self.errors:
            self.add_error(
                "phone", _("You said we may call you: please write the number to call, or choose another answer.")
            )
        return data


class StatusCheckForm(forms.Form):
    reference = forms.CharField(label=_("Case number"), max_length=30, help_text=_("For example SOS-2026-00042."))
    code = forms.CharField(
        label=_("Your secret code"), max_length=100,
        help_text=_("12 letters and digits, for example K7QM-4TXD-9RWP. Small or capital letters and spaces do "
                    "not matter."),
    )  # fmt: skip


class FollowUpForm(StatusCheckForm):
    message = MessageField(
        label=_("Write to us again"), max_length=settings.MAX_MESSAGE_LENGTH, widget=forms.Textarea(attrs={"rows": 5})
    )
    idempotency_key = IdempotencyKeyField()
