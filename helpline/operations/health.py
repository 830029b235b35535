"""GET /healthz/: whether intake works (the database answers), and how the broker and the periodic heartbeat are."""
from __future__ import annotations

from celery import current_app
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from helpline.cases.models import Heartbeat


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure to reach the database is "unreachable" for an operator
        return "unreachable"
    return "ok"


def _broker_state() -> str:
    try:
        with current_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
    except Exception:
        return "unreachable"
    return "ok"


def _heartbeat_age_seconds() -> float | None:
    try:
        beat = Heartbeat.objects.filter(name="beat").first()
    except Exception:
        return None
    return round((timezone.now() - beat.beat_at).total_seconds(), 1) if beat else None


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers (intake works); 503 when it does not. The broker and the periodic
    heartbeat are reported, not required: intake does not need them, and sweeps catch up when they return."""
    database = _database_state()
    body = {
        "status": "ok" if database == "ok" else "unavailable",
        "database": database,
        "broker": _broker_state(),
        "heartbeat_age_seconds": _heartbeat_age_seconds() if database == "ok" else None,
    }
    return JsonResponse(body, status=200 if database == "ok" else 503)
