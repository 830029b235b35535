"""How a periodic tick works through what is due (escalation ladders of cases and of home visits)."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import models, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

Row = TypeVar("Row", bound=models.Model)

# A row whose step raised is left out of this process's ticks for this long. Retried every second, a few rows
# that always fail sat at the front of the queue (oldest due first) and took every tick's steps, so no other case
# was chased. Its due time is left as it is: /healthz/ measures from it how long a ladder has stood still.
RETRY_FAILED_STEP_AFTER = dt.timedelta(seconds=60)
_failed_steps: dict[tuple[str, int], dt.datetime] = {}


def forget_failed_steps() -> None:
    """Forget which rows' steps failed in this process, as a new process starts."""
    _failed_steps.clear()


def _label(row: models.Model) -> str:
    reference = getattr(row, "reference", "")
    return f"{row._meta.model_name} {reference or row.pk}"


def run_each_due(due: models.QuerySet[Row], run_step: Callable[[Row], bool], *, limit: int) -> int:
    """Claim due rows and run each one's step once, until `limit` steps ran or nothing due is left. SKIP LOCKED lets
    two beats share the work, and the step checks its own fencing token; a savepoint per row means one failing row
    never holds back the rest: it is logged, and tried again by this process after RETRY_FAILED_STEP_AFTER while
    the rows behind it run. Returns how many steps ran."""
    now = timezone.now()
    model = due.model._meta.label
    for key in [key for key, failed_at in _failed_steps.items() if now - failed_at >= RETRY_FAILED_STEP_AFTER]:
        del _failed_steps[key]
    left_out = {pk for (label, pk) in _failed_steps if label == model}
    done = 0
    with transaction.atomic():
        while done < limit:
            # NO KEY: rows that merely point at a claimed row are still written meanwhile (see RowsForChange).
            wanted = limit - done
            claimed = list(due.exclude(pk__in=left_out).select_for_update(skip_locked=True, no_key=True)[:wanted])
            for row in claimed:
                left_out.add(row.pk)  # claimed once per tick, whatever its step does
                try:
                    with transaction.atomic():
                        done += bool(run_step(row))
                except Exception:
                    _failed_steps[(model, row.pk)] = now
                    logger.exception(
                        "due step for %s failed; tried again in %d s, the rows behind it meanwhile",
                        _label(row), RETRY_FAILED_STEP_AFTER.total_seconds(),
                    )  # fmt: skip
            if len(claimed) < wanted:  # nothing more is due (or free)
                break
    return done
