"""Django's own error answers (a path no route matches, a request refused before any view ran) as JSON under the
API, so a client of the API always gets the JSON object the schema documents; elsewhere Django's pages."""
from __future__ import annotations

import logging
import sys

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults

from helpline.project.request_limits import body_too_large

logger = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": _("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):  # a body with no declared length, found too large when read
        return body_too_large(request)
    if _is_api(request):
        return JsonResponse({"detail": _("Bad request.")}, status=400)
    return defaults.bad_request(request, exception)



def server_error(request: HttpRequest) -> HttpResponse:
    """A database that cannot be reached (stopped, restarting, a network cut) is answered 503 with Retry-After, not
    with Django's 500 page: Twilio's status callbacks and a worker's console page got "Server Error" during a
    PostgreSQL restart. (Intake never gets here: its views keep the contact in the spool and answer.) Called by
    Django for any uncaught exception, in a view or a middleware, while that exception is being handled."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        logger.warning("the database is unavailable (%s): %s answered 503", type(error).__name__, request.path)
        message = _("The service is briefly unavailable. Try again in a moment.")
        if _is_api(request):
            response: HttpResponse = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = "10"
        return response
    if _is_api(request):
        return JsonResponse({"detail": _("A server error occurred.")}, status=500)
    return defaults.server_error(request)
