"""The supervisor's board and the roster week (everyone reads the roster; supervisors change it)."""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from helpline.casework import actions
from helpline.casework import selectors as case_reads
from helpline.console import selectors, services
from helpline.console.access import staff_page, supervisor_page
from helpline.console.forms import ReassignForm, ShiftForm, parse_week
from helpline.console.middleware import polling
from helpline.roster.models import Shift
from helpline.roster.selectors import is_supervisor, phone_is_failing
from helpline.roster.services import LOCAL
from notifications import surge
from notifications.delivery_health import delivery_health


def _with_phones_failing(staff: list, now) -> list:
    for profile in staff:
        profile.phone_failing = phone_is_failing(profile, now)
    return staff


def _board_context() -> dict:
    now = timezone.now()
    delivery = delivery_health(now)
    return {
        # Staff alerts the provider refuses (a Twilio outage): shown above everything while most of them fail.
        "delivery": delivery,
        "delivery_minutes": delivery.as_dict()["window_seconds"] // 60,
        "surge": (running := surge.current_surge()),
        "surge_can_end": surge.surge_can_end(running, now),
        "pressure": surge.surge_pressure(now),
        "waiting": case_reads.waiting_for_a_person(),
        # Drill cases are counted apart: left in the count, an interrupted drill's showed as people waiting.
        "waiting_count": (counts := case_reads.count_waiting_for_a_person())[0],
        "waiting_drill_count": counts[1],
        "waiting_total": sum(counts),
        "staff": _with_phones_failing(case_reads.staff_loads(now), now),
        "figures": case_reads.figures_for_day(now),
        "reassign_form": ReassignForm(),
        "now": now,
        "poll_seconds": settings.CONSOLE_POLL_SECONDS,
    }


@never_cache
@require_GET
@supervisor_page
def board(request: HttpRequest) -> HttpResponse:
    return render(request, "console/board.html", _board_context())


@require_POST
@supervisor_page
def surge_switch(request: HttpRequest) -> HttpResponse:
    """Surge mode on (with the crisis event's name), off, or a call-out to off-duty staff."""
    what = request.POST.get("do", "")
    if what == "start":
        name = request.POST.get("name", "").strip() or _("Surge")
        actions.do_start_surge(
            by=request.user, name=name, citizen_notice=request.POST.get("notice", ""),
            citizen_notice_english=request.POST.get("notice_english", ""),
        )  # fmt: skip
        messages.success(request, _("Surge mode is on: staff get one message a minute, critical cases as before."))
    elif what == "end":
        actions.do_end_surge(by=request.user)
        messages.success(request, _("Surge mode is off."))
    elif what == "call_out":
        asked = actions.do_call_out(by=request.user)
        messages.success(request, _("%(count)s people off duty were asked to come in.") % {"count": asked})
    return redirect("console:board")


@polling
@never_cache
@require_GET
@supervisor_page
def board_live(request: HttpRequest) -> HttpResponse:
    return render(request, "console/_board_live.html", _board_context())


def _week_url(monday: dt.date) -> str:
    return f"{reverse('console:roster')}?week={monday.isoformat()}"


@never_cache
@require_GET
@staff_page
def roster(request: HttpRequest) -> HttpResponse:
    today = timezone.now().astimezone(LOCAL).date()
    monday = parse_week(request.GET.get("week"), today)
    return render(request, "console/roster.html", _roster_context(request, monday, ShiftForm(initial={"day": today})))


def _roster_context(request: HttpRequest, monday: dt.date, form: ShiftForm) -> dict:
    return {
        "days": selectors.roster_week(monday),
        "monday": monday,
        "sunday": monday + dt.timedelta(days=6),
        "previous_week": _week_url(monday - dt.timedelta(days=7)),
        "next_week": _week_url(monday + dt.timedelta(days=7)),
        "today": timezone.now().astimezone(LOCAL).date(),
        "may_edit": is_supervisor(request.user),
        "gaps": selectors.week_gaps(monday) if is_supervisor(request.user) else [],
        "form": form,
    }


@require_POST
@supervisor_page
def shift_add(request: HttpRequest) -> HttpResponse:
    form = ShiftForm(request.POST)
    if not form.is_valid():
        monday = parse_week(request.POST.get("day"), timezone.now().astimezone(LOCAL).date())
        return render(request, "console/roster.html", _roster_context(request, monday, form), status=400)
    data = form.cleaned_data
    services.add_shift(
        by=request.user, staff=data["staff"], starts_at=data["starts_at"], ends_at=data["ends_at"], note=data["note"]
    )
    messages.success(request, _("Shift added."))
    return redirect(_week_url(data["day"] - dt.timedelta(days=data["day"].weekday())))


@never_cache
@require_http_methods(["GET", "POST"])
@supervisor_page
def shift_edit(request: HttpRequest, pk: int) -> HttpResponse:
    shift = get_object_or_404(Shift.objects.select_related("staff__user"), pk=pk)
    if request.method == "GET":
        form = ShiftForm(initial=ShiftForm.initial_for(shift))
        return render(request, "console/shift_edit.html", {"shift": shift, "form": form})
    form = ShiftForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.move_shift(
                shift, by=request.user, staff=data["staff"], starts_at=data["starts_at"], ends_at=data["ends_at"],
                note=data["note"],
            )  # fmt: skip
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Shift changed."))
            monday = data["day"] - dt.timedelta(days=data["day"].weekday())
            return redirect(_week_url(monday))
    return render(request, "console/shift_edit.html", {"shift": shift, "form": form}, status=400)


@require_POST
@supervisor_page
def shift_delete(request: HttpRequest, pk: int) -> HttpResponse:
    shift = get_object_or_404(Shift, pk=pk)
    day = shift.starts_at.astimezone(LOCAL).date()
    services.remove_shift(shift, by=request.user)
    messages.success(request, _("Shift removed."))
    return redirect(_week_url(day - dt.timedelta(days=day.weekday())))
