"""Case-work tasks: doorbells that carry a case id and call helpline.casework.actions."""
from celery import shared_task

from helpline.casework import actions


@shared_task(acks_late=True)
def triage_case(case_id: int) -> None:
    """Classify and assign a case; safe to run twice or in two workers at once."""
    actions.do_triage_case(case_id)


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
