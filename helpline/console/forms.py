"""The console's forms: every field has a label a screen reader reads and an error message in the page's language."""
from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from helpline.cases.intake import normalise_phone
from helpline.cases.models import Priority
from helpline.casework.actions import Seen
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import active_staff
from helpline.roster.services import LOCAL, shift_window
from triage.models import Category


class LoginForm(AuthenticationForm):
    username = forms.CharField(
        label=_("Username"), max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username",
                                                                           "autocapitalize": "none"})
    )
    password = forms.CharField(
        label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class CaseForm(forms.Form):
    """The case page holds several forms; each gets its own element ids, so every label points at its field."""

    id_prefix = "case"

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class ReasonForm(CaseForm):
    id_prefix = "reason"
    reason = forms.CharField(label=_("Reason (optional)"), max_length=1000, required=False)


class ResolveForm(CaseForm):
    """The hidden fields say what the page showed (its last message, the priority); the case page writes them from
    the case it rendered, never from a refused form's data, so the page that shows the new message resolves."""

    id_prefix = "resolve"
    outcome = forms.CharField(
        label=_("Outcome"), max_length=1000, help_text=_("What was done, in a sentence or two."),
        widget=forms.Textarea(attrs={"rows": 2}),
    )  # fmt: skip
    seen_message_id = forms.IntegerField(min_value=0, required=False, widget=forms.HiddenInput)
    seen_priority = forms.ChoiceField(choices=[("", ""), *Priority.choices], required=False, widget=forms.HiddenInput)

    def clean(self) -> dict:
        data = super().clean()
        # A page without the fields (one loaded before they existed, during a deploy) resolves unchecked, as before.
        data["seen"] = Seen(
            last_message_id=data.get("seen_message_id"),
            priority=data.get("seen_priority", "") if "seen_priority" in self.data else None,
        )
        return data


class ReplyForm(CaseForm):
    id_prefix = "reply"
    text = forms.CharField(
        label=_("Reply to the person"), max_length=1600, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Sent through the case's channel; an SMS only where it is safe and allowed."),
    )  # fmt: skip


YES_NO_NOT_ASKED = [("", _("not asked")), ("yes", _("yes")), ("no", _("no"))]


def _yes_no(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


class SafeContactForm(CaseForm):
    """What the person said about being contacted (on the phone, say): every reply and call obeys it."""

    id_prefix = "safe"
    safe_to_call = forms.TypedChoiceField(
        label=_("Is it safe to call them?"), choices=YES_NO_NOT_ASKED, coerce=_yes_no, empty_value=None,
        required=False,
    )  # fmt: skip
    safe_to_text = forms.TypedChoiceField(
        label=_("Is it safe to send them an SMS?"), choices=YES_NO_NOT_ASKED, coerce=_yes_no, empty_value=None,
        required=False,
    )  # fmt: skip


class NoteForm(CaseForm):
    id_prefix = "note"
    text = forms.CharField(
        label=_("Internal note"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Staff only; the person never sees it."),
    )  # fmt: skip


class ReclassifyForm(CaseForm):
    id_prefix = "reclassify"
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)
    category = forms.ChoiceField(label=_("Category"), choices=Category.choices)
    reason = forms.CharField(
        label=_("Reason for the change"), max_length=1000,
        error_messages={"required": _("A reason is required to change priority or category.")},
    )  # fmt: skip

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("A reason is required to change priority or category."))
        return reason


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, profile: StaffProfile) -> str:
        return str(profile)


class ReassignForm(CaseForm):
    id_prefix = "reassign"
    staff = StaffChoiceField(label=_("Give the case to"), queryset=StaffProfile.objects.none())

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["staff"].queryset = active_staff()


class ShiftForm(forms.Form):
    """A shift in local wall-clock time; an end at or before the start is on the next day (a night shift)."""

    staff = StaffChoiceField(label=_("Staff member"), queryset=StaffProfile.objects.none())
    day = forms.DateField(label=_("Day"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    starts = forms.TimeField(label=_("Starts"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    ends = forms.TimeField(
        label=_("Ends"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("An end at or before the start is on the next day."),
    )  # fmt: skip
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["staff"].queryset = active_staff()

    def clean_day(self) -> dt.date:
        day = self.cleaned_data["day"]
        if not is_plannable(day):
            raise forms.ValidationError(_("Choose a day from a year ago to two years ahead."))
        return day

    @classmethod
    def initial_for(cls, shift) -> dict:
        starts, ends = shift.starts_at.astimezone(LOCAL), shift.ends_at.astimezone(LOCAL)
        return {"staff": shift.staff_id, "day": starts.date(), "starts": starts.time(), "ends": ends.time(),
                "note": shift.note}  # fmt: skip

    def clean(self) -> dict:
        data = super().clean()
        if all(data.get(name) is not None for name in ("day", "starts", "ends")):
            if data["starts"] == data["ends"]:
                self.add_error("ends", _("A shift must end after it starts."))
            else:
                data["starts_at"], data["ends_at"] = shift_window(data["day"], data["starts"], data["ends"])
                if data["ends_at"] <= data["starts_at"]:  # both inside the hour the clocks skip in spring
                    self.add_error("ends", _("On this day the clocks go forward at 02:00: this shift has no time."))
        return data


def is_plannable(day: dt.date, today: dt.date | None = None) -> bool:
    """A roster covers a year back and two years ahead; further is a typing mistake (and past what dates hold)."""
    today = today or dt.date.today()
    return today - dt.timedelta(days=366) <= day <= today + dt.timedelta(days=2 * 366)


def parse_week(value: str | None, today: dt.date) -> dt.date:
    """The Monday of the week a ?week=YYYY-MM-DD names; this week for anything unreadable or out of range."""
    try:
        day = dt.date.fromisoformat(value) if value else today
    except ValueError:
        day = today
    if not is_plannable(day, today):
        day = today
    return day - dt.timedelta(days=day.weekday())


class PersonForm(forms.Form):
    """Who a request about personal data is about: the number they called from or gave, and/or their e-mail."""

    phone = forms.CharField(label=_("Phone number"), max_length=40, required=False,
                            help_text=_("As the person gives it: 061 123 456 or +387 61 123 456."))  # fmt: skip
    email = forms.EmailField(label=_("E-mail address"), required=False)

    def clean_phone(self) -> str:
        raw = self.cleaned_data.get("phone", "").strip()
        if not raw:
            return ""
        number = normalise_phone(raw)
        if number is None:
            raise forms.ValidationError(_("This is not a phone number we can read."))
        return number

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("phone") and not data.get("email"):
            raise forms.ValidationError(_("Give a phone number or an e-mail address."))
        return data

    def lookup(self) -> dict[str, str]:
        return {"phone": self.cleaned_data.get("phone", ""), "email": self.cleaned_data.get("email", "")}


class PersonRequestForm(PersonForm):
    reason = forms.CharField(
        label=_("Reason"), max_length=500, help_text=_("The request and how it reached you; kept on every case."),
    )  # fmt: skip


class ErasureForm(PersonRequestForm):
    confirm = forms.BooleanField(
        label=_("I understand that the person's data in these cases is removed for good."), required=True
    )


class LegalHoldForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=500, help_text=_("For example the court, the case number, or the inspection."),
    )  # fmt: skip
