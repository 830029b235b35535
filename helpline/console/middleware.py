"""Ends a signed-in session after a spell without activity. Polling is not activity: the queue page asks the
server for news every few seconds, and a screen nobody looks at must not keep a session open for ever."""
from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

LAST_ACTIVE_KEY = "console_last_active"
# The stamp is written at most this often, so a busy page does not write the session row on every click.
STAMP_EVERY_SECONDS = 30


def polling(view):
    """Marks a view whose requests come from a timer, not from a person (they do not extend the session)."""
    view.is_polling = True
    return view


def to_login(request: HttpRequest) -> HttpResponse:
    """Back to the login page; an htmx request is told to load it as a whole page, not inside a fragment."""
    url = f"{reverse('console:login')}?next={reverse('console:queue')}"
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(f"{reverse('console:login')}?next={request.get_full_path()}")


class IdleSessionMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        now = int(time.time())
        last_active = request.session.get(LAST_ACTIVE_KEY)
        is_console = request.path.startswith(reverse("console:queue"))
        if last_active is not None and now - last_active > settings.CONSOLE_IDLE_MINUTES * 60:
            logout(request)
            request.session["console_idle_logout"] = True
            return to_login(request) if is_console else None
        if getattr(view_func, "is_polling", False) or not is_console:
            return None
        if last_active is None or now - last_active >= STAMP_EVERY_SECONDS:
            request.session[LAST_ACTIVE_KEY] = now
        return None
