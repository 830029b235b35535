"""The one login lockout for the admin, the console and the API token login (django-axes, database counters).

Three counters over the cool-off window, each with its own limit: failures for one username from one address
(LOGIN_FAILURES_PER_USERNAME), failures from one address for any username (LOGIN_FAILURES_PER_ADDRESS), and
failures for one username from every address together (LOGIN_FAILURES_PER_USERNAME_EVERYWHERE). A person who
mistypes is stopped after a few tries; someone trying many names from one address is stopped too; and guesses at
one name spread over many addresses (a botnet) are stopped by the third, which is far above the others, so one
address alone never reaches it.

Nobody can lock a named worker out by failing on purpose: the first two counters are per address, and neither the
second nor the third applies at an address the person has signed in from before (axes' access log), so they still
get in from their usual places (the office's shared address among them) while someone guesses from elsewhere or at
other names from there. Only far more failures from one address (LOGIN_FAILURES_PER_ADDRESS_FOR_EVERYONE) stop
everyone there: guessing at the names that do sign in there, a few at a time each, is not endless either.
"""
from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or with NUM_PROXIES > 0 the address the outermost trusted proxy saw, counted from the right
    of X-Forwarded-For exactly as DRF's throttles count. Whatever a client writes in the header itself sits to the
    left of that and is never read, so a rotating header cannot walk around the lockout."""
    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if num_proxies > 0 and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        return addresses[-min(num_proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR", "")


def _failures(attempts) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class TwoCounterHandler(AxesDatabaseHandler):
    """Axes' database handler, with a separate limit for each of the two counters (axes has one limit for all)."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        recent = AccessAttempt.objects.filter(
            attempt_time__gte=get_cool_off_threshold(request), ip_address=request.axes_ip_address
        )
        username = get_client_username(request, credentials)
        per_username = _failures(recent.filter(username=username))
        reached = (
            per_username >= settings.LOGIN_FAILURES_PER_USERNAME
            or self._guessed_at_from_here(request, recent, username)
            or (username and self._guessed_at_everywhere(request, username))
        )
        return settings.AXES_FAILURE_LIMIT if reached else 0

    @staticmethod
    def _guessed_at_from_here(request, recent, username: str) -> bool:
        """Failures from this address for any name reached their limit, and this name has never signed in here;
        or they reached the far higher limit that stops everyone there. Staff share their office's address (one
        NAT, the guest Wi-Fi on the same line): one infected PC there failing at twenty names must not lock every
        colleague out of the console, which a flood night needs. But without the higher limit it could guess
        four passwords of every colleague every quarter of an hour, for ever."""
        failures = _failures(recent)
        if failures >= settings.LOGIN_FAILURES_PER_ADDRESS_FOR_EVERYONE:
            return True
        if failures < settings.LOGIN_FAILURES_PER_ADDRESS:
            return False
        signed_in_here = AccessLog.objects.filter(username=username, ip_address=request.axes_ip_address)
        return not (username and signed_in_here.exists())

    @staticmethod
    def _guessed_at_everywhere(request, username: str) -> bool:
        everywhere = AccessAttempt.objects.filter(attempt_time__gte=get_cool_off_threshold(request), username=username)
        if _failures(everywhere) < settings.LOGIN_FAILURES_PER_USERNAME_EVERYWHERE:
            return False
        return not AccessLog.objects.filter(username=username, ip_address=request.axes_ip_address).exists()


class LockoutBackend(AxesStandaloneBackend):
    """Axes' check before the password backend. A password checked with no request at all comes from code on the
    server (a management command, a test), not from the network: there is no address to count, so it is left to
    the password backend instead of refused. Every login page and the token login pass their request."""

    def authenticate(self, request: HttpRequest | None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def is_locked_out(request: HttpRequest) -> bool:
    """Set by axes on the request whose login it refused, or whose failure reached a limit."""
    return bool(getattr(request, "axes_locked_out", False))


def retry_after_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None, credentials=None):
    """The answer to a locked-out login on any surface: the console's 429 page, or JSON for the API."""
    if original_response is not None and original_response.status_code == 429:
        return original_response  # the surface already answered in its own way
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": _("Too many failed logins. Try again later.")}, status=429)
    else:
        response = render(request, "console/too_many_logins.html", status=429)
    response["Retry-After"] = str(retry_after_seconds())
    return response
