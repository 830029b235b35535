"""How a periodic tick works through what is due (escalation ladders of cases and of home visits)."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

Row = TypeVar("Row", bound=models.Model)

# A row whose step raised twice in a row is left out of this process's ticks for this long. Retried every second, a
# few rows that always fail sat at the front of the queue (oldest due first) and took every tick's steps, so no
# other case was chased. A first failure is tried again on the next tick: left out at once, a one-off error kept its
# case unchased for a minute. Its due time is left as it is: /healthz/ measures from it how long a ladder has stood
# still.
RETRY_FAILED_STEP_AFTER = dt.timedelta(seconds=60)
LEFT_OUT_AFTER_FAILURES_IN_A_ROW = 2
# Errors of the database. When the connection itself is gone (a restart), the tick stops and leaves nothing out: it
# would hit every row behind it, and the next tick retries. Otherwise (a statement cancelled or timed out, a lock not
# had, a deadlock) it is the row's failure like any other: one such row always failing first stopped every tick.
DATABASE_ERRORS = (OperationalError, InterfaceError)
# (model, pk) -> (failures in a row, when the last one was); forgotten RETRY_FAILED_STEP_AFTER after the last.
_failed_steps: dict[tuple[str, int], tuple[int, dt.datetime]] = {}


def forget_failed_steps() -> None:
    """Forget which rows' steps failed in this process, as a new process starts."""
    _failed_steps.clear()


def _label(row: models.Model) -> str:
    reference = getattr(row, "reference", "")
    return f"{row._meta.model_name} {reference or row.pk}"


def run_each_due(due: models.QuerySet[Row], run_step: Callable[[Row], bool], *, limit: int) -> int:
    """Claim due rows and run each one's step once, until `limit` steps ran or nothing due is left. SKIP LOCKED lets
    two beats share the work, and the step checks its own fencing token; a savepoint per row means one failing row
    never holds back the rest: it is logged and tried again on the next tick, and after a second failure in a row
    only after RETRY_FAILED_STEP_AFTER, while the rows behind it run. An error of the database itself ends the tick.
    Returns how many steps ran."""
    now = timezone.now()
    model = due.model._meta.label
    for key in [key for key, (_, failed_at) in _failed_steps.items() if now - failed_at >= RETRY_FAILED_STEP_AFTER]:
        del _failed_steps[key]
    left_out = {
        pk for (label, pk), (failures, _) in _failed_steps.items()
        if label == model and failures >= LEFT_OUT_AFTER_FAILURES_IN_A_ROW
    }  # fmt: skip
    done = 0
    with transaction.atomic():
        while done < limit:
            # NO KEY: rows that merely point at a claimed row are still written meanwhile (see RowsForChange).
            wanted = limit - done
            claimed = list(due.exclude(pk__in=left_out).select_for_update(skip_locked=True, no_key=True)[:wanted])
            for row in claimed:
                left_out.add(row.pk)  # claimed once per tick, whatever its step does
                key = (model, row.pk)
                try:
                    with transaction.atomic():
                        done += bool(run_step(row))
                except DATABASE_ERRORS as error:
                    if isinstance(error, InterfaceError) or not connection.is_usable():
                        logger.exception("due step for %s failed: the database went away; this tick stops there, "
                                         "and the next one tries every due row again", _label(row))  # fmt: skip
                        return done  # the steps run before it are kept (unless the connection itself is gone)
                    _note_failure(key, row, now)  # a statement cancelled, a lock not had: this row's, each time
                except Exception:
                    _note_failure(key, row, now)
                else:
                    _failed_steps.pop(key, None)
            if len(claimed) < wanted:  # nothing more is due (or free)
                break
    return done


def _note_failure(key: tuple[str, int], row: models.Model, now: dt.datetime) -> None:
    """Called inside the `except` of the row's step: logs it with its traceback, and counts it."""
    failures = _failed_steps.get(key, (0, now))[0] + 1
    _failed_steps[key] = (failures, now)
    if failures >= LEFT_OUT_AFTER_FAILURES_IN_A_ROW:
        logger.exception(
            "due step for %s failed %d times in a row; tried again in %d s, the rows behind it meanwhile",
            _label(row), failures, RETRY_FAILED_STEP_AFTER.total_seconds(),
        )  # fmt: skip
    else:
        logger.exception("due step for %s failed; tried again on the next tick", _label(row))
