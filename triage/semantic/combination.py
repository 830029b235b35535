"""How the keyword rules and the semantic model together decide a message's priority and category.

One plain function, used both by the worker's triage (triage.services.classify) and by the cross-author evaluation
(training.cross_author_evaluation), so the figures printed are the figures of what runs.
"""
from __future__ import annotations

from typing import Protocol

PRIORITY_RANK = {"": 0, "low": 1, "normal": 2, "high": 3, "critical": 4}


class Verdict(Protocol):
    priority: str
    category: str


def combine(model_priority: str, model_category: str, rules: Verdict) -> tuple[str, str]:
    """The priority and category of a message, from the model's and the rules' verdicts.

    Priority: the higher of the two. So a message is critical when either says so (missing danger is far worse
    than a worker reading a calm message early; the model's threshold is already set for recall), and otherwise
    neither can lower what the other saw: the rules' "high" for a child alone stays high even when the model,
    which knows fewer such messages, says normal.

    Category: the model's, unless the rules found the message critical. A critical rule is a specific phrase of
    danger ("popila sam sve tablete", "ima nož") whose category a supervisor wrote down; it decides who must read
    the case first, and the worker's skills are chosen by it. Below critical, rules match single words that occur
    in many kinds of message ("dijete", "pare", "lijekovi"), and the model, which reads the whole message, names
    the kind better. Measured across authors (`manage.py evaluate_triage`): taking the rules' category whenever
    any rule matched, or whenever a high rule matched, gave lower category accuracy than this, and taking the
    model's category always gave about the same mean but let a model's slip rename a plain critical threat.
    """
    priority = max(model_priority, rules.priority, key=lambda label: PRIORITY_RANK.get(label, 0))
    category = rules.category if rules.priority == "critical" else model_category
    return priority, category
