"""How a periodic tick works through what is due (escalation ladders of cases and of home visits)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import models, transaction

logger = logging.getLogger(__name__)

Row = TypeVar("Row", bound=models.Model)


def run_each_due(due: models.QuerySet[Row], run_step: Callable[[Row], bool], *, limit: int) -> int:
    """Claim up to `limit` due rows and run each one's step once. SKIP LOCKED lets two beats share the work, and
    the step checks its own fencing token; a savepoint per row means one failing row never holds back the rest
    (it is logged and retried on the next tick). Returns how many steps ran."""
    done = 0
    with transaction.atomic():
        # NO KEY: rows that merely point at a claimed row are still written meanwhile (see RowsForChange).
        for row in list(due.select_for_update(skip_locked=True, no_key=True)[:limit]):
            try:
                with transaction.atomic():
                    done += bool(run_step(row))
            except Exception:
                logger.exception("due step for %s %s failed; retried on the next tick", row._meta.model_name, row.pk)
    return done
