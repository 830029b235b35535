"""Who may open the console's pages, and the answers for those who may not."""
from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from helpline.console.middleware import to_login
from helpline.roster.selectors import is_staff_member, is_supervisor


def forbidden(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(request, "console/forbidden.html", {"reason": reason}, status=403)


def staff_page(view):
    """Signed-in staff only (others go to the login page, or get 403 when signed in without a staff profile);
    a PermissionDenied raised by a service becomes the console's own 403 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return to_login(request)
        if not is_staff_member(request.user):
            return forbidden(request)
        try:
            return view(request, *args, **kwargs)
        except PermissionDenied as error:
            return forbidden(request, str(error))

    return wrapper


def supervisor_page(view):
    @staff_page
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_supervisor(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
