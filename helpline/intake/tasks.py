"""Periodic work of the intake: store the contacts spooled while the database was unreachable."""
from celery import shared_task
from celery.signals import worker_ready

from helpline.cases.dispatch import DEFAULT_QUEUE, publish
from helpline.intake import spool


@shared_task
def replay_intake_spool() -> dict[str, int]:
    """Beat rings this every few seconds; with an empty spool it costs one directory listing."""
    result = spool.replay_spool()
    return {"stored": result.stored, "dropped": result.dropped, "failed": result.failed, "left": result.remaining}


@worker_ready.connect
def replay_when_a_worker_starts(**_kwargs) -> None:
    # A worker often starts just after an outage: do not wait for the next beat.
    publish("helpline.intake.tasks.replay_intake_spool", queue=DEFAULT_QUEUE)
