"""The console's pages for every staff member: log in and out, my queue, a case, search.

Thin: case reads come from helpline.casework.selectors and every action from helpline.casework.actions, the
functions the staff API calls; the login lockout is helpline.access.lockout.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from helpline.access.lockout import is_locked_out, retry_after_seconds
from helpline.api.filters import CaseFilter
from helpline.cases.selectors import with_urgency
from helpline.cases.services import CaseTransitionError, record_read
from helpline.casework import actions, selectors
from helpline.casework.actions import Act
from helpline.casework.contact_details import MASKED_EXPLANATION, contact_details
from helpline.console.access import forbidden, staff_page
from helpline.console.forms import (
    LoginForm,
    NoteForm,
    ReasonForm,
    ReassignForm,
    ReclassifyForm,
    ReplyForm,
    ResolveForm,
    SafeContactForm,
)
from helpline.console.middleware import LAST_ACTIVE_KEY, polling
from helpline.roster.selectors import is_supervisor as is_supervisor_user
from triage.models import Category

# --- Logging in and out --------------------------------------------------------------------------------------


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default


@never_cache
def login_page(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request, reverse("console:queue"))
    idle_logout = request.session.pop("console_idle_logout", False)
    if request.method != "POST":
        if request.user.is_authenticated:
            return redirect(next_url)
        form = LoginForm(request)
        return render(request, "console/login.html", {"form": form, "next": next_url, "idle_logout": idle_logout})
    # The password check counts failures and refuses a locked-out login (django-axes: helpline.access.lockout).
    form = LoginForm(request, data=request.POST)
    if not form.is_valid():
        if is_locked_out(request):
            response = render(request, "console/too_many_logins.html", status=429)
            response["Retry-After"] = str(retry_after_seconds())
            return response
        return render(request, "console/login.html", {"form": form, "next": next_url}, status=400)
    login(request, form.get_user())
    request.session[LAST_ACTIVE_KEY] = int(time.time())
    return redirect(next_url)


@require_POST
def logout_page(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("console:login")


@require_POST
@staff_page
def still_here(request: HttpRequest) -> HttpResponse:
    """The page saw the person type or click (writing a long reply makes no request): the session stays alive.
    Not marked as polling, so the idle-session middleware counts it; the page sends it only after real input."""
    return HttpResponse(status=204)


# --- My queue ------------------------------------------------------------------------------------------------


def _queue_context(request: HttpRequest) -> dict:
    return {
        "my_cases": list(selectors.my_open_cases(request.user)),
        "unassigned": list(selectors.unassigned_cases()),
        "unassigned_count": selectors.count_unassigned(),
        "now": timezone.now(),
        "poll_seconds": settings.CONSOLE_POLL_SECONDS,
    }


@never_cache
@require_GET
@staff_page
def my_queue(request: HttpRequest) -> HttpResponse:
    return render(request, "console/queue.html", _queue_context(request))


@polling
@never_cache
@require_GET
@staff_page
def my_queue_live(request: HttpRequest) -> HttpResponse:
    return render(request, "console/_queue_lists.html", _queue_context(request))


@require_POST
@staff_page
def take_next(request: HttpRequest) -> HttpResponse:
    case = actions.do_take_next(request.user)
    if case is None:
        messages.info(request, _("Nobody is waiting: the queue is empty."))
        return redirect("console:queue")
    messages.success(request, _("Case %(reference)s is yours now.") % {"reference": case.reference})
    return redirect("console:case", pk=case.pk)


# --- A case ----------------------------------------------------------------------------------------------------


def _case_context(request: HttpRequest, case, **forms) -> dict:
    user = request.user
    is_supervisor = is_supervisor_user(user)
    context = {
        "case": case,
        "contact": contact_details(case, user),
        "contact_masked_explanation": MASKED_EXPLANATION,
        "reasons": selectors.triage_reasons(case),
        "notification_log": selectors.notification_logs([case.pk]).get(case.pk, []),
        "earlier": list(selectors.earlier_cases_for(user, case)),
        "may_work": actions.may(user, case, Act.START),
        # A case handed on to a colleague stays visible to its former assignee: no button that answers 403.
        "may_acknowledge": actions.may(user, case, Act.ACKNOWLEDGE),
        "is_supervisor": is_supervisor,
        "reply_form": ReplyForm(),
        "note_form": NoteForm(),
        "safe_contact_form": SafeContactForm(initial={
            "safe_to_call": {True: "yes", False: "no"}.get(case.safe_to_call, ""),
            "safe_to_text": {True: "yes", False: "no"}.get(case.safe_to_text, ""),
        }),
        "resolve_form": ResolveForm(),
        # What this page shows, sent back with Resolve: anything the person writes after it stops the resolution.
        # Not moved on by the conversation's refresh, which the worker may not have looked at while writing.
        "seen": {"message_id": max((message.pk for message in case.messages.all()), default=0),
                 "priority": case.priority},
        "reason_form": ReasonForm(),
        "reclassify_form": ReclassifyForm(initial={"priority": case.priority, "category": case.category}),
        # Only an open case can be given to someone (a closed one must be reopened first).
        "reassign_form": ReassignForm(initial={"staff": getattr(case.assigned_to, "staff_profile", None)})
        if is_supervisor and case.is_open
        else None,
        "poll_seconds": settings.CONSOLE_POLL_SECONDS,
    }
    context.update(forms)
    return context


def _case_or_404(request: HttpRequest, pk: int, *, via: str = ""):
    """The case with its conversation, if the person may see it; `via` records the read (a page, not a poll)."""
    if via:
        case = selectors.read_case(request.user, pk, via=via)
    else:
        visible = with_urgency(selectors.cases_visible_to(request.user)).select_related("caller", "assigned_to")
        case = selectors.with_conversation(visible).filter(pk=pk).first()
    if case is None:
        raise Http404
    return case


@never_cache
@require_GET
@staff_page
def case_page(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case_or_404(request, pk, via="console")
    return render(request, "console/case.html", _case_context(request, case))


@polling
@never_cache
@require_GET
@staff_page
def conversation_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The open case page's conversation, refreshed every few seconds: a read like any other, logged once per
    READ_LOG_POLL_EVERY_SECONDS so the log stays readable."""
    case = _case_or_404(request, pk)
    every = dt.timedelta(seconds=settings.READ_LOG_POLL_EVERY_SECONDS)
    record_read(case, reader=request.user, via="poll", unless_read_within=every)
    return render(request, "console/_conversation.html", {"case": case})


