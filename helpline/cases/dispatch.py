"""Handing work to Celery only after the database has the row the work is about, and the queues work rides on.

A task is a doorbell: it carries an id. Publishing happens after commit, and a broker that is down costs the
citizen nothing: intake has already answered, and a periodic sweep over the database finds the work again.
Tasks are sent by name, so this lowest layer never imports the layers whose tasks it rings.
"""
import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

# One queue per concern, so that no kind of work waits behind another. Every worker command (Procfile,
# docker-compose.yml) consumes from a list of these; a test checks that each is consumed somewhere.
CRITICAL_QUEUE = "critical"  # triage of contacts that read as critical
# The SMS and calls about critical cases. Apart from the critical queue: in it, a critical triage once queued behind a
# ladder's thousands (rules' critical cases triaged 34 s after intake at 100/s, behind 5,400 alerts). A worker of
# their own sends them in threads (deploy/supervisord.conf): a send waits on Twilio, and one by one they queued.
ALERTS_QUEUE = "alerts"
TRIAGE_QUEUE = "triage"  # triage of everything else
NOTIFICATIONS_QUEUE = "notifications"  # sending to staff and citizens
ESCALATION_QUEUE = "escalation"  # the per-second escalation tick: never behind a backlog of sends
RETRY_QUEUE = "retries"  # sends retried after a transient failure, so they never crowd out first attempts
DEFAULT_QUEUE = "default"  # housekeeping: heartbeat, shift generation, sweeps
MODEL_QUEUE = "model"  # the semantic model's second look: its own process, so triage never waits for it
QUEUES = (
    CRITICAL_QUEUE, ALERTS_QUEUE, TRIAGE_QUEUE, NOTIFICATIONS_QUEUE, ESCALATION_QUEUE, RETRY_QUEUE, DEFAULT_QUEUE,
    MODEL_QUEUE,
)

# Within one queue, a doorbell rung `behind_the_rest` is taken only when nothing else waits in that queue. On Redis,
# kombu keeps one list per priority step (0, 3, 6, 9) and a worker pops them in that order; every other doorbell is
# 0. The embedded broker keeps one list and takes everything in order.
BEHIND_THE_REST_PRIORITY = 6


def _priority(behind_the_rest: bool) -> dict:
    return {"priority": BEHIND_THE_REST_PRIORITY} if behind_the_rest else {}


# The longest a request waits for the broker. A broker that refuses fails at once; one that accepts the connection
# and never answers (Redis frozen, a half-open link) would otherwise hold the request for the socket timeout, and
# Twilio gives up on a webhook after 15 s.
PUBLISH_DEADLINE_SECONDS = 0.45  # the thread start and join fit inside half a second
# For the request path's own connection: no reconnect loop, and every socket operation bounded.
_PUBLISH_TRANSPORT_OPTIONS = {"socket_connect_timeout": 0.25, "socket_timeout": 0.25, "max_retries": 0}


# Brokers reached over the network; the embedded broker is a local file and keeps Celery's pooled connection.
_NETWORK_DRIVERS = frozenset({"redis", "amqp", "pyamqp", "librabbitmq"})
# Connections that last published without error, kept for the next publish (one thread uses one at a time).
_idle_connections: dict[str, list] = {}
_idle_lock = threading.Lock()
_MAX_IDLE = 8


def _borrow_connection():
    """A connection to the broker with the request path's short timeouts: one kept from an earlier publish if
    any (so a publish costs no new TCP connection), else a new one. Returns (key, connection, was_kept).
    Kept connections are filed under the broker URL they were made for, read as connection_for_write reads it:
    building a connection only to name it cost a third of a publish's CPU."""
    key = current_app.conf.broker_write_url or ""
    with _idle_lock:
        idle = _idle_connections.get(key)
        if idle:
            return key, idle.pop(), True
    return key, current_app.connection_for_write(key or None, transport_options=_PUBLISH_TRANSPORT_OPTIONS), False


def _give_back(key: str, connection) -> None:
    with _idle_lock:
        idle = _idle_connections.setdefault(key, [])
        if len(idle) < _MAX_IDLE:
            idle.append(connection)
            return
    connection.release()


def _send_on(connection, task_name: str, args: tuple, queue: str, options: dict) -> None:
    """One publish on this connection, with no retry of Celery's own: the callers decide what a failure means."""
    current_app.send_task(task_name, args=args, queue=queue, connection=connection, retry=False, **options)


def _send(task_name: str, args: tuple, queue: str, options: dict, outcome: dict) -> None:
    try:
        key, connection, was_kept = _borrow_connection()
        if connection.transport.driver_type not in _NETWORK_DRIVERS:
            connection.release()
            current_app.send_task(task_name, args=args, queue=queue, **options)
            outcome["sent"] = True
            return
        try:
            _send_on(connection, task_name, args, queue, options)
        except Exception:
            connection.release()  # broken (the broker restarted, or hangs): never lent again
            if not was_kept:
                raise
            # A kept connection may have gone stale while idle: one more try on a new one, within the deadline.
            connection = current_app.connection_for_write(transport_options=_PUBLISH_TRANSPORT_OPTIONS)
            try:
                _send_on(connection, task_name, args, queue, options)
            except Exception:
                connection.release()
                raise
        _give_back(key, connection)
        outcome["sent"] = True
    except Exception as error:  # any broker failure: connection refused, timeout, unknown host
        outcome["error"] = type(error).__name__


