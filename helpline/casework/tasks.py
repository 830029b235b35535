"""Case-work tasks: doorbells that carry a case id and call helpline.casework.actions."""
from celery import shared_task
from celery.exceptions import Retry
from django.db import InterfaceError, OperationalError

from helpline.casework import actions

# A deadlock or a database failover: tried again after 1, 2, 4, 8, 16 and 30 s (about a minute in all), on the
# worker that holds the doorbell rather than at the back of a surge's queue.
TRIAGE_RETRIES = 6


@shared_task(bind=True, acks_late=True, max_retries=TRIAGE_RETRIES)
def triage_case(self, case_id: int) -> None:
    """Classify and assign a case; safe to run twice or in two workers at once. Celery acknowledges a doorbell that
    failed, and while the queues are busy the sweep takes a case for still queued for half an hour: a doorbell that
    fails for good is left for the next sweep to ring at once."""
    try:
        actions.do_triage_case(case_id)
    except (OperationalError, InterfaceError) as error:
        if self.request.retries < TRIAGE_RETRIES:
            try:
                raise self.retry(exc=error, countdown=min(2**self.request.retries, 30)) from error
            except Retry:
                raise
            except Exception:  # the retry could not be published (the broker is away too)
                actions.ring_triage_again_at_next_sweep(case_id)
                raise
        actions.ring_triage_again_at_next_sweep(case_id)
        raise
    except Exception:
        actions.ring_triage_again_at_next_sweep(case_id)
        raise


@shared_task
def sweep_untriaged() -> None:
    """Finds cases whose triage message was lost (broker down, worker died) and rings again."""
    actions.sweep_untriaged()


@shared_task
def assign_waiting() -> None:
    """Gives waiting cases to people on duty who have room, most urgent first, in batches."""
    actions.do_assign_waiting()


@shared_task
def second_look() -> None:
    """The semantic model reads the cases the rules triaged (a doorbell: the cases are marked in the database)."""
    actions.do_second_look()
