"""Welfare checks in the console: the register (supervisors edit, import and export it), starting a campaign, its
live tally with the list behind every number, the export for civil protection, and a worker's visits."""
from __future__ import annotations

import csv

from cryptography.fernet import InvalidToken
from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from helpline.cases.encryption import current_fernet
from helpline.console.access import staff_page, supervisor_page
from helpline.console.middleware import polling
from helpline.roster.selectors import is_supervisor
from helpline.welfare import register, selectors, services, visits
from helpline.welfare.models import Campaign, Need, VisitStatus, VisitTask, VulnerablePerson

PEOPLE_PER_PAGE = 100
# The sheet between preview and confirmation; a centre's register is well under a megabyte.
MAX_IMPORT_BYTES = 5 * 1024 * 1024
_SESSION_SHEET = "welfare-import"


class CampaignForm(forms.Form):
    title = forms.CharField(label=gettext_lazy("Title"), max_length=200)
    question = forms.CharField(
        label=gettext_lazy("Question"), max_length=300, initial="Jeste li sigurni?",
        help_text=gettext_lazy("The reply instructions (1 safe, 2 help) are added to every message."),
    )  # fmt: skip
    question_english = forms.CharField(
        label=gettext_lazy("The same question in English (optional)"), max_length=300, required=False,
        help_text=gettext_lazy("For people whose register language is English; left empty, they get the question."),
    )  # fmt: skip
    areas = forms.MultipleChoiceField(label=gettext_lazy("Municipalities"), required=False,
                                      widget=forms.CheckboxSelectMultiple)  # fmt: skip
    needs = forms.MultipleChoiceField(label=gettext_lazy("Needs"), required=False, choices=Need.choices,
                                      widget=forms.CheckboxSelectMultiple)  # fmt: skip
    call_after_minutes = forms.IntegerField(label=gettext_lazy("Call after (minutes without an answer)"),
                                            min_value=1, max_value=services.MAX_WAIT_MINUTES,
                                            initial=60)  # fmt: skip
    visit_after_minutes = forms.IntegerField(label=gettext_lazy("Visit after (minutes after the call)"),
                                             min_value=1, max_value=services.MAX_WAIT_MINUTES,
                                             initial=30)  # fmt: skip
    is_drill = forms.BooleanField(label=gettext_lazy("Drill (nothing reaches a phone)"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["areas"].choices = [(area, area) for area in selectors.municipalities()]


class PeopleFilterForm(forms.Form):
    """The tally's filters, read through form fields: a CharField refuses a NUL character, which PostgreSQL cannot
    compare (a 500 before). Not stripped: an area is matched exactly as the register has it."""

    column = forms.CharField(required=False, strip=False)
    area = forms.CharField(required=False, strip=False)
    need = forms.CharField(required=False, strip=False)


class VisitOutcomeForm(forms.Form):
    note = forms.CharField(required=False)


class PersonForm(forms.ModelForm):
    needs = forms.MultipleChoiceField(label=gettext_lazy("Needs"), required=False, choices=Need.choices,
                                      widget=forms.CheckboxSelectMultiple)  # fmt: skip

    class Meta:
        model = VulnerablePerson
        fields = [
            "full_name", "phone", "other_phone", "address", "settlement", "municipality", "language", "script",
            "birth_year", "needs", "trusted_contact_name", "trusted_contact_phone", "legal_basis",
            "consent_recorded_on", "notes", "number_needs_checking", "is_active",
        ]  # fmt: skip


class ImportForm(forms.Form):
    sheet = forms.FileField(label=gettext_lazy("Spreadsheet (CSV or XLSX)"))


# --- Campaigns --------------------------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@supervisor_page
def campaigns(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        campaign = services.start_campaign(
            title=data["title"], question=data["question"], question_english=data["question_english"],
            areas=data["areas"], needs=data["needs"],
            by=request.user, is_drill=data["is_drill"], call_after_minutes=data["call_after_minutes"],
            visit_after_minutes=data["visit_after_minutes"],
        )  # fmt: skip
        return redirect("console:welfare-campaign", pk=campaign.pk)
    recent = Campaign.objects.order_by("-started_at")[:20]
    return render(request, "console/welfare.html", {"form": form, "campaigns": recent})


def _campaign_context(campaign: Campaign) -> dict:
    return {
        "campaign": campaign, "tally": selectors.tally(campaign), "columns": list(selectors.TALLY_COLUMNS),
        "poll_seconds": settings.CONSOLE_POLL_SECONDS, "now": timezone.now(),
    }  # fmt: skip


@never_cache
@require_GET
@supervisor_page
def campaign_page(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "console/welfare_campaign.html", _campaign_context(get_object_or_404(Campaign, pk=pk)))


@polling
@never_cache
@require_GET
@supervisor_page
def campaign_live(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "console/_welfare_tally.html", _campaign_context(get_object_or_404(Campaign, pk=pk)))


@require_POST
@supervisor_page
def campaign_finish(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if request.POST.get("confirm") != "yes":  # the page's second step: it cannot be undone
        messages.error(request, _("The campaign runs on: confirm that you want to finish it."))
        return redirect("console:welfare-campaign", pk=pk)
    services.finish_campaign(campaign, by=request.user)
    messages.success(request, _("The campaign is finished: nobody more will be asked."))
    return redirect("console:welfare-campaign", pk=pk)


@never_cache
@require_GET
@supervisor_page
def campaign_people(request: HttpRequest, pk: int) -> HttpResponse:
    """The list behind one number of the tally (a column, an area, a need, or a mix)."""
    campaign = get_object_or_404(Campaign, pk=pk)
    filters = PeopleFilterForm(request.GET)
    if not filters.is_valid():
        return render(request, "console/welfare_people.html", {"campaign": campaign, "filters": filters}, status=400)
    column, area, need = (filters.cleaned_data[name] for name in ("column", "area", "need"))
    checks = selectors.checks_in(campaign, column=column, area=area, need=need)
    page = Paginator(checks, PEOPLE_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "console/welfare_people.html", {
        "campaign": campaign, "page": page, "column": column, "area": area, "need": need,
        "need_labels": dict(Need.choices), "filters": filters,
    })  # fmt: skip


@require_GET
@supervisor_page
def campaign_export(request: HttpRequest, pk: int) -> HttpResponse:
    """For civil protection: who needs help or a visit, and where (no message text, only what they need to go)."""
    campaign = get_object_or_404(Campaign, pk=pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="welfare-campaign-{campaign.pk}.csv"'
    response.write("\ufeff")  # Excel opens UTF-8 (č, ć, Cyrillic) only with the byte-order mark
    writer = csv.writer(response)
    writer.writerow(["state", "name", "phone", "address", "settlement", "municipality", "needs", "birth_year",
                     "trusted_contact", "trusted_contact_phone", "case", "answered_at"])  # fmt: skip
    for check in selectors.checks_in(campaign):
        person = check.person
        writer.writerow([
            selectors.column_of(check.state), person.full_name, str(person.phone), person.address, person.settlement,
            person.municipality, ", ".join(person.needs or []), person.birth_year or "", person.trusted_contact_name,
            str(person.trusted_contact_phone or ""), check.case.reference if check.case_id else "",
            check.answered_at.isoformat() if check.answered_at else "",
        ])  # fmt: skip
    return response


# --- The register -----------------------------------------------------------------------------------------------


@never_cache
@require_GET
@supervisor_page
def register_page(request: HttpRequest) -> HttpResponse:
    people = VulnerablePerson.objects.all()
    if request.GET.get("fix") == "1":
        people = people.filter(number_needs_checking=True)
    if request.GET.get("q", "").strip():
        people = people.filter(selectors.people_matching(request.GET["q"]))
    page = Paginator(people, PEOPLE_PER_PAGE).get_page(request.GET.get("page"))  # the register's own order
    return render(request, "console/welfare_register.html", {"page": page, "import_form": ImportForm(),
                                                              "need_labels": dict(Need.choices)})  # fmt: skip


@never_cache
@require_http_methods(["GET", "POST"])
@supervisor_page
def person_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    person = get_object_or_404(VulnerablePerson, pk=pk) if pk else None
    form = PersonForm(request.POST or None, instance=person)
    if request.method == "POST" and form.is_valid():
        saved = form.save(commit=False)
        saved.last_checked_by, saved.last_checked_at = request.user, timezone.now()
        saved.save()
        messages.success(request, _("Saved."))
        return redirect("console:welfare-register")
    return render(request, "console/welfare_person.html", {"form": form, "person": person})


# How long a previewed sheet waits for its confirmation.
SHEET_KEPT_SECONDS = 30 * 60


def _sheet_kept(kept: dict | None) -> bytes | None:
    if not kept:
        return None
    try:
        return current_fernet().decrypt(kept["data"].encode(), ttl=SHEET_KEPT_SECONDS)
    except (InvalidToken, KeyError, AttributeError):  # expired, or kept in the older, unencrypted form
        return None


@never_cache
@require_POST
@supervisor_page
def register_import(request: HttpRequest) -> HttpResponse:
    """Step one, the preview: every row with what it would do and what is wrong; nothing is stored. Step two
    (`confirm`) stores the same sheet, all rows or none."""
    if request.POST.get("confirm"):
        kept = request.session.pop(_SESSION_SHEET, None)
        sheet = _sheet_kept(kept)
        if sheet is None:
            messages.error(request, _("The preview has expired: choose the file again."))
            return redirect("console:welfare-register")
        report = register.confirm_import(sheet, kept["format"], by=request.user)
        if report.stored:
            messages.success(request, _("Imported: %(new)s new, %(updated)s updated.") % {
                "new": report.count("new"), "updated": report.count("update")})  # fmt: skip
            return redirect("console:welfare-register")
        return render(request, "console/welfare_import.html", {"report": report, "confirmable": False})
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return redirect("console:welfare-register")
    upload = form.cleaned_data["sheet"]
    file_format = "xlsx" if upload.name.lower().endswith(".xlsx") else "csv"
    data = upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        messages.error(request, _("The file is too large."))
        return redirect("console:welfare-register")
    try:
        report = register.preview_import(data, file_format)
    except register.SheetNotReadable as problem:
        messages.error(request, str(problem))
        return redirect("console:welfare-register")
    except Exception:  # an unreadable file (not CSV/XLSX, wrong encoding): say so, never a stack trace
        messages.error(request, _("The file could not be read as CSV or XLSX."))
        return redirect("console:welfare-register")
    if report.is_valid:
        # Encrypted with the register's own key (sessions sit in the database and its backups in clear), and only
        # for as long as a person takes to read the preview.
        request.session[_SESSION_SHEET] = {"data": current_fernet().encrypt(data).decode(), "format": file_format}
    return render(request, "console/welfare_import.html", {"report": report, "confirmable": report.is_valid})


@require_GET
@supervisor_page
def register_export(request: HttpRequest, file_format: str) -> HttpResponse:
    if file_format not in register.FORMATS:
        file_format = "csv"
    content = register.export_register(file_format)
    content_type = "text/csv; charset=utf-8" if file_format == "csv" else (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")  # fmt: skip
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="register.{file_format}"'
    return response


# --- Visits -----------------------------------------------------------------------------------------------------


@never_cache
@require_GET
@staff_page
def my_visits(request: HttpRequest) -> HttpResponse:
    return _visits_page(request)


# A night's visits fit a phone a page at a time: a list of hundreds was scrolled through at 360 px.
VISITS_PER_PAGE = 50


def _visits_page(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    everyone = is_supervisor(request.user)
    page = Paginator(selectors.open_visits_for(request.user, everyone=everyone), VISITS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    labels = dict(Need.choices)
    for visit in page:  # what decides who to go to first, in the reader's language
        visit.needs = [(need, labels[need]) for need in visit.welfare_check.person.needs or [] if need in labels]
    return render(request, "console/welfare_visits.html", {
        "page": page, "everyone": everyone, "urgent_needs": URGENT_NEEDS,
    }, status=status)  # fmt: skip


# Needs the page marks out: a person on a machine that needs power, or on dialysis, cannot wait for the morning.
URGENT_NEEDS = (Need.POWER_DEVICE, Need.DIALYSIS)


@require_POST
@staff_page
def visit_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    task = get_object_or_404(VisitTask, pk=pk)
    form = VisitOutcomeForm(request.POST)
    if not form.is_valid():  # nothing is recorded: the worker sees why, and writes the note again
        messages.error(request, " ".join(form.errors["note"]))
        return _visits_page(request, status=400)
    try:
        if action == "take":
            visits.check_may(task, request.user, recording_outcome=False)
            visits.take_visit(task, by=request.user)
        elif action in ("safe", "help") and task.status != VisitStatus.DONE:
            services.record_visit_outcome(task.welfare_check, is_safe=action == "safe",
                                          note=form.cleaned_data["note"][:300], by=request.user)  # fmt: skip
    except visits.VisitNotYours as refusal:
        messages.error(request, str(refusal))
    return redirect("console:welfare-visits")
