"""Supervisors' pages for personal data: a person's rights on request (export, erasure), a case's legal hold and
read log, and the read log by staff member with its unusual patterns. Thin: helpline.privacy decides."""
from __future__ import annotations

import datetime as dt
import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from helpline.cases.models import Case
from helpline.console.access import supervisor_page
from helpline.console.forms import ErasureForm, LegalHoldForm, PersonForm, PersonRequestForm
from helpline.privacy import selectors, services
from helpline.welfare import selectors as welfare_selectors

# --- A person's rights on request ------------------------------------------------------------------------------


def _person_page(
    request: HttpRequest, form: PersonForm, *, status: int = 200, error: str = "", **forms
) -> HttpResponse:
    cases, holds = [], {}
    if form.is_bound and form.is_valid():
        cases = selectors.cases_about_person(**form.lookup())
        holds = selectors.holds_of(cases)
    initial = form.lookup() if form.is_bound and form.is_valid() else {}
    context = {
        "form": form,
        "searched": form.is_bound and form.is_valid(),
        "cases": [(case, holds.get(case.pk)) for case in cases],
        "export_form": forms.get("export_form") or PersonRequestForm(initial=initial, auto_id="export_%s"),
        "erase_form": forms.get("erase_form") or ErasureForm(initial=initial, auto_id="erase_%s"),
        "request_error": error,
    }
    return render(request, "console/privacy_person.html", context, status=status)


@never_cache
@require_GET
@supervisor_page
def person(request: HttpRequest) -> HttpResponse:
    form = PersonForm(request.GET) if request.GET else PersonForm()
    return _person_page(request, form, status=400 if form.is_bound and not form.is_valid() else 200)


@never_cache
@require_POST
@supervisor_page
def person_export(request: HttpRequest, file_format: str) -> HttpResponse:
    if file_format not in ("json", "html"):
        raise Http404
    form = PersonRequestForm(request.POST, auto_id="export_%s")
    if not form.is_valid():
        return _person_page(request, PersonForm(request.POST), status=400, export_form=form)
    # The welfare register holds some people too (name, address, needs): their export includes it, and someone
    # only in the register was refused as if nothing were held about them.
    register = welfare_selectors.register_export(form.lookup().get("phone", ""))
    try:
        data = services.export_person(by=request.user, reason=form.cleaned_data["reason"], **form.lookup())
    except services.RequestRefused as error:
        if not register or services.has_cases_about(**form.lookup()):
            return _person_page(request, PersonForm(request.POST), status=409, error=str(error))
        data = {"generated_at": timezone.now().isoformat(), "callers": [], "cases": []}
    data["welfare_register"] = register
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    if file_format == "json":
        response = HttpResponse(
            json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
            content_type="application/json; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="personal-data-{stamp}.json"'
    else:
        response = render(request, "console/privacy_export.html", {"data": data})
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
@supervisor_page
def person_erase(request: HttpRequest) -> HttpResponse:
    form = ErasureForm(request.POST, auto_id="erase_%s")
    if not form.is_valid():
        return _person_page(request, PersonForm(request.POST), status=400, erase_form=form)
    try:
        result = services.erase_person(by=request.user, reason=form.cleaned_data["reason"], **form.lookup())
    except services.RequestRefused as error:
        return _person_page(request, PersonForm(request.POST), status=409, error=str(error))
    if result.erased:
        messages.success(request, _("Anonymised: %(cases)s.") % {"cases": ", ".join(result.erased)})
    if result.waiting_for_twilio:
        messages.warning(request, _("Twilio could not delete the voicemail of %(cases)s yet; nothing of those cases "
                                    "was removed. Try again later.") % {"cases": ", ".join(result.waiting_for_twilio)})
    if result.reopened:
        messages.warning(request, _("Not erased, because it was reopened while the erasure ran (the person wrote "
                                    "again): %(cases)s. Erase again once it is resolved.")
                         % {"cases": ", ".join(result.reopened)})  # fmt: skip
    if result.held:
        messages.warning(request, _("Not erased, because a legal hold was set while the erasure ran: %(cases)s.")
                         % {"cases": ", ".join(result.held)})  # fmt: skip
    if result.already_anonymous:
        messages.info(request, _("Already anonymous: %(cases)s.") % {"cases": ", ".join(result.already_anonymous)})
    if welfare_selectors.register_export(form.lookup().get("phone", "")):
        messages.info(request, _("This person is also in the welfare register, which is kept on its own legal "
                                 "basis: review or remove the entry there."))  # fmt: skip
    return redirect("console:privacy")


# --- A case: its legal hold and read log ---------------------------------------------------------------------


def _case_privacy_page(request: HttpRequest, case: Case, hold_form: LegalHoldForm, *, status: int = 200):
    context = {
        "case": case,
        "hold": selectors.legal_hold_of(case),
        "reads": selectors.reads_of_case(case),
        "hold_form": hold_form,
    }
    return render(request, "console/privacy_case.html", context, status=status)


@never_cache
@require_GET
@supervisor_page
def case_privacy(request: HttpRequest, pk: int) -> HttpResponse:
    return _case_privacy_page(request, get_object_or_404(Case, pk=pk), LegalHoldForm())


@require_POST
@supervisor_page
def case_hold(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    case = get_object_or_404(Case, pk=pk)
    form = LegalHoldForm(request.POST)
    if not form.is_valid():
        return _case_privacy_page(request, case, form, status=400)
    try:
        if action == "release":
            services.release_legal_hold(case, by=request.user, reason=form.cleaned_data["reason"])
            messages.success(request, _("The legal hold is released."))
        else:
            services.set_legal_hold(case, by=request.user, reason=form.cleaned_data["reason"])
            messages.success(request, _("The case is under a legal hold: it is kept until the hold is released."))
    except services.RequestRefused as error:
        form.add_error(None, str(error))
        return _case_privacy_page(request, case, form, status=409)
    return redirect("console:privacy-case", pk=pk)


# --- The read log ----------------------------------------------------------------------------------------------


@never_cache
@require_GET
@supervisor_page
def read_log(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {
        "unusual": selectors.unusual_readers(now - dt.timedelta(days=7), now),
        "readers": list(selectors.readers_with_counts(now - dt.timedelta(days=1))),
    }
    return render(request, "console/privacy_reads.html", context)


@never_cache
@require_GET
@supervisor_page
def reads_by_staff(request: HttpRequest, user_id: int) -> HttpResponse:
    reader = get_object_or_404(get_user_model(), pk=user_id)
    return render(request, "console/privacy_reads_by.html", {"reader": reader, "reads": selectors.reads_by(reader)})
