"""Django's own error answers (a path no route matches, a request refused before any view ran, an uncaught
exception, a form refused for its security token) as JSON under the API, so a client of the API always gets the JSON
object the schema documents; elsewhere the public pages with the emergency numbers (helpline.intake.error_pages)."""
from __future__ import annotations

import logging
import sys

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults

from helpline.intake import error_pages
from helpline.project.request_limits import body_too_large

logger = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return error_pages.is_api(request)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_pages.not_found(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: a citizen's form comes back with what they wrote, instead of Django's English
    developer page."""
    return error_pages.csrf_failure(request, reason)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):  # a body with no declared length, found too large when read
        return body_too_large(request)
    if _is_api(request):
        return JsonResponse({"detail": _("Bad request.")}, status=400)
    return defaults.bad_request(request, exception)



def server_error(request: HttpRequest) -> HttpResponse:
    """A database that cannot be reached (stopped, restarting, a network cut) is answered 503 with Retry-After, not
    with Django's 500 page: Twilio's status callbacks and a worker's console page got "Server Error" during a
    PostgreSQL restart. (Intake never gets here: its views keep the contact in the spool and answer.) A citizen gets
    the public page with the emergency numbers and the quick exit, a staff page a plain translated one, the API
    JSON. Called by Django for any uncaught exception, in a view or a middleware, while it is being handled."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        logger.warning("the database is unavailable (%s): %s answered 503", type(error).__name__, request.path)
        return error_pages.unavailable(request)
    return error_pages.server_error(request)
