"""The trained head: two multinomial logistic regressions (priority, category) over the message's features, and
the labelled examples it learnt from, so that a prediction can say which of them the message resembles.

Saved as a small file of plain arrays (np.savez_compressed, loaded with allow_pickle=False): a head file can be
read without running any code from it.
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triage.semantic.features import FeatureSpec

FORMAT_VERSION = "triage-head/2"  # 2: probabilities blend the nearest examples' votes (and thresholds assume it)
PRIORITIES = ("critical", "high", "normal", "low")  # most urgent first, as PRIORITY_RANK orders them
CATEGORIES = (
    "domestic_violence", "child_protection", "suicide_self_harm", "mental_health", "elderly_disability",
    "material_need", "addiction", "information", "other",
)  # fmt: skip
EXAMPLE_TEXT_LENGTH = 160  # enough to recognise an example; the head file stays small


def normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class HeadFileError(ValueError):
    """A head file that is missing, damaged or of another format version: retrain, or use the rules alone."""


def balanced_sample_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class counts as much as every other in the loss, however many examples it has; the weights sum to 1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(n_classes)
    per_class[present] = 1.0 / (present.sum() * counts[present])
    return per_class[labels]


# The labelled examples nearest in meaning vote beside the regression: a message is judged partly by what the
# messages most like it were. Across ten authors (heads that never saw the scored author), a 0.3 share of the
# votes of the 10 nearest examples took the share of calm messages marked critical at the threshold keeping every
# author's critical recall at 0.95 from 0.238 to 0.134 (worst author 0.352 to 0.225), and category accuracy from
# 0.715 to 0.735. Chosen on those development authors (k 10 or 25, temperature 0.02 or 0.05, share 0.2 to 0.5).
NEIGHBOURS = 10
NEIGHBOUR_TEMPERATURE = 0.05  # cosine similarities of e5 vectors differ in the second decimal
NEIGHBOUR_SHARE = 0.3


def neighbour_votes(similarities: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per row: the labels of its NEIGHBOURS most similar examples, weighted by a softmax of the similarities."""
    rows = similarities.shape[0]
    k = min(NEIGHBOURS, similarities.shape[1])
    if k == 0:
        return np.full((rows, n_classes), 1.0 / n_classes)
    nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    weights = softmax(np.take_along_axis(similarities, nearest, axis=1) / NEIGHBOUR_TEMPERATURE)
    votes = np.zeros((rows, n_classes))
    np.add.at(votes, (np.arange(rows)[:, None], np.asarray(labels)[nearest]), weights)
    return votes


