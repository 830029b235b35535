"""GET /healthz/: whether intake works (the database answers), and whether the work behind it runs: the broker,
beat's heartbeat, a consumer for every worker queue, and whether staff alerts get out (Twilio refusing them, or a
production deployment whose SMS_BACKEND only logs them).
Answers within about a second whatever is down."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import connection
from django.db.models import Case as SqlCase
from django.db.models import Min, Q, When
from django.db.models.functions import Coalesce
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from helpline.cases import dispatch
from helpline.cases.models import Case, CaseStatus, Heartbeat
from helpline.cases.tasks import BEAT_HEARTBEAT, WORKER_HEARTBEAT_PREFIX, queue_heartbeat_name
from notifications.backends import alerts_reach_no_phone_in_production
from notifications.delivery_health import delivery_health
from notifications.models import DeliveryStatus, Notification, NotificationKind
from notifications.outbox import WAITING_FOR_ACKNOWLEDGEMENT
from triage.semantic_model import RULES_ONLY_HEARTBEAT_PREFIX, RULES_ONLY_REPORT_EVERY_SECONDS, is_turned_off

BROKER_CHECK_TIMEOUT_SECONDS = 1.0
# A monitor polling every second must not open a broker connection every second; nor may a hung broker make
# each request wait its timeout. The answer is kept this long, per broker URL.
BROKER_STATE_CACHE_SECONDS = 5.0
_broker_states: dict[str, tuple[float, str]] = {}
# A worker that stops beating is reported missing for this long (a crash; one stopped on purpose says goodbye),
# then forgotten, so a worker retired without a goodbye does not keep the service "degraded" for ever.
FORGET_WORKER_AFTER_SECONDS = 3600
# A process triaging by the rules alone reports it once a minute; one silent for longer was restarted (and then
# loaded the model, or reports again) or stopped.
RULES_ONLY_FRESH_SECONDS = 3 * RULES_ONLY_REPORT_EVERY_SECONDS


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure to reach the database is "unreachable" for an operator
        return "unreachable"
    return "ok"


def _broker_state() -> str:
    with current_app.connection_for_read() as conn:  # no network yet: kombu connects on first use
        url = conn.as_uri()
        checked_at, state = _broker_states.get(url, (0.0, ""))
        if time.monotonic() - checked_at < BROKER_STATE_CACHE_SECONDS:
            return state
        try:
            conn.ensure_connection(max_retries=0, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
            state = "ok"
        except Exception:  # refused, timed out, unknown host: all "unreachable" for an operator
            state = "unreachable"
    _broker_states[url] = (time.monotonic(), state)
    return state


def _heartbeat_ages() -> dict[str, float]:
    """Seconds since each heartbeat: beat's, and one per queue that some worker consumes."""
    now = timezone.now()
    return {beat.name: (now - beat.beat_at).total_seconds() for beat in Heartbeat.objects.all()}


