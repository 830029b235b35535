"""Notification and escalation tasks: doorbells over the database, each safe to run twice."""
from celery import shared_task

from notifications import crisis, delivery_health, ladder, outbox, surge


@shared_task(acks_late=True)
def send_notification(notification_id: int) -> None:
    outcome = outbox.deliver(notification_id)
    if outcome is not None and outcome.retry_in is not None:
        # A short countdown only: the due time is on the row, and the relay finds it if this message is lost.
        send_notification.apply_async((notification_id,), countdown=min(outcome.retry_in, 300), queue=outcome.queue)


@shared_task
def relay_notifications() -> None:
    outbox.relay_queued()


@shared_task
def run_escalations() -> None:
    ladder.run_due_escalations()


@shared_task
def hand_on_cases_of_the_departed() -> None:
    """Each minute: open cases of people deactivated, and cases not yet taken by people whose shift has ended."""
    ladder.hand_on_cases_of_the_departed()
    ladder.hand_on_cases_left_at_shift_end()


@shared_task
def send_roster_gap_report() -> None:
    outbox.send_roster_gap_report()


@shared_task
def alert_on_failing_delivery() -> None:
    """Supervisors hear, once per outage, that staff alerts are failing, and again when they get out."""
    delivery_health.alert_supervisors_of_failing_delivery()


@shared_task
def send_surge_digests() -> None:
    surge.send_digests()


@shared_task(acks_late=True)
def send_crisis_broadcast(broadcast_id: int) -> None:
    crisis.deliver_broadcast(broadcast_id)


@shared_task
def ring_stalled_broadcasts() -> None:
    crisis.ring_stalled_broadcasts()
