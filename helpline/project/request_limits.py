"""A cap on request bodies, checked before anything reads one: a clear 413, never a 500 and never a 2 MB row.

Django's own cap (DATA_UPLOAD_MAX_MEMORY_SIZE) is met only when a view reads request.POST or request.body, and DRF
reads the stream without it; so the declared Content-Length is checked here first, for every surface (the public
form, the API, Twilio's webhooks, the console and the admin). A file upload (the welfare register) has a larger
cap of its own. A body sent without a length (chunked) still meets Django's cap when it is read (answered 413 by
helpline.api.errors)."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _


def body_too_large(request: HttpRequest) -> HttpResponse:
    detail = _("The request is too large.")
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail}, status=413)
    return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        is_upload = request.META.get("CONTENT_TYPE", "").startswith("multipart/form-data")
        limit = settings.UPLOAD_MAX_BYTES if is_upload else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length > limit:
            return body_too_large(request)
        return self.get_response(request)
