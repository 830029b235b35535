"""`SemanticTriage`: priority and category of a message by meaning, with the labelled examples it resembles.

A message is critical when the critical probability reaches the head's threshold, which was chosen for
recall (see training.choose_critical_threshold); otherwise it gets the most probable of the other priorities, and
at least high when it comes close (combination.is_near_critical).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triage.semantic.combination import PRIORITY_RANK, is_near_critical
from triage.semantic.embedding import Embedder, shared_embedder
from triage.semantic.head import TriageHead

DEFAULT_HEAD_FILE = Path(__file__).resolve().parent.parent / "data" / "triage_head.npz"
RESEMBLING_EXAMPLES = 3


@dataclass(frozen=True)
class Resemblance:
    """A labelled training example close in meaning to the message (cosine similarity of the embeddings)."""

    text: str
    priority: str
    category: str
    similarity: float


@dataclass(frozen=True)
class Prediction:
    priority: str
    category: str
    critical_probability: float
    critical_threshold: float
    priority_probabilities: dict[str, float]
    category_probabilities: dict[str, float]
    resembles: tuple[Resemblance, ...]

    @property
    def reason(self) -> str:
        """One line for the case timeline: why the model said so. Quotes training examples, never the citizen."""
        examples = "; ".join(f"«{example.text}» ({example.similarity:.2f})" for example in self.resembles[:2])
        close = ", close to critical" if is_near_critical(self.critical_probability, self.critical_threshold) else ""
        return (
            f"semantic model: {self.priority}{close} (critical {self.critical_probability:.2f}, "
            f"threshold {self.critical_threshold:.2f}), {self.category}; resembles: {examples}"
        )

    @property
    def explained(self) -> dict:
        """The `reason` as a kind and its parameters, for the console to say in the reader's language."""
        return {
            "kind": "model",
            "priority": self.priority,
            "near_critical": is_near_critical(self.critical_probability, self.critical_threshold),
            "critical_probability": round(self.critical_probability, 3),
            "critical_threshold": round(self.critical_threshold, 3),
            "category": self.category,
            "resembles": [
                {"text": example.text, "similarity": round(example.similarity, 2)} for example in self.resembles[:2]
            ],
        }


def choose_priority(priority_probabilities: np.ndarray, priorities: Sequence[str], critical_threshold: float) -> str:
    """Critical once its probability reaches the threshold; otherwise the likeliest of the other priorities, and at
    least high near it (combination.is_near_critical)."""
    critical = priorities.index("critical")
    if priority_probabilities[critical] >= critical_threshold:
        return "critical"
    others = priority_probabilities.copy()
    others[critical] = -1.0
    likeliest = priorities[int(np.argmax(others))]
    if is_near_critical(float(priority_probabilities[critical]), critical_threshold):
        return max(likeliest, "high", key=PRIORITY_RANK.__getitem__)
    return likeliest


class SemanticTriage:
    """The embedding model and a trained head. Build it once per process; `predict` is thread-safe."""

    def __init__(self, head: TriageHead, embedder: Embedder) -> None:
        if embedder.name != head.embedder_name:
            # A head learnt on one model's vectors means nothing on another's.
            raise ValueError(f"the head was trained on {head.embedder_name}, not on {embedder.name}")
        self.head = head
        self.embedder = embedder
        self._example_vectors = head.examples.unit_embeddings()

    @classmethod
    def load(cls, head_file: Path = DEFAULT_HEAD_FILE, embedder: Embedder | None = None) -> SemanticTriage:
        """The shipped head with the shared embedder. Raises HeadFileError or EmbeddingUnavailable."""
        head = TriageHead.load(head_file)
        return cls(head, embedder if embedder is not None else shared_embedder())

    def predict(self, text: str) -> Prediction:
        return self.predict_many([text])[0]

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions for several messages at once: batching embeds about a third faster per message."""
        texts = list(texts)
        if not texts:
            return []
        embeddings = self.embedder.embed(texts)
        similarities = embeddings @ self._example_vectors.T
        priority_rows, category_rows = self.head.probabilities(embeddings, texts, similarities)
        return [
            self._prediction(priority_row, category_row, similarity_row)
            for priority_row, category_row, similarity_row in zip(
                priority_rows, category_rows, similarities, strict=True
            )
        ]

    def _prediction(self, priority_row: np.ndarray, category_row: np.ndarray, similarity_row: np.ndarray) -> Prediction:
        head = self.head
        nearest = np.argsort(-similarity_row, kind="stable")[:RESEMBLING_EXAMPLES]
        return Prediction(
            priority=choose_priority(priority_row, head.priorities, head.critical_threshold),
            category=head.categories[int(np.argmax(category_row))],
            critical_probability=float(priority_row[head.priorities.index("critical")]),
            critical_threshold=head.critical_threshold,
            priority_probabilities={label: float(p) for label, p in zip(head.priorities, priority_row, strict=True)},
            category_probabilities={label: float(p) for label, p in zip(head.categories, category_row, strict=True)},
            resembles=tuple(
                Resemblance(
                    text=head.examples.texts[index],
                    priority=head.priorities[head.examples.priorities[index]],
                    category=head.categories[head.examples.categories[index]],
                    similarity=float(similarity_row[index]),
                )
                for index in nearest
            ),
        )