def waiting_in_queues(*names: str, deadline: float = PUBLISH_DEADLINE_SECONDS) -> dict[str, int] | None:
    """How many messages wait in each named queue (taken by no worker yet), or None when the broker cannot say
    within `deadline` seconds. A sweep asks before it rings again: a doorbell still in its queue is late, not
    lost."""
    for name in names:
        if name not in QUEUES:
            raise ValueError(f"unknown queue {name!r}")
    outcome: dict = {}

    def count() -> None:
        try:
            with current_app.connection_for_write(transport_options=_PUBLISH_TRANSPORT_OPTIONS) as connection:
                channel = connection.default_channel
                # Declaring is harmless (the queues exist on every broker we use) and, unlike a passive declare,
                # does not fail for a Redis queue that is empty and so has no key.
                outcome["sizes"] = {
                    name: channel.queue_declare(queue=name, durable=True).message_count for name in names
                }
        except Exception as error:  # the broker is down, hangs or refuses: the caller cannot tell (None)
            outcome["error"] = type(error).__name__

    reader = threading.Thread(target=count, name="queue-sizes", daemon=True)
    reader.start()
    reader.join(deadline)
    if "sizes" not in outcome:
        logger.warning("could not read the queues %s (%s)", names, outcome.get("error", "no answer in time"))
        return None
    return outcome["sizes"]


def publish(task_name: str, *args: object, queue: str, behind_the_rest: bool = False) -> bool:
    """Send a task by name, giving up after PUBLISH_DEADLINE_SECONDS; False (and a warning) when the broker cannot
    take it in time. `behind_the_rest`: taken only when nothing else waits in its queue (on Redis). A connection
    kept from an earlier publish is tried first, in this thread (its socket timeouts bound it); otherwise, or when
    it was stale, the send runs in a helper thread, so a hung broker or a name that does not resolve costs the
    request at most the deadline and leaves no pooled connection half-used."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}: no worker would ever take this task")
    options = _priority(behind_the_rest)
    kept = _send_on_a_kept_connection(task_name, args, queue, options)
    if kept == _SENT:
        return True
    if kept == _HUNG:  # a new connection would wait for the same broker: the sweep rings again instead
        logger.warning("could not publish %s for %s (the broker did not answer); the periodic sweep will pick it up",
                       task_name, args)  # fmt: skip
        return False
    outcome: dict = {}
    sender = threading.Thread(
        target=_send, args=(task_name, args, queue, options, outcome), name="publish", daemon=True
    )
    sender.start()
    sender.join(PUBLISH_DEADLINE_SECONDS)
    if outcome.get("sent"):
        return True
    logger.warning(
        "could not publish %s for %s (%s); the periodic sweep will pick it up",
        task_name, args, outcome.get("error", "no answer within the deadline"),
    )  # fmt: skip
    return False


_SENT, _NOT_SENT, _HUNG = "sent", "not sent", "hung"
# A kept connection's failure that took this long was the broker not answering (its socket timeout is 0.25 s), not a
# stale connection, which fails at once.
_HUNG_AFTER_SECONDS = 0.2


def _send_on_a_kept_connection(task_name: str, args: tuple, queue: str, options: dict) -> str:
    """Send on a connection kept from an earlier publish, in this thread: it is connected already (no name to
    resolve, no connect to wait for), and each of its socket operations gives up after 0.25 s. A helper thread for
    every publish cost intake 0.3 to 0.5 ms of CPU a contact (benchmarks/web_cost.py). `_NOT_SENT` when no
    connection is kept, or this one failed at once (stale: the broker restarted), so the guarded path tries a new
    one; `_HUNG` when it failed after waiting, so a frozen broker costs a request 0.25 s, not that and the guarded
    path's deadline as well. A failed connection is dropped."""
    key = current_app.conf.broker_write_url or ""
    with _idle_lock:
        idle = _idle_connections.get(key)
        if not idle:
            return _NOT_SENT
        connection = idle.pop()
    started = time.monotonic()
    try:
        _send_on(connection, task_name, args, queue, options)
    except Exception as error:  # stale (the broker restarted) or hung: never lent again
        connection.release()
        hung = time.monotonic() - started >= _HUNG_AFTER_SECONDS
        logger.info("a kept broker connection failed (%s)%s", type(error).__name__,
                    "" if hung else "; publishing on a new one")  # fmt: skip
        return _HUNG if hung else _NOT_SENT
    _give_back(key, connection)
    return _SENT


def enqueue_after_commit(
    task_name: str,
    *args: object,
    queue: str,
    on_failure: Callable[[], None] | None = None,
    behind_the_rest: bool = False,
) -> None:
    """Publish the task once the current transaction commits (at once when there is none). When the broker cannot
    take it, `on_failure` runs (its own errors are logged, never raised: the request has already stored its row)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}: no worker would ever take this task")
    transaction.on_commit(partial(_publish_or_note, task_name, args, queue, on_failure, behind_the_rest))


def _publish_or_note(
    task_name: str, args: tuple, queue: str, on_failure: Callable[[], None] | None, behind_the_rest: bool
) -> None:
    if publish(task_name, *args, queue=queue, behind_the_rest=behind_the_rest) or on_failure is None:
        return
    try:
        on_failure()
    except Exception:  # the database may be gone too: the sweep's grace still finds the work, only later
        logger.warning("could not note the unsent %s for %s", task_name, args, exc_info=True)