def _work_state(ages: dict[str, float]) -> tuple[dict, list[str]]:
    beat_age = ages.get(BEAT_HEARTBEAT)
    problems = []
    if beat_age is None:
        problems.append("beat has never run")
    elif beat_age > settings.HEALTH_BEAT_MAX_AGE_SECONDS:
        problems.append(f"beat heartbeat {beat_age:.0f} s old")
    queues = {}
    for queue in dispatch.QUEUES:
        age = ages.get(queue_heartbeat_name(queue))
        consumed = age is not None and age <= settings.HEALTH_WORKER_MAX_AGE_SECONDS
        queues[queue] = "ok" if consumed else "no consumer"
        if not consumed:
            problems.append(f"no worker consumes queue {queue}")
    workers = {}
    for name, age in sorted(ages.items()):
        if name.startswith(WORKER_HEARTBEAT_PREFIX) and age <= FORGET_WORKER_AFTER_SECONDS:
            hostname = name.removeprefix(WORKER_HEARTBEAT_PREFIX)
            workers[hostname] = "ok" if age <= settings.HEALTH_WORKER_MAX_AGE_SECONDS else "missing"
            if workers[hostname] != "ok":
                problems.append(f"worker {hostname} silent for {age:.0f} s")
    rules_only = [
        name
        for name, age in ages.items()
        if name.startswith(RULES_ONLY_HEARTBEAT_PREFIX) and age <= RULES_ONLY_FRESH_SECONDS
    ]
    if rules_only:
        problems.append(
            f"semantic triage unavailable in {len(rules_only)} worker process(es): triaging by the rules alone "
            "(the worker log says why)"
        )
    semantic = f"rules only in {len(rules_only)} process(es)" if rules_only else "ok"
    if is_turned_off():  # the centre's choice, not a fault to page anyone about; the state says it plainly
        semantic = "turned off: triage by the rules alone (SEMANTIC_TRIAGE=false)"
    beat_age = round(beat_age, 1) if beat_age is not None else None
    state = {"heartbeat_age_seconds": beat_age, "queues": queues, "workers": workers, "semantic_triage": semantic}
    return state, problems


def _staff_alert_state() -> tuple[dict, list[str]]:
    """Staff alerts the provider refused in the last few minutes (notifications.delivery_health): while most fail,
    cases are assigned to people who do not know it, so a monitor should warn even though intake works."""
    health = delivery_health()
    if not health.is_failing:
        return health.as_dict(), []
    minutes = round(health.as_dict()["window_seconds"] / 60)
    return health.as_dict(), [f"staff alerts failing: {health.failures} of {health.sends} sends in {minutes} min"]


# How far behind each kind of work may fall before a monitor should hear of it. Processes that beat can still be
# stuck (a hung child, a task that fails on every try, a replay that cannot store a file): these look at the work.
UNTRIAGED_MAX_SECONDS = 120  # triage takes well under a second; the sweep re-rings a lost doorbell after 30 s
AWAITING_MODEL_MAX_SECONDS = 600  # the model's second look lags in a surge (about two minutes at 100 contacts/s)
QUEUED_ALERT_MAX_SECONDS = 120  # a staff alert written and not yet handed to Twilio
# A worker's answer or a crisis event's answer to a citizen, due and not handed to Twilio. They share the SOS
# number's one SMS a second with everything else, behind alerts; a crisis broadcast (thousands, paced on purpose)
# is left out.
QUEUED_CITIZEN_REPLY_MAX_SECONDS = 300
SPOOLED_MAX_SECONDS = 60  # the replay runs every 10 s once the database answers


def _spooled_file_times(directory: Path) -> list[float]:
    """When each spooled contact was written. The replay deletes the files it stored while this reads them (after
    an outage, many a second): one gone since the listing is stored, not a fault."""
    times = []
    for path in directory.glob("*.json"):
        try:
            times.append(path.stat().st_mtime)
        except FileNotFoundError:
            continue
    return times


