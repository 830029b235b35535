"""What a citizen sees when something goes wrong (a page not found, a server error, the database away, a form
refused for its security token): the public layout in their language, with the emergency numbers and the quick
exit, and what they wrote kept. None of these pages needs the database. Staff pages get a plain translated page,
the API its JSON, Twilio's webhooks a plain status."""
from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext as _

from helpline.cases.language import detect_script
from helpline.intake.cyrillic_pages import html_in_cyrillic
from helpline.intake.forms import FollowUpForm, InquiryForm, StatusCheckForm, new_idempotency_key

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "10"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _is_staff_page(request: HttpRequest) -> bool:
    return request.path.startswith(("/console/", "/admin/"))


def _is_webhook(request: HttpRequest) -> bool:
    return request.path.startswith("/webhooks/")


def _page_language(request: HttpRequest) -> str:
    """The language the citizen chose with the page's switch, else what the request was answered in. (The citizen
    pages also use the language of what they wrote; an error page has only the request.)"""
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    offered = {code for code, _name in settings.LANGUAGES}
    return chosen if chosen in offered else translation.get_language() or settings.LANGUAGE_CODE


def _written_in_cyrillic(request: HttpRequest) -> bool:
    # Only a form already read (request.POST) is looked at: an error page never reads a body of its own.
    message = request.POST.get("message", "") if request.method == "POST" and hasattr(request, "_post") else ""
    return detect_script(message) == "cyrillic"


def public_page(request: HttpRequest, template: str, context: dict, *, status: int) -> HttpResponse:
    """A public page in the reader's language; in Bosnian Cyrillic when the message they sent was in Cyrillic
    (as the citizen pages do, helpline.intake.views)."""
    language = _page_language(request)
    context = {"emergency": settings.EMERGENCY_NUMBERS, "quick_exit_url": settings.QUICK_EXIT_URL, **context}
    if language == "en" or not _written_in_cyrillic(request):
        with translation.override(language):
            return render(request, template, context, status=status)
    with translation.override("bs"):
        response = render(request, template, {**context, "html_lang": "bs-Cyrl"}, status=status)
    response.content = html_in_cyrillic(response.content.decode()).encode()
    return response


def _plain(request: HttpRequest, text: str, *, status: int) -> HttpResponse:
    """A staff page's error: one translated sentence, no layout that could itself fail."""
    with translation.override(_page_language(request)):
        body = f'<!DOCTYPE html><html lang="{translation.get_language()}"><meta charset="utf-8">' \
               f"<title>{status}</title><p>{escape(text())}</p></html>"  # fmt: skip
    return HttpResponse(body, status=status, content_type="text/html; charset=utf-8")


def _error_page(request: HttpRequest, *, status: int, title, explanation, call_now: bool) -> HttpResponse:
    """The public error page; should it fail to render, a plain translated one (a citizen never meets Django's)."""
    try:
        with translation.override(_page_language(request)):
            context = {"title": title(), "explanation": explanation(), "call_now": call_now}
        return public_page(request, "helpline/error.html", context, status=status)
    except Exception:
        logger.exception("the public %s page failed to render; answered with a plain one", status)
        return _plain(request, title, status=status)


def _not_found_title() -> str:
    return _("Page not found")


def _server_error_title() -> str:
    return _("Something went wrong on our side")


def _unavailable_title() -> str:
    return _("The service is briefly unavailable")


def not_found(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": _("Not found.")}, status=404)
    if _is_staff_page(request):
        return _plain(request, _not_found_title, status=404)
    return _error_page(
        request, status=404, title=_not_found_title, call_now=False,
        explanation=lambda: _("This address leads nowhere on our site. You can write to us or read your case from "
                              "here."),
    )  # fmt: skip


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": _("A server error occurred.")}, status=500)
    if _is_staff_page(request):
        return _plain(request, _server_error_title, status=500)
    return _error_page(
        request, status=500, title=_server_error_title, call_now=True,
        explanation=lambda: _("What you asked for could not be done. If you were sending us a message, it may not have "
                              "arrived: go back and send it again in a moment. If you are in danger, call now."),
    )  # fmt: skip


def unavailable(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After, while the database cannot be reached (stopped, restarting, a network cut)."""
    if is_api(request):
        response: HttpResponse = JsonResponse({"detail": _unavailable_title() + "."}, status=503)
    elif _is_webhook(request):  # Twilio reads only the status (and then tries the number's fallback URL)
        response = HttpResponse("Temporarily unavailable.", status=503, content_type="text/plain")
    elif _is_staff_page(request):
        response = _plain(request, lambda: _("The service is briefly unavailable. Try again in a moment."), status=503)
    else:
        response = _error_page(
            request, status=503, title=_unavailable_title, call_now=True,
            explanation=lambda: _("Try again in a moment: go back and press the button again. If you are in danger, "
                                  "call now."),
        )  # fmt: skip
    response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


# --- A form refused for its security token (settings.CSRF_FAILURE_VIEW) -----------------------------------------


def _kept(request: HttpRequest, *names: str) -> dict:
    return {name: request.POST[name] for name in names if name in request.POST}


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form sent without a valid security token: cookies blocked or cleared (safety advice tells people to clear
    them), or a page left open for days. A citizen's form comes back as it was sent, with a fresh token, saying that
    nothing was sent yet: pressing Send again sends it. Nothing is stored here."""
    logger.info("a form on %s was refused for its security token (%s)", request.path, reason)
    if is_api(request):
        return JsonResponse({"detail": _("CSRF check failed: reload the page and try again.")}, status=403)
    if _is_staff_page(request) or request.method != "POST":
        return _plain(request, lambda: _("This page had expired. Reload it and try again."), status=403)
    key = request.POST.get("idempotency_key") or new_idempotency_key()
    if request.path == reverse("inquiry-form"):
        fields = ("message", "name", "phone", "email", "safe_to_call", "safe_to_text", "safe_contact_note")
        form = InquiryForm(initial={**_kept(request, *fields), "idempotency_key": key})
        return public_page(request, "helpline/inquiry_form.html", {"form": form, "not_sent": True}, status=403)
    if request.path == reverse("inquiry-status"):
        if "message" in request.POST:
            form = FollowUpForm(initial={**_kept(request, "reference", "code", "message"), "idempotency_key": key})
        else:
            form = StatusCheckForm(initial=_kept(request, "reference", "code"))
        return public_page(request, "helpline/inquiry_status.html", {"form": form, "not_sent": True}, status=403)
    return _error_page(
        request, status=403, title=lambda: _("This page had expired"), call_now=False,
        explanation=lambda: _("Go back, reload the page and try again."),
    )  # fmt: skip
