"""Triage tasks: doorbells that carry a case id and call triage.services."""
import logging

from celery import shared_task

from helpline.models import Case

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def triage_case(case_id: int) -> None:
    """Classify and assign a case. The triage issue fills this in; intake already enqueues it after commit."""
    case = Case.objects.filter(pk=case_id).only("reference").first()
    if case is None:
        logger.warning("triage for a case that does not exist (id %s)", case_id)
        return
    logger.info("triage requested for %s", case.reference)
