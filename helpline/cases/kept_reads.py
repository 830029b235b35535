"""Small configuration reads that a process keeps for a second instead of asking the database on every contact.

A worker's triage and assignment asked the database four questions about configuration for every case: have the
triage rules changed, which crisis events are active, is surge mode on, what is this priority's escalation ladder.
Supervisors change these a few times a day; the answers were read thousands of times a minute in a flood.

A kept read is asked again when it is older than a second, so a change made in another process (the console, the
admin) is seen within a second. A change made in this process is seen at once: saving or deleting one of the
models a read depends on forgets it, at once and again when the transaction commits. (A read made after the change
inside a transaction that is then rolled back may be kept for up to a second.) A change made without signals
(`QuerySet.update()`) must call `forget()` itself.

Reads that decide what a person is shown right after changing it (the supervisor's board) do not use these.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

Answer = TypeVar("Answer")

KEPT_FOR_SECONDS = 1.0

_every_kept_read: list[KeptRead] = []


def seconds_now() -> float:
    """The clock a kept read's age is measured on (tests move it; `time_machine` leaves the monotonic clock)."""
    return time.monotonic()


class KeptRead(Generic[Answer]):
    """One read, kept per process (and per argument) for `KEPT_FOR_SECONDS`."""

    def __init__(self, read: Callable[..., Answer], depends_on: tuple[type[models.Model], ...]) -> None:
        self._read = read
        self._kept: dict[tuple, tuple[float, Answer]] = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, read)
        for model in depends_on:
            # dispatch_uid: one receiver per read and model, however often the module is imported.
            uid = f"kept-read:{read.__module__}.{read.__qualname__}:{model._meta.label}"
            post_save.connect(self._forget_on_change, sender=model, weak=False, dispatch_uid=uid)
            post_delete.connect(self._forget_on_change, sender=model, weak=False, dispatch_uid=uid)
        _every_kept_read.append(self)

    def __call__(self, *args: object) -> Answer:
        now = seconds_now()
        kept = self._kept.get(args)
        if kept is not None and now - kept[0] < KEPT_FOR_SECONDS:
            return kept[1]
        answer = self._read(*args)
        with self._lock:
            if len(self._kept) >= 16:  # a read kept per second (who is on duty): the old seconds go
                self._kept = {key: kept for key, kept in self._kept.items() if now - kept[0] < KEPT_FOR_SECONDS}
            self._kept[args] = (now, answer)
        return answer

    def forget(self) -> None:
        """Ask the database again next time: now, for the rest of this transaction, and once it commits (a read
        made inside the transaction after the change may have kept what a rollback then undid)."""
        with self._lock:
            self._kept.clear()
        transaction.on_commit(self._clear_after_commit)

    def _clear_after_commit(self) -> None:
        with self._lock:
            self._kept.clear()

    def _forget_on_change(self, **_signal: object) -> None:
        self.forget()


def kept_for_a_second(*depends_on: type[models.Model]) -> Callable[[Callable[..., Answer]], KeptRead[Answer]]:
    """Keep a read's answer for a second in this process; forget it when one of `depends_on` is saved or deleted
    here. The answer is shared by callers: never change it in place."""

    def keep(read: Callable[..., Answer]) -> KeptRead[Answer]:
        return KeptRead(read, depends_on)

    return keep


def forget_every_kept_read() -> None:
    """Start as a fresh process does (tests: what one test's rolled-back transaction read is not the next one's)."""
    for kept in _every_kept_read:
        kept._clear_after_commit()
