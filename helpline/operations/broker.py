"""The embedded Celery broker for installs without Redis: kombu's SQLAlchemy transport on an SQLite file of its own.

A message is a row, written and taken inside one SQLite transaction, so no process can ever read one half-written
(kombu's filesystem transport did, and crashed workers). Importing this module registers the `sqlite://` broker
URL scheme, so CELERY_BROKER_URL=sqlite:///var/broker.sqlite3 selects it.
"""
from __future__ import annotations

import os
from json import loads
from queue import Empty

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError

SCHEME = "sqlite"
# How long a process waits for the file's write lock before the operation fails (and publishing falls back to
# the periodic sweeps). Every transaction here lasts well under a millisecond.
LOCK_TIMEOUT_SECONDS = 5


def _tune_sqlite(dbapi_connection, _record) -> None:
    # WAL: a writer never blocks readers. NORMAL: durable across a process crash, which is all a broker whose
    # messages the sweeps can re-create needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Channel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self):
        # kombu hands every transport option to create_engine, which refuses kombu's own (polling_interval), so
        # the engine is configured here.
        engine = create_engine(self.connection.client.hostname, connect_args={"timeout": LOCK_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _tune_sqlite)
        return engine

    def _open(self):
        try:
            return super()._open()
        except OperationalError:  # another process created the tables at the same moment ("already exists")
            return super()._open()

    def _get_or_create(self, queue):
        try:
            return super()._get_or_create(queue)
        except IntegrityError:  # another process declared the same queue at the same moment
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()

    def _queue_id(self, queue: str) -> int:
        """The queue's row id, looked up once per channel (kombu reads the row again on every poll)."""
        ids = self.__dict__.setdefault("_queue_ids", {})
        if queue not in ids:
            ids[queue] = self._get_or_create(queue).id
            self.session.commit()
        return ids[queue]

    def _get(self, queue):
        """Take the oldest message and delete its row in the same write transaction.

        An empty queue is seen with a plain read, which in WAL mode takes no lock: kombu's own _get took the
        file's write lock on every poll of every queue (some eighty a second), and a worker descheduled while
        holding it made every web process wait to publish. kombu's _get also only hid a taken row, and nothing
        ever showed it again (the transport has no visibility timeout), so hidden rows piled up for ever and
        every poll had to skip them: deleting loses nothing more."""
        queue_id = self._queue_id(queue)
        session, message_cls = self.session, self.message_cls
        oldest = session.query(message_cls).filter(message_cls.queue_id == queue_id).order_by(message_cls.id)
        if session.query(oldest.exists()).scalar() is False:
            session.commit()  # ends the read
            raise Empty()
        session.commit()
        session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            message = oldest.limit(1).first()
            if message is None:  # another worker took it between the read and the lock
                raise Empty()
            payload = message.payload
            session.delete(message)
            return loads(bytes_to_str(payload))
        finally:
            session.commit()

    def _size(self, queue):
        return self.session.query(self.message_cls).filter(self.message_cls.queue_id == self._queue_id(queue)).count()


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    # kombu polls an idle queue once a second by default; a tenth of a second lets a case be assigned well
    # within a second. An empty poll is one indexed read.
    polling_interval = 0.1


def _forget_parent_connections() -> None:
    """kombu keeps one engine per broker URL for the life of the process, and Celery and gunicorn fork: a child
    must never use an SQLite connection its parent opened, so it drops them (unclosed: they are the parent's)."""
    for engine, _session_factory in Channel._engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)
TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