TWILIO_API = "https://api.twilio.com/"


@never_cache
@require_GET
@staff_page
def voicemail(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    """The voicemail's audio, fetched from Twilio with the account's credentials: recordings are not public, and
    the Content-Security-Policy lets the page play media from this site only."""
    case = selectors.visible_case(request.user, pk)
    message = case.messages.filter(pk=message_id).exclude(recording_url="").first() if case else None
    if message is None:
        raise Http404
    record_read(case, reader=request.user, via="voicemail")
    allowed = (TWILIO_API, settings.TWILIO_API_BASE_URL or TWILIO_API)
    if not message.recording_url.startswith(allowed):
        raise Http404
    try:
        upstream = requests.get(
            f"{message.recording_url}.mp3", auth=(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN),
            timeout=10, stream=True,
        )  # fmt: skip
        upstream.raise_for_status()
    except requests.RequestException:
        return HttpResponse(_("The recording could not be fetched from Twilio."), status=502)
    response = StreamingHttpResponse(upstream.iter_content(64 * 1024), content_type="audio/mpeg")
    response["Cache-Control"] = "private, no-store"
    return response


@dataclass(frozen=True)
class CaseAction:
    form: type | None
    form_name: str
    run: Callable
    done: str


CASE_ACTIONS: dict[str, CaseAction] = {
    "acknowledge": CaseAction(None, "", lambda case, user, data: actions.do_acknowledge(case, by=user, via="console"),
                              gettext_lazy("Acknowledged: the case is yours and the escalation stopped.")),
    "start": CaseAction(ReasonForm, "reason_form",
                        lambda case, user, data: actions.do_start(case, by=user, reason=data["reason"]),
                        gettext_lazy("Work started.")),
    "resolve": CaseAction(ResolveForm, "resolve_form",
                          lambda case, user, data: actions.do_resolve(case, by=user, outcome=data["outcome"],
                                                                     seen=data["seen"]),
                          gettext_lazy("The case is resolved.")),
    "reopen": CaseAction(ReasonForm, "reason_form",
                         lambda case, user, data: actions.do_reopen(case, by=user, reason=data["reason"]),
                         gettext_lazy("The case is open again.")),
    "reply": CaseAction(ReplyForm, "reply_form",
                        lambda case, user, data: actions.do_reply(case, by=user, text=data["text"]),
                        gettext_lazy("Your reply is on its way.")),
    "note": CaseAction(NoteForm, "note_form",
                       lambda case, user, data: actions.do_add_note(case, by=user, text=data["text"]),
                       gettext_lazy("Note added.")),
    "safe-contact": CaseAction(SafeContactForm, "safe_contact_form",
                               lambda case, user, data: actions.do_record_safe_contact(case, by=user, **data),
                               gettext_lazy("What the person said about safe contact is recorded.")),
    "reclassify": CaseAction(ReclassifyForm, "reclassify_form",
                             lambda case, user, data: actions.do_reclassify(case, by=user, **data),
                             gettext_lazy("Priority and category changed.")),
    "reassign": CaseAction(ReassignForm, "reassign_form",
                           lambda case, user, data: actions.do_assign(case, by=user, staff=data["staff"]),
                           gettext_lazy("The case was given to someone else.")),
}  # fmt: skip


@require_POST
@staff_page
def case_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    spec = CASE_ACTIONS.get(action)
    case = selectors.visible_case(request.user, pk)
    if spec is None or case is None:
        raise Http404
    form = spec.form(request.POST) if spec.form else None
    if form is not None and not form.is_valid():
        return _case_again(request, pk, {spec.form_name: form}, status=400)
    try:
        spec.run(case, request.user, form.cleaned_data if form is not None else {})
    except actions.CaseNotVisible:
        raise Http404 from None
    except actions.NotPermitted as error:
        return forbidden(request, str(error))
    except (CaseTransitionError, actions.CaseNotOpen, actions.CannotReach, actions.ChangedSinceSeen) as error:
        kept = {spec.form_name: form} if form is not None else {}  # what they wrote stays in the form
        return _case_again(request, pk, {"action_error": str(error), **kept}, status=409)
    messages.success(request, str(spec.done))
    return redirect(_safe_next(request, reverse("console:case", args=[pk])))


def _case_again(request: HttpRequest, pk: int, extra: dict, *, status: int) -> HttpResponse:
    """The case page again, with why the action was refused: the whole case is shown, so the read is recorded."""
    case = _case_or_404(request, pk, via="console")
    return render(request, "console/case.html", _case_context(request, case, **extra), status=status)


# --- Search ------------------------------------------------------------------------------------------------

SEARCH_LABELS = {
    "status": gettext_lazy("Status"), "priority": gettext_lazy("Priority"), "category": gettext_lazy("Category"),
    "channel": gettext_lazy("Channel"), "assigned_to": gettext_lazy("Assigned to (user id or “me”)"),
    "escalated": gettext_lazy("Escalated"), "overdue": gettext_lazy("Overdue"),
    "created_after": gettext_lazy("Created after"), "created_before": gettext_lazy("Created before"),
    "search": gettext_lazy("Reference or message text"), "ordering": gettext_lazy("Order"),
}  # fmt: skip


def _label_search_form(form) -> None:
    """The API's FilterSet, with labels in the page's language, no API-flavoured help, categories to pick from."""
    for name, field in form.fields.items():
        field.label = SEARCH_LABELS.get(name, field.label)
        field.help_text = ""
    if "category" in form.fields:
        form.fields["category"].widget = forms.Select(choices=[("", "---------"), *Category.choices])


@never_cache
@require_GET
@staff_page
def search(request: HttpRequest) -> HttpResponse:
    """The staff API's case filters, as a form; the results are what the person may see, most urgent first."""
    visible = with_urgency(selectors.cases_visible_to(request.user))
    visible = visible.select_related("caller", "assigned_to").order_by("is_drill", "-urgency", "-created_at", "pk")
    filterset = CaseFilter(request.GET or None, queryset=visible, request=request)
    _label_search_form(filterset.form)
    is_valid = filterset.is_valid() if request.GET else True
    page = None
    if request.GET and is_valid:
        page = Paginator(filterset.qs, 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filterset": filterset, "form": filterset.form, "page": page, "query": query.urlencode()}
    return render(request, "console/search.html", context, status=200 if is_valid else 400)
