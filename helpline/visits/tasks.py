"""Home-visit ticks: doorbells over the database, each safe to run twice."""
from celery import shared_task

from helpline.visits import services


@shared_task
def run_visit_escalations() -> None:
    services.run_due_visit_escalations()


@shared_task
def purge_visit_addresses() -> None:
    services.purge_visit_addresses()
