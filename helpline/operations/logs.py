"""How every process of the service writes its log lines: one time zone (UTC, offset shown) and no line per idle tick.

Used by LOGGING in settings.py (web, worker, beat, management commands) and by deploy/gunicorn.conf.py. Imports
nothing from Django, so gunicorn can load it before the application.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable


class UTCFormatter(logging.Formatter):
    """Timestamps in UTC with the offset written out: 2026-12-03T09:15:07.123+00:00.

    Django sets the process time zone to TIME_ZONE (Europe/Sarajevo) and gunicorn writes local time, so without
    this one night's log mixed two clocks and jumped an hour at each daylight-saving change."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03d+00:00"


class QuietTicks(logging.Filter):
    """Drops Celery's routine INFO lines about the periodic ticks: beat's "Sending due task", the worker's
    "received" and "succeeded". Warnings and errors about them pass, and a tick that does something logs it
    itself, so a night's log shows what happened instead of 7,200 lines an hour about nothing."""

    def __init__(self, tasks: Iterable[str] = ()) -> None:
        super().__init__()
        self.tasks = tuple(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not any(task in message for task in self.tasks)
