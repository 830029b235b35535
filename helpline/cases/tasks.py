"""Periodic work of the helpline app."""
from celery import shared_task

from helpline.cases import services


@shared_task
def record_heartbeat() -> None:
    """Proves that beat schedules and a worker runs; /healthz/ reports the heartbeat's age."""
    services.record_heartbeat("beat")
