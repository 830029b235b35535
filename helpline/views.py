"""The public web pages (contact form and status check) and the health check."""
from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from helpline import selectors, services
from helpline.celery import app as celery_app
from helpline.drill import is_drill_request
from helpline.forms import FollowUpForm, InquiryForm, StatusCheckForm
from helpline.language import detect_language
from helpline.models import Channel, Heartbeat
from helpline.throttles import InquiryRateThrottle, InquiryStatusRateThrottle


def _page_context() -> dict:
    return {"emergency": settings.EMERGENCY_NUMBERS, "quick_exit_url": settings.QUICK_EXIT_URL}


def _too_many(request: HttpRequest, throttle) -> HttpResponse | None:
    if throttle.allow_request(request, None):
        return None
    response = render(request, "helpline/too_many.html", _page_context(), status=429)
    wait = throttle.wait()
    if wait:
        response["Retry-After"] = str(int(wait) + 1)
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def inquiry_form(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "helpline/inquiry_form.html", {**_page_context(), "form": InquiryForm()})
    throttled = _too_many(request, InquiryRateThrottle())
    if throttled:
        return throttled
    form = InquiryForm(request.POST)
    if not form.is_valid():
        return render(request, "helpline/inquiry_form.html", {**_page_context(), "form": form}, status=400)
    data = form.cleaned_data
    ui_language = translation.get_language()
    intake = services.record_web_inquiry(
        message=data["message"],
        name=data["name"],
        phone=str(data["phone"] or ""),
        email=data["email"],
        language="en" if ui_language == "en" else detect_language(data["message"]),
        safe_to_call=data["safe_to_call"],
        safe_to_text=data["safe_to_text"],
        safe_contact_note=data["safe_contact_note"],
        suspected_automated=bool(data["leave_this_empty"]),
        is_drill=is_drill_request(request),
    )
    # Rendered, not redirected: the secret code must never sit in a URL or the browser's history.
    return render(
        request,
        "helpline/inquiry_received.html",
        {**_page_context(), "reference": intake.case.reference, "code": intake.token},
        status=201,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def inquiry_status(request: HttpRequest) -> HttpResponse:
    """The citizen's own view of their web case: status, replies, and a box to write again."""
    context = _page_context()
    if request.method == "GET":
        return render(request, "helpline/inquiry_status.html", {**context, "form": StatusCheckForm()})
    throttled = _too_many(request, InquiryStatusRateThrottle())
    if throttled:
        return throttled
    writing_again = "message" in request.POST
    form = (FollowUpForm if writing_again else StatusCheckForm)(request.POST)
    if not form.is_valid():
        return render(request, "helpline/inquiry_status.html", {**context, "form": form}, status=400)
    case = selectors.case_by_reference(form.cleaned_data["reference"])
    code = form.cleaned_data["code"]
    if case is None or case.channel != Channel.WEB or not services.citizen_token_matches(case, code):
        return render(request, "helpline/inquiry_status.html", {**context, "form": form, "not_found": True}, status=404)
    if writing_again:
        throttled = _too_many(request, InquiryRateThrottle())
        if throttled:
            return throttled
        services.add_citizen_follow_up(case, form.cleaned_data["message"])
        case.refresh_from_db()
    return render(
        request,
        "helpline/inquiry_status.html",
        {
            **context,
            "case": case,
            "code": form.cleaned_data["code"],
            "replies": selectors.replies_for_citizen(case),
            "follow_up_form": FollowUpForm(initial={"reference": case.reference, "code": form.cleaned_data["code"]}),
            "sent": writing_again,
        },
    )


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure to reach the database is "unreachable" for an operator
        return "unreachable"
    return "ok"


def _broker_state() -> str:
    try:
        with celery_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
    except Exception:
        return "unreachable"
    return "ok"


def _heartbeat_age_seconds() -> float | None:
    try:
        beat = Heartbeat.objects.filter(name="beat").first()
    except Exception:
        return None
    return round((timezone.now() - beat.beat_at).total_seconds(), 1) if beat else None


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers (intake works); 503 when it does not. The broker and the periodic
    heartbeat are reported, not required: intake does not need them, and sweeps catch up when they return."""
    database = _database_state()
    body = {
        "status": "ok" if database == "ok" else "unavailable",
        "database": database,
        "broker": _broker_state(),
        "heartbeat_age_seconds": _heartbeat_age_seconds() if database == "ok" else None,
    }
    return JsonResponse(body, status=200 if database == "ok" else 503)
