"""The Celery app. Configuration comes from Django settings (CELERY_*), read once in settings.py."""
import os

from celery import Celery
from celery.signals import task_prerun, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpline.project.settings")

app = Celery("helpline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# WORKER_NICE_WHEN_READY=10 (deploy/supervisord.conf's general worker): the worker gives way to web and the critical
# worker once it is working, not while it starts. Started with `nice -n 10` instead, a worker killed during a surge
# took up to a minute to come back, starved by the very processes it was meant to give way to.
_NICE_WHEN_READY = int(os.environ.get("WORKER_NICE_WHEN_READY") or 0)


def _lower_own_priority() -> None:
    if _NICE_WHEN_READY and os.getpriority(os.PRIO_PROCESS, 0) < _NICE_WHEN_READY:
        os.setpriority(os.PRIO_PROCESS, 0, _NICE_WHEN_READY)


@worker_process_init.connect
def _pool_process_gives_way(**_kwargs) -> None:
    _lower_own_priority()


@worker_process_init.connect
def _critical_worker_loads_the_model(**_kwargs) -> None:
    """A pool process that takes critical doorbells loads the semantic model as it starts, not on its first
    critical case (the model reads every message a critical rule matched; triage.services). After the fork: the
    model's engine does not survive one."""
    from helpline.cases.dispatch import CRITICAL_QUEUE  # here: this module loads before Django's apps are ready
    from triage.semantic_model import warm_up_in_background

    if CRITICAL_QUEUE in app.amqp.queues.consume_from:
        warm_up_in_background()


@task_prerun.connect
def _rules_only_report_stays_fresh(**_kwargs) -> None:
    """A worker process whose model could not be loaded says so on /healthz/ for as long as it runs, not only
    within three minutes of its last triage: every process runs some tick every few seconds."""
    from triage.semantic_model import keep_rules_only_report_fresh

    keep_rules_only_report_fresh()


@worker_ready.connect
def _worker_gives_way_once_ready(**_kwargs) -> None:
    _lower_own_priority()
