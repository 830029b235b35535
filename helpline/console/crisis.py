"""Crisis events in the console: supervisors declare one, watch its board (the grouped cases by urgency, its
broadcasts) and answer the whole group with one reply."""
from __future__ import annotations

import secrets

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from helpline.casework import actions
from helpline.console.access import supervisor_page
from notifications import crisis
from notifications.models import CrisisEvent
from triage.models import Category


def _categories(request: HttpRequest) -> list[str]:
    return [value for value in request.POST.getlist("categories") if value in Category.values]


@never_cache
@require_http_methods(["GET", "POST"])
@supervisor_page
def events(request: HttpRequest) -> HttpResponse:
    """The events, newest first, and the form that declares one (a clear error, nothing stored, when incomplete)."""
    error, status = "", 200
    if request.method == "POST":
        try:
            event = actions.do_declare_crisis_event(
                by=request.user, title=request.POST.get("title", ""), keywords=request.POST.get("keywords", ""),
                places=request.POST.get("places", ""), categories=_categories(request),
                answer=request.POST.get("answer", ""), answer_cyrillic=request.POST.get("answer_cyrillic", ""),
                answer_english=request.POST.get("answer_english", ""),
            )  # fmt: skip
        except ValueError as problem:
            error, status = str(problem), 400
        else:
            messages.success(request, _("Crisis event declared: new contacts that name it are grouped into it."))
            return redirect("console:crisis-event", event.pk)
    context = {
        "events": CrisisEvent.objects.all()[:50], "categories": Category.choices, "error": error,
        "form": request.POST if request.method == "POST" else {},
    }  # fmt: skip
    return render(request, "console/crisis_events.html", context, status=status)


@never_cache
@require_http_methods(["GET"])
@supervisor_page
def event_board(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(CrisisEvent, pk=pk)
    context = {
        "event": event,
        "figures": crisis.event_figures(event),
        "cases": crisis.event_cases(event)[:200],
        "broadcasts": event.broadcasts.all()[:20],
        # A fresh token per page view: the same form sent twice is one broadcast.
        "token": secrets.token_urlsafe(24),
    }
    return render(request, "console/crisis_event.html", context)


@require_POST
@supervisor_page
def event_broadcast(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(CrisisEvent, pk=pk)
    try:
        actions.do_broadcast_to_crisis_event(
            event, by=request.user, token=request.POST.get("token", ""), text=request.POST.get("text", ""),
            text_cyrillic=request.POST.get("text_cyrillic", ""), text_english=request.POST.get("text_english", ""),
        )  # fmt: skip
    except ValueError as problem:
        messages.error(request, str(problem))
    else:
        messages.success(request, _("The reply is on its way to everyone grouped into the event, once each."))
    return redirect("console:crisis-event", event.pk)


@require_POST
@supervisor_page
def event_end(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(CrisisEvent, pk=pk)
    if request.POST.get("confirm") != "yes":  # the page's second step: it cannot be undone
        messages.error(request, _("The event goes on: confirm that you want to end it."))
        return redirect("console:crisis-event", event.pk)
    actions.do_end_crisis_event(event, by=request.user)
    messages.success(request, _("The event has ended: new contacts are no longer grouped into it."))
    return redirect("console:crisis-event", event.pk)
