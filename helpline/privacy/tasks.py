"""The daily retention job: a doorbell over the database, safe to run twice or to stop half-way."""
from celery import shared_task

from helpline.privacy import services


@shared_task
def anonymise_expired_cases() -> int:
    return services.anonymise_expired().total


@shared_task
def clear_expired_sessions() -> None:
    """Sessions sit in the database: an expired one (and whatever it kept, such as a sheet being previewed) goes,
    as `manage.py clearsessions` would do, which nothing ran."""
    from importlib import import_module

    from django.conf import settings

    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
