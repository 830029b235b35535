"""What every staff request passes: a session ends after a spell without activity (console and admin alike), a
deactivated person is signed out, and the second factor is asked for where it is needed. Polling is not activity:
the queue page asks the server for news every few seconds, and a screen nobody looks at must not keep a session
open for ever."""
from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from helpline.access.revocation import has_access
from helpline.access.second_factor import has_second_factor, must_have_second_factor

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
    return redirect(f"{reverse('console:login')}?{urlencode({'next': request.get_full_path()})}")


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
        # The admin holds the same cases and the roster: its sessions idle out on the same clock.
        is_admin = request.path.startswith(reverse("admin:index"))
        if last_active is not None and now - last_active > settings.CONSOLE_IDLE_MINUTES * 60:
            logout(request)
            request.session["console_idle_logout"] = True
            if is_admin:
                return redirect(f"{reverse('admin:login')}?{urlencode({'next': request.get_full_path()})}")
            return to_login(request) if is_console else None
        if getattr(view_func, "is_polling", False) or not (is_console or is_admin):
            return None
        if last_active is None or now - last_active >= STAMP_EVERY_SECONDS:
            request.session[LAST_ACTIVE_KEY] = now
        return None


class DeactivatedStaffMiddleware:
    """Signs out a session whose staff profile was deactivated (Django itself signs out an inactive user): a
    console left open by someone who has left the service ends on its next request, whatever page it asks for."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        # In process_view, not before it: a citizen's page is let through while the database (and so the session)
        # cannot be read (helpline.project.outage), and that is known only once the view is.
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not has_access(user):
            logout(request)


def _prefixes(*names: str) -> tuple[str, ...]:
    return tuple(reverse(name) for name in names)


def _api_root() -> str:
    return reverse("api:me").removesuffix("me/")


def _send_to(request: HttpRequest, url_name: str) -> HttpResponse:
    if request.path.startswith(_api_root()):
        detail = _("A second factor is needed: set it up or enter it in the console.")
        return JsonResponse({"detail": detail}, status=403)
    back_to = request.get_full_path() if request.method == "GET" else reverse("console:queue")
    url = f"{reverse(url_name)}?{urlencode({'next': back_to})}"
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


class SecondFactorMiddleware:
    """Asks for the second factor (helpline.access.second_factor) before the pages that need it.

    Someone who has an authenticator enters a code once per sign-in before any staff page; a supervisor without
    one is sent to set it up before any console page or the API; nobody opens the admin without one. Logging in
    and out and the second-factor pages themselves stay open.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return None
        path = request.path
        open_paths = _prefixes("console:login", "console:logout", "console:two-factor", "console:two-factor-verify",
                               "admin:login", "admin:logout", "api:token", "api:logout")  # fmt: skip
        if path.startswith(open_paths):
            return None
        staff_paths = (*_prefixes("console:queue", "admin:index"), _api_root())
        if has_second_factor(user):
            return _send_to(request, "console:two-factor-verify") if path.startswith(staff_paths) else None
        is_admin = path.startswith(reverse("admin:index"))
        # A supervisor sets one up before anything in the console or the API: besides the board and the roster,
        # what only they may do (a person's export and erasure, the register, broadcasts to citizens, visits with
        # addresses, reassigning) is reached from many pages, and one left out was open with a password alone.
        supervisor_must = path.startswith(staff_paths) and must_have_second_factor(user)
        if (is_admin and settings.SECOND_FACTOR_REQUIRED) or supervisor_must:
            return _send_to(request, "console:two-factor")
        return None
