"""Whether staff alerts are getting out: the share of recent sends the provider refused, and the alert that tells
supervisors, by every channel that still works, when most of them fail. The board and /healthz/ read
`delivery_health(now)`; the periodic task calls `alert_supervisors_of_failing_delivery(now)`."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.utils import timezone

from helpline.cases.dispatch import ALERTS_QUEUE
from helpline.roster.selectors import all_supervisors
from notifications.models import TO_CITIZENS, DeliveryAttempt, Notification, NotificationKind
from notifications.outbox import (
    DELIVERY_ALERT_PREFIX,
    FAILED,
    RECOVERED_PREFIX,
    RETRY,
    SENT,
    last_successful_send,
    queue_notification,
)

logger = logging.getLogger(__name__)



def _window() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "DELIVERY_HEALTH_WINDOW_SECONDS", 300))


def _threshold() -> float:
    """Failing when more than this share of the window's sends failed..."""
    return getattr(settings, "DELIVERY_FAILURE_THRESHOLD", 0.5)


def _recent_window() -> dt.timedelta:
    """The last minute on its own: an outage right after a busy spell is failing here at once, while the busy
    spell's successes still hold the five-minute share under the threshold. The fault drill saw that: a 200 s
    Twilio outage after the service had sent a few hundred alerts never crossed it, and nobody was told."""
    return dt.timedelta(seconds=getattr(settings, "DELIVERY_HEALTH_RECENT_SECONDS", 60))


def _minimum_sends() -> int:
    """... and at least this many were tried: two failures at 3 a.m. are not an outage."""
    return getattr(settings, "DELIVERY_HEALTH_MIN_SENDS", 5)


@dataclass(frozen=True)
class DeliveryHealth:
    window_start: dt.datetime  # of the window the figures below are from: the failing one, else the five minutes
    window_seconds: int
    sends: int  # send attempts in the window (not status callbacks, not drills, not these alerts themselves)
    # Of them, those refused or unreachable, unless a later try of the same notification got through: during an
    # outage the retries count, so it shows within a minute or two; once Twilio is back, the failures of
    # everything it then delivered drop out, so recovery shows as soon as the backlog has gone.
    failures: int
    rate: float  # failures / sends; 0.0 with no sends
    is_failing: bool
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None

    def as_dict(self) -> dict:
        """For /healthz/ and the board: plain values, times as ISO 8601."""
        return {
            "sends": self.sends, "failures": self.failures, "failure_rate": round(self.rate, 3),
            "is_failing": self.is_failing, "window_seconds": self.window_seconds,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "last_failure_at": self.last_failure_at.isoformat() if self.last_failure_at else None,
        }  # fmt: skip


# What Twilio reports after it took a send: an SMS the carrier did not deliver (blocked or filtered, 30003/30007),
# a call that could not be placed. Twilio took them, so they counted as sent, and a carrier blocking the line
# went unnoticed. (A call nobody answers is a person asleep, not a failing line: not counted.)
LATER_FAILURES = ("callback undelivered", "callback failed", "call failed")
# A handset switched off or out of reach (30003) is that person's phone, not the line: a night's call-out to
# off-duty phones would otherwise read as "staff alerts are failing" to every supervisor.
HANDSET_UNREACHABLE = "30003"


def delivery_health(now: dt.datetime | None = None) -> DeliveryHealth:
    """How sends went over the last five minutes and, apart, over the last minute: failing when either window is
    (its figures are then the ones reported). One aggregate over the delivery attempts counts both windows."""
    now = now or timezone.now()
    starts = (now - _window(), now - _recent_window())
    failed = Q(result__in=(RETRY, FAILED))
    # Staff alerts only: an SMS to a citizen's landline (a crisis broadcast to voice callers) fails for reasons of
    # its own, and counting those raised "staff alerts are failing" with every staff alert getting through.
    attempts = _staff_alert_attempts().filter(
        at__gt=min(starts), at__lte=now, result__in=(SENT, RETRY, FAILED, *LATER_FAILURES)
    )
    latest_try = DeliveryAttempt.objects.filter(
        notification_id=OuterRef("notification_id"), result__in=(SENT, RETRY, FAILED)
    ).order_by("-at", "-pk")
    still_failed = failed & ~Q(latest=SENT) | Q(result__in=LATER_FAILURES) & ~Q(error_code=HANDSET_UNREACHABLE)
    counts = {}
    for name, start in zip(("window", "recent"), starts, strict=True):
        in_window = Q(at__gt=start)
        counts |= {f"{name}_sends": Count("pk", filter=in_window & Q(result__in=(SENT, RETRY, FAILED))),
                   f"{name}_failures": Count("pk", filter=in_window & still_failed)}  # fmt: skip
    figures = attempts.annotate(latest=Subquery(latest_try.values("result")[:1])).aggregate(
        **counts, last_failure_at=Max("at", filter=(failed | Q(result__in=LATER_FAILURES)) & Q(at__gt=starts[0]))
    )
    windows = [
        _window_share(start, figures[f"{name}_sends"], figures[f"{name}_failures"])
        for name, start in zip(("window", "recent"), starts, strict=True)
    ]
    failing = [window for window in windows if window["is_failing"]]
    shown = failing[0] if failing else windows[0]
    return DeliveryHealth(
        window_start=shown["start"], window_seconds=int((now - shown["start"]).total_seconds()),
        sends=shown["sends"], failures=shown["failures"], rate=shown["rate"], is_failing=bool(failing),
        last_success_at=last_successful_send(), last_failure_at=figures["last_failure_at"],
    )  # fmt: skip


