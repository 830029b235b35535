"""Which numbers are staff phones, known without the database.

While the database does not answer, intake spools each SMS and answers it as a citizen's first SMS. From a staff
phone that would be wrong, and on a home visit dangerous: a worker's silent alarm (POMOC) or check-out would be
answered with a helpline receipt that someone watching their phone could read. So the blind indexes of the staff
phones (never the numbers) are read at most once a minute per process while the database answers, and kept in a
file beside the spool, where every web process, and one started during the outage, finds the last copy.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from django.conf import settings

from helpline.cases.encryption import phone_index
from helpline.cases.intake import normalise_phone
from helpline.roster.selectors import active_staff_phone_indexes

READ_EVERY_SECONDS = 60.0
_last_read = float("-inf")


def _kept_file() -> Path:
    # Not *.json: the spool's replay reads those as contacts.
    return Path(settings.INTAKE_SPOOL_DIR) / "staff-phones.idx"


def keep_up_to_date() -> None:
    """Read the staff phones again if this process has not in the last minute; call it while the database answers."""
    global _last_read
    now = time.monotonic()
    if now - _last_read < READ_EVERY_SECONDS:
        return
    _last_read = now
    text = "\n".join(sorted(active_staff_phone_indexes()))
    path = _kept_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".staff-phones-", suffix=".tmp")
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)  # whole or not at all: a reader never sees half a list


def consider_read() -> None:
    """As if read just now: no read for the next minute (tests that count statements)."""
    global _last_read
    _last_read = time.monotonic()


def forget() -> None:
    """The next call to keep_up_to_date reads again (tests; a process that just changed a staff phone)."""
    global _last_read
    _last_read = float("-inf")


def was_staff_phone(from_number: str) -> bool:
    """Whether this number was a staff phone when the database last answered. No database needed."""
    phone = normalise_phone(from_number)
    if phone is None:
        return False
    try:
        kept = _kept_file().read_text().split("\n")
    except OSError:
        return False
    return phone_index(phone) in kept