def with_neighbours(probabilities: np.ndarray, similarities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The regression's probabilities blended with the nearest examples' votes (rows still sum to 1)."""
    votes = neighbour_votes(similarities, labels, probabilities.shape[1])
    return (1.0 - NEIGHBOUR_SHARE) * probabilities + NEIGHBOUR_SHARE * votes


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def fit_softmax(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    l2: float = 1e-4,
    iterations: int = 120,
    tolerance: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (features x classes) and biases of an L2-regularised, class-balanced multinomial logistic regression.

    Full-batch accelerated gradient descent from zero weights, with a step from a bound on the curvature: there
    is nothing random in it, so the same examples always give the same weights, and no seed is needed.
    """
    # An array, or a matrix that has `shape`, `@` and `.T @` (training's SideBySide, with its n-grams sparse).
    if isinstance(features, np.ndarray) or not hasattr(features, "T"):
        features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    sample_weights = balanced_sample_weights(labels, n_classes).astype(np.float32)[:, None]
    one_hot = np.eye(n_classes, dtype=np.float32)[labels]

    # The loss's curvature is at most half the largest eigenvalue of the weighted X'X (bias column included).
    direction = np.ones(features.shape[1] + 1, dtype=np.float64)
    for _ in range(50):
        projected = features @ direction[:-1].astype(np.float32) + direction[-1]
        weighted = (sample_weights[:, 0] * projected).astype(np.float32)
        direction = np.append(features.T @ weighted, weighted.sum()).astype(np.float64)
        largest = np.linalg.norm(direction)
        direction /= largest
    # Python floats, not numpy scalars: a float64 scalar would silently turn every float32 product into float64.
    step = float(1.0 / (0.5 * largest + l2))

    def gradient(weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        residual = sample_weights * (softmax(features @ weights + bias) - one_hot)
        return features.T @ residual + l2 * weights, residual.sum(axis=0)

    weights = np.zeros((features.shape[1], n_classes), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    previous_weights, previous_bias = weights, bias
    momentum_step = 1.0
    for _ in range(iterations):
        next_momentum_step = (1 + math.sqrt(1 + 4 * momentum_step**2)) / 2
        momentum = (momentum_step - 1) / next_momentum_step
        look_weights = weights + momentum * (weights - previous_weights)
        look_bias = bias + momentum * (bias - previous_bias)
        weight_gradient, bias_gradient = gradient(look_weights, look_bias)
        previous_weights, previous_bias = weights, bias
        weights = look_weights - step * weight_gradient
        bias = look_bias - step * bias_gradient
        momentum_step = next_momentum_step
        # Restart the momentum when it carries us uphill (O'Donoghue and Candès): faster, still deterministic.
        if np.sum(weight_gradient * (weights - previous_weights)) + np.sum(bias_gradient * (bias - previous_bias)) > 0:
            momentum_step = 1.0
        if max(np.abs(weight_gradient).max(), np.abs(bias_gradient).max()) < tolerance:
            break
    return weights, bias


@dataclass(frozen=True)
class LabelledExamples:
    """The training messages kept in the head file: short texts, labels and quantised embeddings."""

    texts: tuple[str, ...]
    priorities: np.ndarray  # index into PRIORITIES
    categories: np.ndarray  # index into CATEGORIES
    codes: np.ndarray  # int8 embedding, one row per example
    scales: np.ndarray  # float32: the row's largest |component| / 127

    @classmethod
    def quantise(cls, texts: Sequence[str], priorities: np.ndarray, categories: np.ndarray, embeddings: np.ndarray):
        embeddings = np.asarray(embeddings, dtype=np.float32)
        scales = np.maximum(np.abs(embeddings).max(axis=1), 1e-12) / 127.0
        codes = np.clip(np.round(embeddings / scales[:, None]), -127, 127).astype(np.int8)
        return cls(
            texts=tuple(text[:EXAMPLE_TEXT_LENGTH] for text in texts),
            priorities=np.asarray(priorities, dtype=np.int8),
            categories=np.asarray(categories, dtype=np.int8),
            codes=codes,
            scales=scales.astype(np.float32),
        )

    def unit_embeddings(self) -> np.ndarray:
        vectors = self.codes.astype(np.float32) * self.scales[:, None]
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass
class TriageHead:
    """Everything the semantic model needs besides the embedding model itself."""

    embedder_name: str
    features: FeatureSpec
    embedding_mean: np.ndarray
    priority_weights: np.ndarray
    priority_bias: np.ndarray
    category_weights: np.ndarray
    category_bias: np.ndarray
    critical_threshold: float
    examples: LabelledExamples
    priorities: tuple[str, ...] = PRIORITIES
    categories: tuple[str, ...] = CATEGORIES
    notes: dict[str, str] = field(default_factory=dict)  # how it was trained: data, threshold procedure

    def probabilities(
        self, embeddings: np.ndarray, texts: Sequence[str], similarities: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Priority and category probabilities, one row per message: the regressions' blended with the votes of
        the nearest labelled examples (`similarities`: the unit embeddings against the examples', if at hand)."""
        if similarities is None:
            similarities = normalised(embeddings) @ self.examples.unit_embeddings().T
        return self.probabilities_from(self.features.build(embeddings, texts, self.embedding_mean), similarities)

    def probabilities_from(self, features: np.ndarray, similarities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As `probabilities`, from the head's input features already built (training caches them)."""
        return (
            with_neighbours(softmax(features @ self.priority_weights + self.priority_bias), similarities,
                            self.examples.priorities),
            with_neighbours(softmax(features @ self.category_weights + self.category_bias), similarities,
                            self.examples.categories),
        )  # fmt: skip

    def critical_by_words(self, texts: Sequence[str]) -> np.ndarray:
        """Each message's critical probability from its words alone: the priority head's n-gram block, with the
        meaning taken as the average message's. About half a millisecond a message, with no embedding model: it
        orders the messages waiting for the model, and is never a verdict. On the three unseen authors' sets, the
        third of the waiting messages it put first held 0.85 of the critical ones the rules had missed (oldest
        first: 0.28). Zeros without n-grams.
        """
        if not self.features.ngram_dimensions:
            return np.zeros(len(texts))
        word_weights = self.priority_weights[self.embedding_mean.shape[0] :]
        logits = self.features.ngram_weight * self.features.ngram_matrix(texts) @ word_weights + self.priority_bias
        return softmax(logits)[:, self.priorities.index("critical")]

    def save(self, path: Path) -> None:
        encoded_texts = [text.encode("utf-8") for text in self.examples.texts]
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "embedder_name": np.array(self.embedder_name),
            "priorities": np.array(self.priorities),
            "categories": np.array(self.categories),
            "ngram_dimensions": np.array(self.features.ngram_dimensions, dtype=np.int64),
            "ngram_sizes": np.array(self.features.ngram_sizes, dtype=np.int64),
            "ngram_weight": np.array(self.features.ngram_weight, dtype=np.float64),
            "embedding_mean": self.embedding_mean.astype(np.float32),
            "priority_weights": self.priority_weights.astype(np.float32),
            "priority_bias": self.priority_bias.astype(np.float32),
            "category_weights": self.category_weights.astype(np.float32),
            "category_bias": self.category_bias.astype(np.float32),
            "critical_threshold": np.array(self.critical_threshold, dtype=np.float64),
            # Texts as one UTF-8 byte string with offsets: plain numbers, and far smaller than fixed-width unicode.
            "example_text_bytes": np.frombuffer(b"".join(encoded_texts), dtype=np.uint8),
            "example_text_ends": np.cumsum([len(text) for text in encoded_texts], dtype=np.int64),
            "example_priorities": self.examples.priorities,
            "example_categories": self.examples.categories,
            "example_codes": self.examples.codes,
            "example_scales": self.examples.scales,
            "note_keys": np.array(list(self.notes), dtype=str),
            "note_values": np.array(list(self.notes.values()), dtype=str),
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        Path(path).write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> TriageHead:
        """Read a head file; raises HeadFileError if it is missing, damaged or of another format version."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError) as error:
            raise HeadFileError(f"cannot read the triage head file {path}: {error}") from error
        version = str(arrays.get("format_version", ""))
        if version != FORMAT_VERSION:
            raise HeadFileError(f"{path} is head format {version!r}; this code reads {FORMAT_VERSION!r}")
        try:
            text_bytes = arrays["example_text_bytes"].tobytes()
            ends = arrays["example_text_ends"].tolist()
            starts = [0, *ends[:-1]]
            texts = tuple(text_bytes[start:end].decode("utf-8") for start, end in zip(starts, ends, strict=True))
            return cls(
                embedder_name=str(arrays["embedder_name"]),
                features=FeatureSpec(
                    ngram_dimensions=int(arrays["ngram_dimensions"]),
                    ngram_sizes=tuple(int(size) for size in arrays["ngram_sizes"]),
                    ngram_weight=float(arrays["ngram_weight"]),
                ),
                embedding_mean=arrays["embedding_mean"],
                priority_weights=arrays["priority_weights"],
                priority_bias=arrays["priority_bias"],
                category_weights=arrays["category_weights"],
                category_bias=arrays["category_bias"],
                critical_threshold=float(arrays["critical_threshold"]),
                examples=LabelledExamples(
                    texts=texts,
                    priorities=arrays["example_priorities"],
                    categories=arrays["example_categories"],
                    codes=arrays["example_codes"],
                    scales=arrays["example_scales"],
                ),
                priorities=tuple(str(label) for label in arrays["priorities"]),
                categories=tuple(str(label) for label in arrays["categories"]),
                notes=dict(zip(arrays["note_keys"].tolist(), arrays["note_values"].tolist(), strict=True)),
            )
        except (KeyError, ValueError, UnicodeDecodeError) as error:
            raise HeadFileError(f"the triage head file {path} is incomplete or damaged: {error}") from error
