"""The retention job, every hour: a doorbell over the database, safe to run twice or to stop half-way."""
from celery import shared_task

from helpline.privacy import services


# Nine minutes a run, every hour: a backlog (voicemail deleted at Twilio one recording at a time) is worked through
# by the runs that follow, and no run holds one of the general worker's two processes, which take triage in a
# surge, for long. The global limit (four minutes) cut a daily run short, so a backlog never ended. Acknowledged when
# taken, not when done: the broker hands a message still unacknowledged after its visibility timeout (600 s) to a
# second worker. A run stopped half-way (the limit, a restart) is continued by the next.
@shared_task(soft_time_limit=480, time_limit=540, acks_late=False)
def anonymise_expired_cases() -> int:
    return services.anonymise_expired().total


@shared_task
def clear_expired_sessions() -> None:
    """Sessions sit in the database: an expired one (and whatever it kept, such as a sheet being previewed) goes,
    as `manage.py clearsessions` would do, which nothing ran."""
    from importlib import import_module

    from django.conf import settings

    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
