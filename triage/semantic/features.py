"""What the head sees of a message: its sentence embedding beside hashed character n-grams of its folded text.

The embedding carries meaning across languages and wordings; the n-grams carry the exact local words, slang and
misspellings ("ubicu se", "ubiću se", "убићу се") that a small multilingual model smooths over.
"""
from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_CYRILLIC_TO_LATIN = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "dj", "е": "e", "ж": "z", "з": "z", "и": "i",
    "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "ћ": "c", "у": "u", "ф": "f", "х": "h", "ц": "c", "ч": "c", "џ": "dz", "ш": "s",
})  # fmt: skip
_LATIN_FOLD = str.maketrans({"č": "c", "ć": "c", "š": "s", "ž": "z", "đ": "dj"})
_NOT_A_WORD = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower case, Cyrillic to Latin, diacritics dropped, anything but letters and digits turned into one space.

    The same idea as triage.normalise.fold, repeated here because this package must not import Django.
    """
    text = text.lower().translate(_CYRILLIC_TO_LATIN).translate(_LATIN_FOLD).replace("'", "").replace("\u2019", "")
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return _NOT_A_WORD.sub(" ", text).strip()


def char_ngrams(text: str, sizes: Sequence[int] = (3, 4, 5)) -> list[str]:
    """Character n-grams of each folded word, padded with spaces so that word beginnings and endings count."""
    grams = []
    for word in fold(text).split():
        padded = f" {word} "
        for size in sizes:
            grams.extend(padded[start : start + size] for start in range(max(len(padded) - size + 1, 1)))
    return grams


@dataclass(frozen=True)
class FeatureSpec:
    """How to turn (embedding, text) into the head's input. Saved with the head, so training and use agree."""

    ngram_dimensions: int = 4096  # 0 turns n-grams off
    ngram_sizes: tuple[int, ...] = (3, 4, 5)
    ngram_weight: float = 1.0  # the n-gram block's length relative to the (unit) embedding block

    def ngram_matrix(self, texts: Sequence[str]) -> np.ndarray:
        """Hashed n-gram counts, log-damped and scaled to unit length (rows of zeros for texts without words).

        crc32, not hash(): Python salts hash() per process, and the trained weights must mean the same next time.
        """
        matrix = np.zeros((len(texts), self.ngram_dimensions), dtype=np.float32)
        if not self.ngram_dimensions:
            return matrix
        for row, text in enumerate(texts):
            for gram in char_ngrams(text, self.ngram_sizes):
                digest = zlib.crc32(gram.encode("utf-8"))
                # A sign bit from the hash lets colliding n-grams cancel out instead of piling up.
                matrix[row, digest % self.ngram_dimensions] += 1.0 if digest & 0x80000000 else -1.0
        damped = np.sign(matrix) * np.log1p(np.abs(matrix))
        lengths = np.linalg.norm(damped, axis=1, keepdims=True)
        return damped / np.maximum(lengths, 1e-12)

    def build(self, embeddings: np.ndarray, texts: Sequence[str], embedding_mean: np.ndarray) -> np.ndarray:
        """The head's input: the centred embedding, then the weighted n-gram block."""
        # e5 embeddings of any two messages are close (cosine ~0.8); centring puts the differences up front.
        centred = np.asarray(embeddings, dtype=np.float32) - embedding_mean.astype(np.float32)
        if not self.ngram_dimensions:
            return centred
        return np.hstack([centred, self.ngram_weight * self.ngram_matrix(texts)]).astype(np.float32)
