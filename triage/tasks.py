"""Triage tasks: doorbells that carry a case id and call triage.services."""
from celery import shared_task

from triage import services


@shared_task(acks_late=True)
def triage_case(case_id: int) -> None:
    """Classify and assign a case; safe to run twice or in two workers at once."""
    services.triage_case(case_id)


@shared_task
def sweep_untriaged() -> None:
    """Finds cases whose triage message was lost (broker down, worker died) and rings again."""
    services.sweep_untriaged()


@shared_task
def generate_shifts() -> None:
    """Turns rotation patterns into shifts for the coming weeks."""
    from triage.roster import generate_upcoming_shifts

    generate_upcoming_shifts()
