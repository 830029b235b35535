"""The public web pages: the contact form and the citizen's status check. A message sent while the database is
away is spooled and answered as usual (helpline.intake.spool): the citizen never meets an error page."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from helpline.cases import intake, selectors
from helpline.cases.models import Channel
from helpline.drill.marker import is_drill_request
from helpline.intake import services, spool
from helpline.intake.forms import FollowUpForm, InquiryForm, StatusCheckForm, new_idempotency_key
from helpline.intake.spool import spool_on_failure
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


def _inquiry(request: HttpRequest, form: InquiryForm) -> dict:
    data = form.cleaned_data
    return {
        "message": data["message"],
        "name": data["name"],
        "phone": str(data["phone"] or ""),
        "email": data["email"],
        "safe_to_call": data["safe_to_call"],
        "safe_to_text": data["safe_to_text"],
        "safe_contact_note": data["safe_contact_note"],
        "suspected_automated": bool(data["leave_this_empty"]),
        "is_drill": is_drill_request(request),
    }


def _received(request: HttpRequest, reference: str, code: str, status: int) -> HttpResponse:
    # Rendered, not redirected: the secret code must never sit in a URL or the browser's history.
    return render(
        request, "helpline/inquiry_received.html", {**_page_context(), "reference": reference, "code": code},
        status=status,
    )  # fmt: skip


def _spool_inquiry(request: HttpRequest) -> HttpResponse:
    """The inquiry kept in the spool: the citizen gets the reference reserved for it and the code that will open
    it (derived from the form's idempotency key), with 202, since it is not yet in the database."""
    form = InquiryForm(request.POST)
    if request.method != "POST" or not form.is_valid():
        raise spool.NothingToSpool
    key = form.cleaned_data["idempotency_key"] or uuid.uuid4().hex
    contact = spool.spool_contact("web", key, _inquiry(request, form), reference=intake.reserve_spool_reference())
    return _received(request, contact.reference, intake.token_for_idempotency_key(key), status=202)


@never_cache
@require_http_methods(["GET", "POST"])
@spool_on_failure(_spool_inquiry)
def inquiry_form(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        form = InquiryForm(initial={"idempotency_key": new_idempotency_key()})
        return render(request, "helpline/inquiry_form.html", {**_page_context(), "form": form})
    throttled = _too_many(request, InquiryRateThrottle())
    if throttled:
        return throttled
    form = InquiryForm(request.POST)
    if not form.is_valid():
        return render(request, "helpline/inquiry_form.html", {**_page_context(), "form": form}, status=400)
    inquiry = _inquiry(request, form)
    try:
        received = services.receive_web_inquiry(**inquiry, idempotency_key=form.cleaned_data["idempotency_key"])
    except intake.IdempotencyKeyReused:
        # The page was sent again with other words (back button, new message): a new inquiry, not a retry.
        received = services.receive_web_inquiry(**inquiry)
    return _received(request, received.case.reference, received.token, status=201)


def _spool_follow_up(request: HttpRequest) -> HttpResponse:
    """A follow-up kept in the spool; its case and code are checked when it is replayed."""
    form = FollowUpForm(request.POST)
    if request.method != "POST" or not form.is_valid():
        raise spool.NothingToSpool  # a status check cannot be answered without the database
    data = form.cleaned_data
    spool.spool_contact(
        "follow_up", data["idempotency_key"] or uuid.uuid4().hex, {"code": data["code"], "message": data["message"]},
        reference=data["reference"].strip().upper(),
    )  # fmt: skip
    context = {**_page_context(), "reference": data["reference"].strip().upper()}
    return render(request, "helpline/follow_up_received.html", context, status=202)


@never_cache
@require_http_methods(["GET", "POST"])
@spool_on_failure(_spool_follow_up)
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
        services.receive_follow_up(
            case, form.cleaned_data["message"], idempotency_key=form.cleaned_data["idempotency_key"] or None
        )
        case.refresh_from_db()
    return render(
        request,
        "helpline/inquiry_status.html",
        {
            **context,
            "case": case,
            "code": form.cleaned_data["code"],
            "replies": selectors.replies_for_citizen(case),
            "follow_up_form": FollowUpForm(
                initial={
                    "reference": case.reference,
                    "code": form.cleaned_data["code"],
                    "idempotency_key": new_idempotency_key(),
                }
            ),
            "sent": writing_again,
        },
    )
