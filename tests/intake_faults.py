"""Faults for intake tests and benchmarks/intake_faults.py: a database that cannot be reached, a server that accepts
connections and never answers (a frozen Redis), and contacts sent from several threads a few milliseconds apart."""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from urllib.parse import urlencode, urlparse

from django.db import connections
from django.test import Client
from twilio.request_validator import RequestValidator


@contextmanager
def database_unreachable() -> Iterator[None]:
    """Point this thread's database connection at a port where nothing listens, as when PostgreSQL is stopped."""
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": "1"})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@contextmanager
def database_hung() -> Iterator[None]:
    """Point this thread's database connection at a server that accepts and never answers, as PostgreSQL frozen
    (SIGSTOP) or behind a half-open link: connecting must give up (settings: connect_timeout) rather than wait."""
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    with HungServer() as server:
        connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(server.port)})
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point the Celery app at another broker URL for a part of a test (its pooled connections dropped)."""
    from helpline.project.celery import app

    def repoint(url: str) -> None:
        app.conf["CELERY_BROKER_URL"] = url
        app._pool = None
        app.amqp._producer_pool = None

    original, original_env = app.conf["CELERY_BROKER_URL"], os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = url
    repoint(url)
    try:
        yield
    finally:
        if original_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = original_env
        repoint(original)


def broker_unreachable() -> AbstractContextManager[None]:
    """A port where nothing listens, as when Redis is down (as conftest's fixture, but for a part of a test)."""
    return broker_at("redis://127.0.0.1:1/0")


def _listening_socket() -> socket.socket:
    """A TCP socket listening on a free loopback port."""
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", 0))
    listening.listen(128)
    return listening


class HungServer:
    """A TCP server that accepts every connection and never sends a byte: Redis under SIGSTOP, a half-open link."""

    def __init__(self) -> None:
        self._socket = _listening_socket()
        self.port = self._socket.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._accepted.append(connection)  # held open, never read or answered

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._socket.close()
        for connection in self._accepted:
            connection.close()


class FreezableRedisProxy:
    """A TCP proxy in front of the real Redis that can be frozen: while frozen it holds every byte and answers
    nothing, on the connections it already carries and on new ones, as Redis under SIGSTOP does."""

    def __init__(self, target_url: str) -> None:
        parsed = urlparse(target_url)
        self._target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self._db = (parsed.path or "/0").lstrip("/") or "0"
        self._socket = _listening_socket()
        self.port = self._socket.getsockname()[1]
        self._open: list[socket.socket] = []
        self._closed = threading.Event()
        self.frozen = threading.Event()

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._socket.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set() and not self._closed.is_set():
                time.sleep(0.01)  # held, never delivered while frozen
            try:
                sink.sendall(data)
            except OSError:
                return

    def drop_connections(self) -> None:
        """Close every connection it carries, as a Redis restart does; new ones are served again."""
        open_now, self._open = self._open, []
        for connection in open_now:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def __enter__(self) -> FreezableRedisProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._socket.close()
        for connection in self._open:
            connection.close()


def signed_sms(client: Client, *, base_url: str, token: str, sid: str, from_number: str, body: str = "Pomoć"):
    params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": from_number, "To": "+38733000111",
              "Body": body, "NumMedia": "0"}  # fmt: skip
    path = "/webhooks/twilio/sms/"
    signature = RequestValidator(token).compute_signature(base_url + path, params)
    return client.post(
        path, data=urlencode(params), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )  # fmt: skip


def send_staggered(send: Callable[[int], object], offsets: list[float]) -> tuple[list, list[Exception]]:
    """Call send(0), send(1), ... from one thread each, released together and then each waiting its offset in
    seconds (two texts 25 ms apart): the point is real timing, so this waits on the clock rather than faking it."""
    barrier = threading.Barrier(len(offsets))
    results: list = [None] * len(offsets)
    errors: list[Exception] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            if offsets[index]:
                time.sleep(offsets[index])
            results[index] = send(index)
        except Exception as error:  # collected for the caller to assert on
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(offsets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