def _staff_alert_attempts():
    """What the health counts: attempts at staff alerts, not drills, not these alerts themselves."""
    return (
        DeliveryAttempt.objects.filter(notification__is_drill=False)
        .exclude(notification__idempotency_key__startswith=DELIVERY_ALERT_PREFIX)
        .exclude(notification__kind__in=TO_CITIZENS)
    )


def _window_share(start: dt.datetime, sends: int, failures: int) -> dict:
    failures = min(failures, sends)  # a later report may be about a send made before the window
    rate = failures / sends if sends else 0.0
    return {"start": start, "sends": sends, "failures": failures, "rate": rate,
            "is_failing": sends >= _minimum_sends() and rate > _threshold()}  # fmt: skip


def _open_outage() -> str:
    """The outage supervisors were told about and not yet told is over ("" when none): alerts are keyed
    `delivery-alert:<outage>:<supervisor>`, the all-clear `delivery-recovered:<outage>:<supervisor>`."""
    latest = (
        Notification.objects.filter(idempotency_key__startswith=DELIVERY_ALERT_PREFIX)
        .order_by("-created_at", "-pk")
        .values_list("idempotency_key", flat=True)
        .first()
    )
    if latest is None:
        return ""
    outage = latest.split(":")[1]
    is_closed = Notification.objects.filter(idempotency_key__startswith=f"{RECOVERED_PREFIX}{outage}:").exists()
    return "" if is_closed else outage


def alert_supervisors_of_failing_delivery(now: dt.datetime | None = None) -> int:
    """Once per outage: every supervisor is told that staff alerts are failing, by SMS through the alert sender
    (DELIVERY_ALERT_SENDER, another number or a Messaging Service, where configured) on the critical queue, and in
    the log; the board and /healthz/ show the same state from `delivery_health`. Once the provider takes messages
    again and the rate is back under the threshold, the same supervisors are told it is over. Safe to run twice:
    each message is keyed by the outage and the supervisor. Returns the number of messages written."""
    now = now or timezone.now()
    health = delivery_health(now)
    outage = _open_outage()
    if health.is_failing and not outage:
        logger.error("staff alerts are failing: %d of %d sends in the window", health.failures, health.sends)
        return _tell_supervisors(DELIVERY_ALERT_PREFIX, _name_of_new_outage(health), _failing_text(health))
    alert_at = _alert_time(outage)
    has_recovered = health.last_success_at is not None and alert_at is not None and health.last_success_at > alert_at
    if outage and not health.is_failing and has_recovered:
        logger.warning("staff alerts are getting out again")
        return _tell_supervisors(RECOVERED_PREFIX, outage, _recovered_text())
    return 0


def _name_of_new_outage(health: DeliveryHealth) -> str:
    """An outage is named after its first failure of any kind in the window since the last all-clear: two ticks at
    once write the same keys, and the next outage has another name. Named after the first send Twilio refused, an
    outage in which Twilio took everything and the carrier delivered nothing (30007) was "None", and so was the
    next: its alerts were already written, and supervisors were never told again."""
    last_all_clear = Notification.objects.filter(idempotency_key__startswith=RECOVERED_PREFIX).aggregate(
        at=Max("created_at")
    )["at"]
    since = max(health.window_start, last_all_clear) if last_all_clear else health.window_start
    first_failure = (
        _staff_alert_attempts()
        .filter(at__gt=since, result__in=(RETRY, FAILED, *LATER_FAILURES))
        .order_by("at", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    # Its failures all came before the last all-clear: named after when this one was found.
    return str(first_failure) if first_failure is not None else f"t{int(since.timestamp())}"


def _alert_time(outage: str) -> dt.datetime | None:
    if not outage:
        return None
    alerts = Notification.objects.filter(idempotency_key__startswith=f"{DELIVERY_ALERT_PREFIX}{outage}:")
    return alerts.order_by("created_at").values_list("created_at", flat=True).first()


def _tell_supervisors(prefix: str, outage: str, text: str) -> int:
    written = 0
    for supervisor in all_supervisors():
        notification = queue_notification(
            key=f"{prefix}{outage}:{supervisor.pk}", to_number=str(supervisor.phone), body=text,
            kind=NotificationKind.ESCALATION, recipient=supervisor.user, queue=ALERTS_QUEUE,
        )  # fmt: skip
        written += notification is not None
    return written


def _failing_text(health: DeliveryHealth) -> str:
    # Staff texts are Bosnian (texts.py); this one is written here until texts.py gains it.
    minutes = max(1, health.window_seconds // 60)
    return (
        f"{settings.HELPLINE_NAME}: slanje obavijesti osoblju ne uspijeva ({health.failures} od {health.sends} "
        f"u zadnjih {minutes} min). Pratite slučajeve na tabli konzole; neobaviješteni slučajevi čekaju."
    )


def _recovered_text() -> str:
    return f"{settings.HELPLINE_NAME}: slanje obavijesti osoblju ponovo radi."
