"""How the keyword rules and the semantic model together decide a message's priority and category.

One plain function, used both by the worker's triage (triage.services.classify) and by the cross-author evaluation
(training.cross_author_evaluation), so the figures printed are the figures of what runs.
"""
from __future__ import annotations

from typing import Protocol

PRIORITY_RANK = {"": 0, "low": 1, "normal": 2, "high": 3, "critical": 4}
IN_ONE_LINE = "the higher priority of the two (so critical when either says so); the model's category"


class Verdict(Protocol):
    priority: str
    category: str


def combine(model_priority: str, model_category: str, rules: Verdict) -> tuple[str, str]:
    """The priority and category of a message, from the model's and the rules' verdicts.

    Priority: the higher of the two. So a message is critical when either says so (missing danger is far worse
    than a worker reading a calm message early; the model's threshold is already set for recall), and below that
    neither lowers what the other saw. Measured across authors (each of the six scored by a model that never saw
    it, `manage.py evaluate_triage --cross-author`), the alternative "critical when either says so, otherwise the
    model's priority" rated fewer calm messages high or critical (0.30 against 0.42) but gave fewer high and
    critical messages at least high (0.952 against 0.964; worst author 0.904 against 0.928): safety first.

    Category: the model's, whatever the rules matched. Rules name a category from a few words; the model reads the
    whole message. Measured the same way: the model's category always, 0.721 (worst author 0.698); the rules'
    category when a critical rule matched, 0.670 (0.638); when a high or critical rule matched, 0.630; when any
    rule matched, 0.509; the rules' only when the model was unsure of its category (top probability under 0.4, 0.5
    or 0.6), 0.717 to 0.702. No way of letting a rule "match strongly" beat the model's category on authors the
    rules were not written for. The rules still name the category when the model is unavailable.
    """
    priority = max(model_priority, rules.priority, key=lambda label: PRIORITY_RANK.get(label, 0))
    return priority, model_category
