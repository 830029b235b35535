"""Periodic work of the intake: store the contacts spooled while the database was unreachable, and those Twilio took
while our webhooks could not be reached."""
from celery import shared_task
from celery.signals import worker_ready

from helpline.cases.dispatch import DEFAULT_QUEUE, publish
from helpline.intake import recovery, spool


@shared_task
def replay_intake_spool() -> dict[str, int]:
    """Beat rings this every few seconds; with an empty spool it costs one directory listing."""
    result = spool.replay_spool()
    return {"stored": result.stored, "dropped": result.dropped, "failed": result.failed, "left": result.remaining}


@shared_task
def recover_missed_contacts() -> dict[str, int] | None:
    """Beat rings this every minute: one look at Twilio's log of our numbers since the last, and at its debugger's
    alerts about our SMS webhook (three list requests when nothing was missed)."""
    found = recovery.recover_missed_contacts()
    if found is None:
        return None
    return {
        "listed": found.listed, "sms": found.stored_sms, "calls": found.stored_calls, "settled": found.settled_calls,
        "answered_late": found.answered_late,
    }  # fmt: skip


@worker_ready.connect
def replay_when_a_worker_starts(**_kwargs) -> None:
    # A worker often starts just after an outage: do not wait for the next beat.
    publish("helpline.intake.tasks.replay_intake_spool", queue=DEFAULT_QUEUE)
