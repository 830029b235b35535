"""Telling a rehearsal contact from a real one.

`manage.py drill` sends its contacts through the real webhooks and API with an X-Helpline-Drill header: a nonce
and an expiry, signed with an HMAC under the SECRET_KEY. Nobody without the key can mark a contact as a drill, so a
real person can never be quietly kept away from the on-duty phones by a forged header; a marker is accepted once
and only until it expires, so one seen in a log or a proxy cannot be replayed to open a flood of drill cases that
skip the public throttle. An invalid, expired or used marker is simply ignored and the contact is treated as real.
Used nonces are kept in the cache (shared by every web process when CACHE_URL points at Redis) until they expire.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterable

from django.core.cache import cache
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare, salted_hmac

from helpline.cases.models import Case, EventKind, Message, TimelineEvent
from notifications.models import Notification

DRILL_HEADER = "X-Helpline-Drill"
_SALT = "helpline.drill"


# Long enough for a request to reach the service under a surge's load, short enough that a leaked one is soon dead.
MARKER_LIFETIME_SECONDS = 300
_VERDICT = "_helpline_drill_verdict"


def new_drill_marker(*, lifetime_seconds: int = MARKER_LIFETIME_SECONDS) -> str:
    """A marker for one contact: `<nonce>.<expires, unix seconds>:<signature>`."""
    payload = f"{secrets.token_hex(12)}.{int(time.time()) + lifetime_seconds}"
    return f"{payload}:{salted_hmac(_SALT, payload).hexdigest()}"


def _accept(marker: str) -> bool:
    payload, _, signature = marker.partition(":")
    if not (payload and signature and constant_time_compare(signature, salted_hmac(_SALT, payload).hexdigest())):
        return False
    nonce, _, expires = payload.partition(".")
    remaining = int(expires) - int(time.time()) if expires.isascii() and expires.isdigit() else -1
    # cache.add is atomic: of two requests with one marker, only one gets it.
    return remaining > 0 and cache.add(f"drill-marker:{nonce}", 1, timeout=remaining + 60)


def is_drill_request(request: HttpRequest) -> bool:
    """Whether this request carries a valid, unexpired, unused drill marker. Asked more than once per request (the
    throttle, then the view), so the first answer is kept on the request: the marker is used up by that request."""
    base = getattr(request, "_request", request)  # DRF's request wraps Django's
    verdict = getattr(base, _VERDICT, None)
    if verdict is None:
        verdict = _accept(request.headers.get(DRILL_HEADER, ""))
        setattr(base, _VERDICT, verdict)
    return verdict


def contact_figures(cases: QuerySet[Case], *, sids: Iterable[str], references: Iterable[str]) -> dict:
    """What happened to contacts sent by a load run: lost and duplicated (against the Twilio SIDs and inquiry
    references sent), and per case the seconds from intake to assignment and to the assignment SMS handed to the
    SMS backend (all cases and critical ones), and each escalation step's lateness.

    A critical case counts from intake to its first assignment and SMS as critical: one the model's second look
    made critical after the rules had assigned it as less is counted to its hand-over as critical, not to the
    earlier alert. Those cases are also given apart ("model_critical")."""

    sids, references = set(sids), set(references)
    stored = Message.objects.filter(twilio_sid__in=sids).values("twilio_sid").annotate(n=Count("id"))
    found_sids = {row["twilio_sid"] for row in stored}
    found_references = set(Case.objects.filter(reference__in=references).values_list("reference", flat=True))
    figures: dict = {
        "lost": len(sids - found_sids) + len(references - found_references),
        "duplicated": sum(1 for row in stored if row["n"] > 1),
        "cases": cases.count(),
        "untriaged": cases.filter(triaged_at__isnull=True).count(),
        "unassigned": cases.filter(assigned_to__isnull=True).count(),
        "awaiting_model": cases.filter(awaiting_model=True).count(),
    }
    critical_since = _critical_since(cases.filter(priority="critical"))
    model_critical = {pk for pk, (_, by_model) in critical_since.items() if by_model}
    for label, subset in (("all", cases), ("critical", cases.filter(priority="critical"))):
        created = list(subset.values_list("pk", "created_at"))
        # A case made critical between the two reads (the second look runs beside a report) counts from intake.
        since = {pk: critical_since.get(pk, (at, False))[0] for pk, at in created} if label == "critical" else {}
        assigned = _first_after(TimelineEvent.objects.filter(case__in=subset, kind=EventKind.ASSIGNED), since)
        handed = _first_after(
            Notification.objects.filter(case__in=subset, kind="assignment", sent_at__isnull=False), since,
            at="sent_at",
        )  # fmt: skip
        figures[f"assign_{label}"] = [_seconds(assigned[pk] - at) for pk, at in created if pk in assigned]
        figures[f"notify_{label}"] = [_seconds(handed[pk] - at) for pk, at in created if pk in handed]
        figures[f"assign_{label}_at"] = [(at, _seconds(assigned[pk] - at)) for pk, at in created if pk in assigned]
        if label == "critical":
            figures["model_critical"] = len(model_critical)
            figures["notify_model_critical"] = [
                _seconds(handed[pk] - at) for pk, at in created if pk in handed and pk in model_critical
            ]
            figures["notify_rules_critical"] = [
                _seconds(handed[pk] - at) for pk, at in created if pk in handed and pk not in model_critical
            ]
    steps = TimelineEvent.objects.filter(case__in=cases, kind=EventKind.ESCALATED)
    figures["escalation_lateness"] = [
        details["lateness_seconds"]
        for details in steps.values_list("details", flat=True)
        if details.get("lateness_seconds") is not None
    ]
    return figures


def _critical_since(critical: QuerySet[Case]) -> dict[int, tuple[dt.datetime, bool]]:
    """Per critical case: when a triage first called it critical, and whether that was the model's second look."""
    since: dict[int, tuple[dt.datetime, bool]] = {}
    triages = TimelineEvent.objects.filter(case__in=critical, kind=EventKind.TRIAGED).order_by("id")
    for case_id, at, details in triages.values_list("case_id", "created_at", "details"):
        if case_id not in since and details.get("priority") == "critical":
            since[case_id] = (at, bool(details.get("second_look")))
    return since


def _first_after(rows: QuerySet, since: dict[int, dt.datetime], *, at: str = "created_at") -> dict[int, dt.datetime]:
    """Per case, the earliest `at` of its rows, counting only rows created at or after the case's moment in
    `since` (an alert queued before the case was critical is not its critical alert, even if sent after)."""
    first: dict[int, dt.datetime] = {}
    for case_id, created, moment in rows.values_list("case_id", "created_at", at):
        if case_id in since and created < since[case_id]:
            continue
        if case_id not in first or moment < first[case_id]:
            first[case_id] = moment
    return first


def _seconds(delta: dt.timedelta) -> float:
    return delta.total_seconds()
