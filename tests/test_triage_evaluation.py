"""The shipped rules keep meeting the evaluation targets (a guard against a rule change that misses danger)."""
import pytest

from triage.evaluation.metrics import TARGETS, evaluate, load_messages
from triage.services import classify_by_rules

pytestmark = pytest.mark.django_db


def test_the_shipped_rules_meet_the_targets_on_the_evaluation_set():
    messages = load_messages()
    assert len(messages) >= 200
    report = evaluate(messages, classify_by_rules)
    assert report.critical_recall >= TARGETS["critical_recall"], [m["text"] for m in report.missed_critical]
    assert report.low_normal_marked_critical <= TARGETS["low_normal_marked_critical"]
    assert report.category_accuracy >= TARGETS["category_accuracy"]
