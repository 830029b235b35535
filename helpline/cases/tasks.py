"""Periodic work of the helpline app, and the heartbeats /healthz/ reads: beat's, and each worker queue's."""
import logging
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings
from django.db import close_old_connections

from helpline.cases import services
from helpline.cases.models import Heartbeat

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT = "beat"
QUEUE_HEARTBEAT_PREFIX = "queue:"
WORKER_HEARTBEAT_PREFIX = "worker:"
_stop_queue_heartbeats = threading.Event()
_heartbeat_threads: list[threading.Thread] = []


@shared_task
def record_heartbeat() -> None:
    """Proves that beat schedules and a worker runs; /healthz/ reports the heartbeat's age."""
    services.record_heartbeat(BEAT_HEARTBEAT)


def queue_heartbeat_name(queue: str) -> str:
    return f"{QUEUE_HEARTBEAT_PREFIX}{queue}"


def worker_heartbeat_name(hostname: str) -> str:
    return f"{WORKER_HEARTBEAT_PREFIX}{hostname}"[: Heartbeat._meta.get_field("name").max_length]


@worker_ready.connect
def start_queue_heartbeats(sender, **kwargs) -> None:
    """Every worker writes, every few seconds, its own heartbeat and one for each queue it consumes, so /healthz/
    can tell a worker that died and a queue nobody reads. Written to the database rather than asked of the
    workers: the embedded broker carries no remote control, and the health page must never wait on a worker."""
    names = [worker_heartbeat_name(sender.hostname)]
    names += [queue_heartbeat_name(queue) for queue in sorted(sender.app.amqp.queues.consume_from)]
    _stop_queue_heartbeats.clear()
    thread = threading.Thread(target=_beat, args=(names,), name="worker-heartbeats", daemon=True)
    thread.start()
    _heartbeat_threads.append(thread)


@worker_shutting_down.connect
def stop_queue_heartbeats(sender, **kwargs) -> None:
    """A worker stopped on purpose is not a worker missing: its own heartbeat goes (its queues' stay, to age)."""
    _stop_queue_heartbeats.set()
    for thread in _heartbeat_threads:
        thread.join(timeout=2)  # its last write must not land after the removal
    try:
        Heartbeat.objects.filter(name=worker_heartbeat_name(sender)).delete()
    except Exception:  # shutting down with the database away: the heartbeat ages out of /healthz/ in an hour
        logger.warning("could not remove the heartbeat of worker %s", sender, exc_info=True)


def _beat(names: list[str]) -> None:
    while not _stop_queue_heartbeats.is_set():
        try:
            close_old_connections()
            services.record_heartbeats(names)  # one statement for all of them
        except Exception:  # the database is away for a moment: the next beat tries again
            logger.warning("could not record heartbeats %s", ",".join(names), exc_info=True)
        _stop_queue_heartbeats.wait(settings.WORKER_HEARTBEAT_SECONDS)
