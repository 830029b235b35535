"""The container's own health check reaches /healthz/ over loopback, whatever ALLOWED_HOSTS says.

docker-compose's healthcheck asks http://127.0.0.1:8000/healthz/ from inside the web container; once ALLOWED_HOSTS
names only the public host, Django answered it 400 (DisallowedHost) and the container was marked unhealthy while it
served everyone. A Host header in the healthcheck would have to follow ALLOWED_HOSTS by hand; this follows it alone.
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import validate_host

HEALTH_PATH = "/healthz/"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})


def an_allowed_host() -> str | None:
    """A host name ALLOWED_HOSTS accepts ("*" accepts any; ".example.ba" accepts example.ba), or None."""
    for pattern in settings.ALLOWED_HOSTS:
        host = "localhost" if pattern == "*" else pattern.lstrip(".")
        if host and validate_host(host, settings.ALLOWED_HOSTS):
            return host
    return None


class LoopbackHealthCheckMiddleware:
    """First in MIDDLEWARE: a GET of /healthz/ from the machine itself is given an allowed Host, so the host check
    (CommonMiddleware's, and anyone's get_host()) passes. Any other path or address is checked as ever; /healthz/
    builds no URL from the host, so nothing can be spoofed with it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH and request.META.get("REMOTE_ADDR") in LOOPBACK_ADDRESSES:
            host = an_allowed_host()
            if host is not None:
                request.META["HTTP_HOST"] = host
        return self.get_response(request)