def _progress_state(now: dt.datetime) -> tuple[dict, list[str]]:
    """How old the oldest waiting piece of each kind of work is (seconds; None when nothing waits)."""
    due = Q(status=DeliveryStatus.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    since_due = Min(Coalesce("next_attempt_at", "created_at"))
    # A staff alert not yet handed to Twilio counts from when it was written, due or not: each retry, and each wait
    # for Twilio to say whether a lost try got through, moves its due time on, and measured from that, an alert that
    # never got out looked seconds old for ever. A call placed again after a busy line counts from its due time.
    never_handed_over = Q(sent_at__isnull=True)
    oldest = {
        "untriaged": Case.objects.filter(status=CaseStatus.NEW).aggregate(at=Min("created_at"))["at"],
        "awaiting_model": Case.objects.filter(awaiting_model=True).aggregate(at=Min("created_at"))["at"],
        # Left "sending" by a worker killed inside the send counts too: the relay may wait on Twilio meanwhile.
        "queued_staff_alert": Notification.objects.filter(
            Q(status=DeliveryStatus.QUEUED, recipient__isnull=False) & (due | never_handed_over)
            | Q(status=DeliveryStatus.SENDING, recipient__isnull=False, sent_at__isnull=True,
                created_at__lte=now - dt.timedelta(seconds=QUEUED_ALERT_MAX_SECONDS))
        ).aggregate(at=Min(SqlCase(When(never_handed_over, then="created_at"), default=Coalesce(
            "next_attempt_at", "created_at"
        ))))["at"],
        "queued_citizen_reply": Notification.objects.filter(
            due, kind__in=(NotificationKind.CITIZEN_REPLY, NotificationKind.CRISIS_ANSWER)
        ).aggregate(at=since_due)["at"],
        # A step that fails on every tick keeps its due time (helpline/cases/ticks.py): its ladder stood still.
        "overdue_escalation_step": Case.objects.filter(
            status__in=WAITING_FOR_ACKNOWLEDGEMENT, escalation_due_at__lte=now
        ).aggregate(at=Min("escalation_due_at"))["at"],
    }
    ages = {name: round((now - at).total_seconds()) if at else None for name, at in oldest.items()}
    spooled = _spooled_file_times(Path(settings.INTAKE_SPOOL_DIR))
    ages["spooled"] = round(time.time() - min(spooled)) if spooled else None
    limits = {
        "untriaged": (UNTRIAGED_MAX_SECONDS, "a contact not triaged for {age} s"),
        "awaiting_model": (AWAITING_MODEL_MAX_SECONDS, "the model's second look {age} s behind"),
        "queued_staff_alert": (QUEUED_ALERT_MAX_SECONDS, "a staff alert written {age} s ago not yet sent"),
        "queued_citizen_reply": (QUEUED_CITIZEN_REPLY_MAX_SECONDS, "a reply to a citizen due {age} s ago not yet sent"),
        "overdue_escalation_step": (
            settings.HEALTH_ESCALATION_MAX_LATE_SECONDS, "an escalation step due {age} s ago not yet run"
        ),
        "spooled": (SPOOLED_MAX_SECONDS, f"{len(spooled)} spooled contact(s) not stored, the oldest {{age}} s"),
    }
    problems = [text.format(age=ages[name]) for name, (limit, text) in limits.items() if (ages[name] or 0) > limit]
    return {f"oldest_{name}_seconds": age for name, age in ages.items()}, problems


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers (intake works), "degraded" with the reasons when the work behind intake
    is not running; 503 when the database does not answer. Intake needs neither broker nor workers (sweeps catch
    up when they return), so a monitor pages on 503 and warns on "degraded"."""
    database = _database_state()
    if database != "ok":
        body = {"status": "unavailable", "database": database, "problems": ["the database does not answer"]}
        return JsonResponse(body, status=503)
    broker = _broker_state()
    try:
        work, problems = _work_state(_heartbeat_ages())
    except Exception:  # the database went away between the two queries
        work, problems = {"heartbeat_age_seconds": None, "queues": {}, "workers": {}}, ["heartbeats unreadable"]
    try:
        work["staff_alerts"], alert_problems = _staff_alert_state()
    except Exception:  # as above: the answer must still come
        work["staff_alerts"], alert_problems = None, ["staff alert deliveries unreadable"]
    problems += alert_problems
    try:
        work["progress"], progress_problems = _progress_state(timezone.now())
    except Exception:  # as above
        work["progress"], progress_problems = None, ["waiting work unreadable"]
    problems += progress_problems
    if alerts_reach_no_phone_in_production():  # `migrate` refuses this; a web started without it must not say ok
        problems.insert(0, f"alerts go nowhere: SMS_BACKEND={settings.SMS_BACKEND}")
    if broker != "ok":
        problems.insert(0, "the broker is unreachable")
    body = {"status": "degraded" if problems else "ok", "database": database, "broker": broker, **work,
            "problems": problems}  # fmt: skip
    return JsonResponse(body, status=200)
