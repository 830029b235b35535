"""The semantic model of this process: loaded once, lazily, by the first triage that needs it; or None for good.

Only the worker's triage asks for it (triage.services.classify): the request path's quick check never loads it.
Loading maps the embedding weights and reads the head file (well under a second); a Celery prefork child loads its
own on its first case, after the fork, as the embedding engine requires. When it cannot be loaded (the head file
missing or damaged, the embedding library missing or broken, anything else), the process triages by the rules
alone, says so once in the log, and does not try again until it is restarted: a failing load would otherwise
cost every case its time.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from triage.semantic.head import TriageHead
    from triage.semantic.model import SemanticTriage

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, object] = {}  # "pid", "model" (a SemanticTriage or None), "problem"
head_file: Path | None = None  # the shipped head; tests point this at a missing file to see the fallback

# A process triaging by the rules alone keeps a heartbeat of this prefix fresh (at most one write a minute), so
# /healthz/ can say so: the model lives in the workers, and the web cannot ask them.
RULES_ONLY_HEARTBEAT_PREFIX = "rules-only:"
RULES_ONLY_REPORT_EVERY_SECONDS = 60.0
_last_report: dict[int, float] = {}  # pid -> when it last reported (a forked child must report for itself)


TURNED_OFF = "turned off (SEMANTIC_TRIAGE=false)"


def is_turned_off() -> bool:
    """The centre turned the model off (settings.SEMANTIC_TRIAGE): the rules triage alone, by choice, and no case
    waits for a second look that would never come."""
    from django.conf import settings

    return not settings.SEMANTIC_TRIAGE


def semantic_model() -> SemanticTriage | None:
    """This process's model, loaded on first use; None when it is turned off, or could not be loaded (then logged
    once)."""
    if _loaded.get("pid") != os.getpid():
        _load_for_this_process()
    if _loaded["model"] is None and _loaded["problem"] != TURNED_OFF:
        report_rules_only()  # on every triage without it (at most a write a minute), so /healthz/ keeps saying so
    return _loaded["model"]  # type: ignore[return-value]


def _load_for_this_process() -> None:
    with _lock:
        if _loaded.get("pid") == os.getpid():
            return  # another thread of this process loaded it meanwhile
        if is_turned_off():
            logger.info("semantic triage is %s: this process triages by the rules alone", TURNED_OFF)
            _loaded.update(pid=os.getpid(), model=None, problem=TURNED_OFF)
            return
        model, problem = None, ""
        try:
            # Imported here, not at the top: numpy and the model's modules would otherwise load in every
            # worker and beat at start, lengthening a restart after a crash, and beat never triages.
            from triage.semantic.model import DEFAULT_HEAD_FILE, SemanticTriage

            started = time.monotonic()
            model = SemanticTriage.load(head_file or DEFAULT_HEAD_FILE)
            logger.info("semantic triage model loaded in %.2f s", time.monotonic() - started)
        except Exception as error:  # whatever the cause, triage goes on with the rules
            problem = f"{type(error).__name__}: {error}"
            logger.warning(
                "semantic triage is unavailable in this process, triaging by the rules alone until it is "
                "restarted: %s", problem,
            )
        _loaded.update(pid=os.getpid(), model=model, problem=problem)


# A message that makes the engine do a whole first reading (its first call costs about twice a later one).
_WARM_UP_TEXT = "Ne mogu više ovako, večeras ću sve završiti."


def warm_up_in_background() -> threading.Thread:
    """Load this process's model, and read one message with it, in a thread of its own, so that the first case
    a critical doorbell brings never waits for the load (0.3 s of CPU, several seconds on a busy box; a niced
    process's first critical case was among a run's slowest). A case arriving meanwhile waits for the same load
    (`semantic_model` loads once, under a lock), never for a second one. Not in the Celery hook itself: a pool
    process that takes more than 4 s to start is killed, and a busy box can make the load take that long."""
    thread = threading.Thread(target=_warm_up, name="semantic-model-warm-up", daemon=True)
    thread.start()
    return thread


def _warm_up() -> None:
    from django.db import connections

    try:
        model = semantic_model()  # logs and reports when it cannot be loaded; triage then uses the rules alone
        if model is not None:
            model.predict(_WARM_UP_TEXT)
    except Exception:  # the first real message will show the problem where it matters; triage falls back there
        logger.warning("the semantic model failed on its warm-up message", exc_info=True)
    finally:
        connections.close_all()  # this thread's own (reporting "rules only"), not the worker's


_word_head: dict[str, object] = {}  # "pid", "head" (a TriageHead or None)


def critical_by_words(text: str) -> float:
    """The message's critical probability from its words alone (TriageHead.critical_by_words), to order the
    model's queue; 0.0 when the head cannot be read or scoring fails (the message then waits its turn by age).
    A process that has the model already uses the model's head; one that has not reads only the head file: the
    rules' triage workers that ask for it have no use for the embedding model's memory."""
    if not text.strip():
        return 0.0
    head = _head_for_words()
    if head is None:
        return 0.0
    try:
        return float(head.critical_by_words([text])[0])
    except Exception:  # ordering is a courtesy: it must never cost the message its first triage
        logger.warning("could not score a message's words for the model's queue", exc_info=True)
        return 0.0


def _head_for_words() -> TriageHead | None:
    if _loaded.get("pid") == os.getpid() and _loaded.get("model") is not None:
        return _loaded["model"].head  # type: ignore[attr-defined]
    if _word_head.get("pid") != os.getpid():
        with _lock:
            if _word_head.get("pid") != os.getpid():
                head = None
                try:
                    from triage.semantic.head import TriageHead
                    from triage.semantic.model import DEFAULT_HEAD_FILE

                    head = TriageHead.load(head_file or DEFAULT_HEAD_FILE)
                except Exception:  # the queue is then read oldest first; semantic_model() reports the cause
                    logger.warning("the triage head could not be read; the model's queue goes oldest first")
                _word_head.update(pid=os.getpid(), head=head)
    return _word_head["head"]  # type: ignore[return-value]


def rules_only_heartbeat_name() -> str:
    return f"{RULES_ONLY_HEARTBEAT_PREFIX}{socket.gethostname()[:30]}:{os.getpid()}"


def report_rules_only() -> None:
    """Keeps this process's "rules only" heartbeat fresh; never lets a database problem reach triage."""
    now, pid = time.monotonic(), os.getpid()
    if now - _last_report.get(pid, -RULES_ONLY_REPORT_EVERY_SECONDS) < RULES_ONLY_REPORT_EVERY_SECONDS:
        return
    _last_report[pid] = now
    try:
        from django.db import transaction

        from helpline.cases.services import record_heartbeat

        # In a savepoint: this runs inside the case's triage, and a failed write outside one would leave that
        # transaction unusable, rolling the triage back for a report.
        with transaction.atomic():
            record_heartbeat(rules_only_heartbeat_name())
    except Exception:  # the triage itself goes on; the next report tries again in a minute
        logger.warning("could not record that this process triages by the rules alone", exc_info=True)


def keep_rules_only_report_fresh() -> None:
    """Refresh this process's "rules only" report if its model could not be loaded, whether or not it triages: a
    process quiet for three minutes otherwise aged out of /healthz/, which said "ok" although its next case is read
    by the rules alone. Called before every task a worker process runs (helpline/project/celery.py; the ticks run
    every few seconds); a dictionary look-up unless it reports (at most a write a minute)."""
    if _loaded.get("pid") == os.getpid() and _loaded.get("model") is None and _loaded.get("problem") != TURNED_OFF:
        report_rules_only()


def model_problem() -> str:
    """Why the model could not be loaded in this process ('' when it loaded or was never asked for)."""
    return str(_loaded.get("problem", "")) if _loaded.get("pid") == os.getpid() else ""


def forget_semantic_model() -> None:
    """Load again on the next triage (tests; a restarted process does this by itself)."""
    with _lock:
        _loaded.clear()
        _word_head.clear()
        _last_report.clear()
