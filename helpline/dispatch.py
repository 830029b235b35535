"""Handing work to Celery only after the database has the row the work is about.

A task is a doorbell: it carries an id. Publishing happens after commit, and a broker that is down costs the
citizen nothing: intake has already answered, and a periodic sweep over the database finds the work again.
"""
import logging
from functools import partial

from django.db import transaction

from helpline.celery import app

logger = logging.getLogger(__name__)


def publish(task_name: str, *args: object, queue: str | None = None) -> bool:
    """Send a task by name now; False (and a warning) when the broker cannot take it."""
    try:
        app.send_task(task_name, args=args, queue=queue)
    except Exception:  # any broker failure: connection refused, timeout, unknown host
        logger.warning("could not publish %s for %s; the periodic sweep will pick it up", task_name, args)
        return False
    return True


def enqueue_after_commit(task_name: str, *args: object, queue: str | None = None) -> None:
    """Publish the task once the current transaction commits (at once when there is none)."""
    transaction.on_commit(partial(publish, task_name, *args, queue=queue))
