"""Handing work to Celery only after the database has the row the work is about, and the queues work rides on.

A task is a doorbell: it carries an id. Publishing happens after commit, and a broker that is down costs the
citizen nothing: intake has already answered, and a periodic sweep over the database finds the work again.
Tasks are sent by name, so this lowest layer never imports the layers whose tasks it rings.
"""
import logging
from functools import partial

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

# One queue per concern, so that no kind of work waits behind another. Every worker command (Procfile,
# docker-compose.yml) consumes from a list of these; a test checks that each is consumed somewhere.
CRITICAL_QUEUE = "critical"  # triage and notifications of cases that read as critical
TRIAGE_QUEUE = "triage"  # triage of everything else
NOTIFICATIONS_QUEUE = "notifications"  # sending to staff and citizens
ESCALATION_QUEUE = "escalation"  # the per-second escalation tick: never behind a backlog of sends
RETRY_QUEUE = "retries"  # sends retried after a transient failure, so they never crowd out first attempts
DEFAULT_QUEUE = "default"  # housekeeping: heartbeat, shift generation, sweeps
QUEUES = (CRITICAL_QUEUE, TRIAGE_QUEUE, NOTIFICATIONS_QUEUE, ESCALATION_QUEUE, RETRY_QUEUE, DEFAULT_QUEUE)


def publish(task_name: str, *args: object, queue: str) -> bool:
    """Send a task by name now; False (and a warning) when the broker cannot take it."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}: no worker would ever take this task")
    try:
        current_app.send_task(task_name, args=args, queue=queue)
    except Exception:  # any broker failure: connection refused, timeout, unknown host
        logger.warning("could not publish %s for %s; the periodic sweep will pick it up", task_name, args)
        return False
    return True


def enqueue_after_commit(task_name: str, *args: object, queue: str) -> None:
    """Publish the task once the current transaction commits (at once when there is none)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}: no worker would ever take this task")
    transaction.on_commit(partial(publish, task_name, *args, queue=queue))
