"""How every process of the service writes its log lines: one time zone (UTC, offset shown) and no line per idle tick.

Used by LOGGING in settings.py (web, worker, beat, management commands) and by deploy/gunicorn.conf.py. Imports
nothing from Django, so gunicorn can load it before the application.
"""
from __future__ import annotations

import logging
import re
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


# An E.164 number (+38761123456) or a run of 9 to 15 digits standing alone (061123456), not digits inside a longer
# word such as a Twilio SID or a hash.
_PHONE_NUMBER = re.compile(r"(?<![\w+\-])\+?\d(?:[ \-/]?\d){8,14}(?!\w)")


def mask_numbers(text: str) -> str:
    """Every phone number in the text with its middle hidden, as helpline.cases.models.mask_phone does."""
    return _PHONE_NUMBER.sub(lambda match: f"{match.group()[:6]} *** {match.group()[-3:]}", text)


class RedactPhoneNumbers(logging.Filter):
    """The last guard on every handler: a full number that reached a log line (a library's request log, a database
    error quoting a row, a traceback) leaves the process masked. Our own lines mask numbers and leave message text
    out at the source; this catches what they cannot."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_numbers(record.exc_text)
        return True
