"""Roster housekeeping on the triage worker's default queue."""
from celery import shared_task

from helpline.roster.services import generate_upcoming_shifts


@shared_task
def generate_shifts() -> None:
    """Turns rotation patterns into shifts for the coming weeks."""
    generate_upcoming_shifts()
