"""Citizens' pages while the database is unreachable. Sessions live in the database: a browser with a session
cookie (a case open in it) made the staff middlewares' look at the signed-in user fail before the page's view ran,
so a follow-up ("he is back") got an error page instead of being spooled (helpline.intake.spool)."""
from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse


class SessionWhileTheDatabaseIsDown(SessionBase):
    """An empty session that is never saved, under the browser's own key: the cookie it carries stays as it was,
    and the session behind it is there again once the database is."""

    def load(self) -> dict:
        return {}

    def exists(self, session_key: str) -> bool:
        return False

    def create(self) -> None:
        return None

    def save(self, must_create: bool = False) -> None:
        return None

    def delete(self, session_key: str | None = None) -> None:
        return None

    @classmethod
    def clear_expired(cls) -> None:
        return None


class CitizenPagesWithoutTheDatabaseMiddleware:
    """Before the staff middlewares (which read the user in process_view): on a page that spools what it is sent
    (`spool_on_failure`), a database that cannot be reached makes the request signed out, with an empty session,
    and the view spools the contact. Staff pages still fail in their views, with the 503 page."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        if not getattr(view_func, "spools_its_contact", False) or not hasattr(request, "user"):
            return None
        try:
            request.user.is_authenticated  # noqa: B018 - reads the session, where the database is needed
        except DatabaseError:
            request.session = SessionWhileTheDatabaseIsDown(request.session.session_key)
            request.user = AnonymousUser()
        return None
