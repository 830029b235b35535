"""The public web pages: the contact form and the citizen's status check."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from helpline.cases import intake, selectors
from helpline.cases.models import Channel
from helpline.drill.marker import is_drill_request
from helpline.intake import services
from helpline.intake.forms import FollowUpForm, InquiryForm, StatusCheckForm
from helpline.intake.throttles import InquiryRateThrottle, InquiryStatusRateThrottle


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
    received = services.receive_web_inquiry(
        message=data["message"],
        name=data["name"],
        phone=str(data["phone"] or ""),
        email=data["email"],
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
        {**_page_context(), "reference": received.case.reference, "code": received.token},
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
    if case is None or case.channel != Channel.WEB or not intake.citizen_token_matches(case, code):
        return render(request, "helpline/inquiry_status.html", {**context, "form": form, "not_found": True}, status=404)
    if writing_again:
        throttled = _too_many(request, InquiryRateThrottle())
        if throttled:
            return throttled
        services.receive_follow_up(case, form.cleaned_data["message"])
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
