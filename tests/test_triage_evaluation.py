"""The shipped rules keep meeting the evaluation targets (a guard against a rule change that misses danger), and a
second reader's labels can be scored against an author's like a system's."""
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from triage.evaluation import metrics as evaluation_metrics
from triage.evaluation.metrics import TARGETS, evaluate, load_messages, load_second_reading
from triage.services import classify_by_rules

pytestmark = pytest.mark.django_db


def test_the_shipped_rules_meet_the_targets_on_the_evaluation_set():
    messages = load_messages()
    assert len(messages) >= 200
    report = evaluate(messages, classify_by_rules)
    assert report.critical_recall >= TARGETS["critical_recall"], [m["text"] for m in report.missed_critical]
    assert report.low_normal_marked_critical <= TARGETS["low_normal_marked_critical"]
    assert report.category_accuracy >= TARGETS["category_accuracy"]


# --- A second reader's labels, scored like a system ---------------------------------------------------------------


def labelled_file(tmp_path):
    rows = [
        {"text": "Muž je pred vratima s nožem", "priority": "critical", "category": "domestic_violence"},
        {"text": "Kada radite u petak?", "priority": "low", "category": "information"},
        {"text": "Mama ne jede već tri dana i ne otvara", "priority": "high", "category": "elderly_disability"},
    ]
    path = tmp_path / "author_x.jsonl"
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    return path


def reading_file(tmp_path, rows):
    path = tmp_path / "reading.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_a_second_readers_labels_are_scored_against_the_files_like_a_system_would_be(tmp_path):
    labelled = labelled_file(tmp_path)
    reading = reading_file(tmp_path, [
        {"line": 3, "priority": "critical", "category": "elderly_disability"},  # rates the silent mother higher
        {"line": 1, "priority": "critical", "category": "domestic_violence"},
        {"line": 2, "priority": "low", "category": "other"},
    ])  # fmt: skip
    out = io.StringIO()
    call_command("evaluate_triage", file=labelled, second_reading=reading, stdout=out)
    printed = out.getvalue()
    assert "a second reader (reading.jsonl) on author_x.jsonl; messages: 3" in printed
    assert "critical recall:                1.000" in printed
    assert "low/normal marked critical:     0.000" in printed
    assert "category accuracy:              0.667" in printed
    assert "priority exactly right:         0.667" in printed
    assert "target" not in printed  # the targets are asked of a system, not of the people it is measured by


@pytest.mark.parametrize(
    "rows, complaint",
    [
        ([{"line": 1, "priority": "critical", "category": "domestic_violence"}], "1 of the file's 3 messages read"),
        (
            [{"line": n, "priority": "critical", "category": "domestic_violence"} for n in (1, 2, 2)],
            "'line' must name each of the file's 3 messages once",
        ),
        ([{"line": 4, "priority": "low", "category": "other"}], "'line' must name each"),
        ([{"line": 1, "priority": "urgent", "category": "other"}], "unknown priority or category"),
    ],
)
def test_a_second_reading_that_skips_repeats_or_mislabels_a_message_is_refused_not_scored(tmp_path, rows, complaint):
    """A reading that skipped the hard messages would look better than it is."""
    with pytest.raises(CommandError, match=complaint):
        call_command(
            "evaluate_triage", file=labelled_file(tmp_path), second_reading=reading_file(tmp_path, rows),
            stdout=io.StringIO(),
        )


def test_a_second_reading_goes_with_one_file_not_with_the_cross_author_table(tmp_path):
    with pytest.raises(CommandError, match="does not go with --cross-author"):
        call_command(
            "evaluate_triage", cross_author=True, second_reading=tmp_path / "reading.jsonl", stdout=io.StringIO()
        )


def test_every_second_reading_in_the_repository_reads_every_message_of_its_set_once():
    triage_dir = Path(evaluation_metrics.__file__).resolve().parent.parent
    readings = sorted((triage_dir / "evaluation" / "second_readings").glob("*.jsonl"))
    assert readings
    for reading in readings:
        (labelled,) = [
            folder / reading.name
            for folder in (triage_dir / "data" / "training", triage_dir / "evaluation" / "unseen")
            if (folder / reading.name).exists()
        ]
        read = load_second_reading(reading, load_messages(labelled))  # raises on a message skipped or read twice
        assert read(load_messages(labelled)[0]["text"]).priority
