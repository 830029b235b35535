"""The console's home-visit pages: the worker starts, extends and checks out of a visit, sets their PINs and
reports an incident; supervisors see every open visit with its address and take or end an alarm."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from helpline.cases.models import OPEN_STATUSES, Case
from helpline.console.access import staff_page, supervisor_page
from helpline.console.middleware import polling
from helpline.roster.models import StaffProfile
from helpline.roster.selectors import active_staff, is_supervisor
from helpline.visits import selectors, services
from helpline.visits.models import IncidentKind


class StartVisitForm(forms.Form):
    minutes = forms.IntegerField(label=gettext_lazy("Expected length (minutes)"), min_value=1,
                                 max_value=services.MAX_VISIT_MINUTES, initial=60)  # fmt: skip
    address = forms.CharField(label=gettext_lazy("Address"), max_length=300)
    case = forms.ModelChoiceField(label=gettext_lazy("Case (optional)"), queryset=Case.objects.none(), required=False)
    colleague = forms.ModelChoiceField(label=gettext_lazy("Colleague with you (optional)"),
                                       queryset=StaffProfile.objects.none(), required=False)  # fmt: skip

    def __init__(self, *args, staff: StaffProfile, **kwargs) -> None:
        kwargs.setdefault("auto_id", "visit_%s")
        super().__init__(*args, **kwargs)
        cases = Case.objects.filter(status__in=OPEN_STATUSES).order_by("-created_at")
        if not staff.is_supervisor:
            cases = cases.filter(assigned_to_id=staff.user_id)
        self.fields["case"].queryset = cases
        self.fields["case"].label_from_instance = lambda case: case.reference
        self.fields["colleague"].queryset = active_staff().exclude(pk=staff.pk)


class ExtendForm(forms.Form):
    minutes = forms.IntegerField(label=gettext_lazy("Add minutes"), min_value=1,
                                 max_value=services.MAX_VISIT_MINUTES, initial=30)  # fmt: skip
    # Shown whenever the worker has PINs, not only once overdue: a page opened in time may be sent late.
    pin = forms.CharField(
        label=format_lazy(gettext_lazy("Your PIN (once overdue, or for more than {minutes} minutes)"),
                          minutes=services.EXTEND_WITHOUT_PIN_MAX_MINUTES),
        max_length=6, required=False,
        widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "extend_%s")
        super().__init__(*args, **kwargs)


class CheckOutForm(forms.Form):
    pin = forms.CharField(
        label=gettext_lazy("Your PIN"), max_length=6, required=False,
        widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "checkout_%s")
        super().__init__(*args, **kwargs)


class EndVisitForm(forms.Form):
    # Required: ending someone's visit says they are safe, and the visit's record must say how that is known.
    note = forms.CharField(max_length=500)


class PinForm(forms.Form):
    checkout_pin = forms.CharField(label=gettext_lazy("Check-out PIN (4-6 digits)"), max_length=6,
                                   widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))
    duress_pin = forms.CharField(label=gettext_lazy("Duress PIN (different; raises a silent alarm)"), max_length=6,
                                 widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "pins_%s")
        super().__init__(*args, **kwargs)


class IncidentForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("What happened"), choices=IncidentKind.choices)
    occurred_at = forms.DateTimeField(label=gettext_lazy("When"),
                                      widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    place = forms.CharField(label=gettext_lazy("Where (a place, not a home address)"), max_length=200)
    perpetrator = forms.CharField(label=gettext_lazy("By whom"), max_length=200)
    description = forms.CharField(label=gettext_lazy("What was said or done"), widget=forms.Textarea(attrs={"rows": 3}))
    case_reference = forms.CharField(label=gettext_lazy("Case reference (optional)"), max_length=20, required=False)
    police_informed = forms.BooleanField(label=gettext_lazy("Police informed"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "incident_%s")
        super().__init__(*args, **kwargs)


def _staff(request: HttpRequest) -> StaffProfile:
    staff = getattr(request.user, "staff_profile", None)
    if staff is None:
        raise Http404  # a superuser without a profile makes no visits
    return staff


def _visible(request: HttpRequest, pk: int):
    visit = selectors.visible_visits(request.user).filter(pk=pk).first()
    if visit is None:
        raise Http404
    return visit


def _page_context(request: HttpRequest, **forms_given) -> dict:
    staff = getattr(request.user, "staff_profile", None)
    own = [selectors.seen_by(visit, request.user) for visit in selectors.visits_of_worker(staff)] if staff else []
    open_visit = next((visit for visit in own if visit.is_open), None)
    return {
        "staff": staff,
        "open_visit": open_visit,
        "open_status": open_visit.status if open_visit else "",
        "past_visits": [(visit, visit.status) for visit in own if visit is not open_visit],
        "has_pins": bool(staff) and services.has_pins(staff),
        "start_form": forms_given.get("start_form") or (StartVisitForm(staff=staff) if staff else None),
        "extend_form": ExtendForm(),
        "checkout_form": CheckOutForm(),
        "pin_form": forms_given.get("pin_form") or PinForm(),
        "incident_form": forms_given.get("incident_form") or IncidentForm(),
        "is_supervisor": is_supervisor(request.user),
        "poll_seconds": settings.CONSOLE_POLL_SECONDS,
    }


@never_cache
@require_GET
@staff_page
def visits_page(request: HttpRequest) -> HttpResponse:
    return render(request, "console/visits.html", _page_context(request))


@polling
@never_cache
@require_GET
@supervisor_page
def visits_board_live(request: HttpRequest) -> HttpResponse:
    return render(request, "console/visits_board_live.html", {"poll_seconds": settings.CONSOLE_POLL_SECONDS})


@require_POST
@staff_page
def visit_start(request: HttpRequest) -> HttpResponse:
    staff = _staff(request)
    form = StartVisitForm(request.POST, staff=staff)
    if not form.is_valid():
        return render(request, "console/visits.html", _page_context(request, start_form=form), status=400)
    try:
        services.start_visit(
            staff, minutes=form.cleaned_data["minutes"], address=form.cleaned_data["address"],
            case=form.cleaned_data["case"], colleague=form.cleaned_data["colleague"], via="console", by=request.user,
        )  # fmt: skip
    except services.VisitRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, _("Visit started. Check out when you leave."))
    return redirect("console:visits")


@require_POST
@staff_page
def visit_extend(request: HttpRequest, pk: int) -> HttpResponse:
    visit = _visible(request, pk)
    form = ExtendForm(request.POST)
    if form.is_valid():
        try:
            services.extend_visit(visit, minutes=form.cleaned_data["minutes"], by=request.user, via="console",
                                  pin=form.cleaned_data["pin"])  # fmt: skip
            messages.success(request, _("Visit extended."))  # the duress PIN too: someone may be watching
        except services.VisitRefused as refusal:
            messages.error(request, str(refusal))
    else:
        messages.error(request, _("Enter the minutes to add."))
    return redirect("console:visits")


@require_POST
@staff_page
def visit_check_out(request: HttpRequest, pk: int) -> HttpResponse:
    """The worker's check-out asks for their PIN when they have one: the duress PIN works here too, and the page
    then says exactly what a real check-out says."""
    visit = _visible(request, pk)
    pin = request.POST.get("pin", "").strip()
    if request.user.pk == visit.worker.user_id and services.has_pins(visit.worker):
        answer = services.check_out_with_pin(visit.worker, pin, via="console")
        (messages.success if answer.accepted else messages.error)(request, answer.reply)
    else:
        services.check_out(visit, by=request.user, via="console")
        messages.success(request, _("Checked out. Thank you, take care."))
    return redirect("console:visits")


@require_POST
@supervisor_page
def visit_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    services.acknowledge_visit(_visible(request, pk), by=request.user, via="console")
    messages.success(request, _("You have taken this visit's alarm."))
    return _back(request)


@require_POST
@supervisor_page
def visit_end(request: HttpRequest, pk: int) -> HttpResponse:
    visit = _visible(request, pk)
    form = EndVisitForm(request.POST)
    if not form.is_valid():  # the visit stays open: the supervisor sees why, and ends it again
        messages.error(request, " ".join(form.errors["note"]))
        return render(request, "console/visits.html", _page_context(request), status=400)
    try:
        services.end_visit(visit, by=request.user, note=form.cleaned_data["note"])
    except services.VisitRefused as refusal:
        messages.error(request, str(refusal))
        return render(request, "console/visits.html", _page_context(request), status=400)
    messages.success(request, _("Visit ended. Everyone who was told of it gets the all-clear."))
    return _back(request)


def _back(request: HttpRequest) -> HttpResponse:
    """To the page the supervisor acted on (the board or the visits page), never off this site."""
    target = request.POST.get("next", "")
    is_safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure())
    return redirect(target if target and is_safe else "console:visits")


@require_POST
@staff_page
def visit_pins(request: HttpRequest) -> HttpResponse:
    staff = _staff(request)
    form = PinForm(request.POST)
    if form.is_valid():
        try:
            services.set_pins(staff, checkout_pin=form.cleaned_data["checkout_pin"],
                              duress_pin=form.cleaned_data["duress_pin"])  # fmt: skip
            messages.success(request, _("Your PINs are saved."))
            return redirect("console:visits")
        except services.VisitRefused as refusal:
            form.add_error(None, str(refusal))
    return render(request, "console/visits.html", _page_context(request, pin_form=form), status=400)


@require_POST
@staff_page
def incident_report(request: HttpRequest) -> HttpResponse:
    staff = _staff(request)
    form = IncidentForm(request.POST)
    case = None
    if form.is_valid() and form.cleaned_data["case_reference"]:
        case = services.staff_case_by_reference(staff, form.cleaned_data["case_reference"])
        if case is None:
            form.add_error("case_reference", _("No such case among yours."))
    if form.is_valid():
        data = form.cleaned_data
        services.record_incident(
            staff_affected=staff, kind=data["kind"], occurred_at=data["occurred_at"] or timezone.now(),
            place=data["place"], description=data["description"], perpetrator=data["perpetrator"],
            reported_by=request.user, case=case, police_informed=data["police_informed"],
        )  # fmt: skip
        messages.success(request, _("Thank you: the incident is recorded."))
        return redirect("console:visits")
    return render(request, "console/visits.html", _page_context(request, incident_form=form), status=400)
