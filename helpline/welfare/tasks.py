"""The welfare tick: a doorbell for services.advance_campaigns, run by beat every few seconds."""
from celery import shared_task
from django.utils import timezone

from helpline.welfare import services, visits


@shared_task
def purge_visit_notices() -> None:
    visits.purge_visit_notices()


@shared_task
def advance_welfare_campaigns() -> None:
    """Ask, call, visit and escalate whatever is due; idempotent, so a lost or doubled tick does no harm."""
    services.advance_campaigns()


@shared_task
def escalate_welfare_visits() -> None:
    """The visits nobody has taken, on the tick queue: supervisors hear of them even while a surge backs up the
    notifications queue, where the campaign tick runs."""
    visits.run_due_visit_escalations(timezone.now())
