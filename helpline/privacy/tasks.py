"""The daily retention job: a doorbell over the database, safe to run twice or to stop half-way."""
from celery import shared_task

from helpline.privacy import services


@shared_task
def anonymise_expired_cases() -> int:
    return services.anonymise_expired().total
