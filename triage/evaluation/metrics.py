"""Measures triage against the evaluation set: how many critical messages it catches, how often it cries wolf."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from triage.semantic.head import CATEGORIES, PRIORITIES

EVALUATION_SET = Path(__file__).resolve().parent / "messages.jsonl"

TARGETS = {"critical_recall": 0.97, "low_normal_marked_critical": 0.10, "category_accuracy": 0.85}


@dataclass
class Report:
    total: int
    critical_recall: float
    low_normal_marked_critical: float
    category_accuracy: float
    priority_accuracy: float
    confusion: Counter = field(default_factory=Counter)
    missed_critical: list[dict] = field(default_factory=list)
    false_critical: list[dict] = field(default_factory=list)
    wrong_category: list[dict] = field(default_factory=list)

    @property
    def meets_targets(self) -> bool:
        return (
            self.critical_recall >= TARGETS["critical_recall"]
            and self.low_normal_marked_critical <= TARGETS["low_normal_marked_critical"]
            and self.category_accuracy >= TARGETS["category_accuracy"]
        )


def load_messages(path: Path = EVALUATION_SET) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class ReadingError(ValueError):
    """A second reading that does not label every message of its file exactly once, with known labels."""


@dataclass(frozen=True)
class SecondReading:
    """Another person's labels of a labelled file's messages, given as a system's verdicts are (no reasons)."""

    priority: str
    category: str
    reasons: tuple = ()


def load_second_reading(path: Path, messages: list[dict]) -> Callable[[str], SecondReading]:
    """A second reader's labels of `messages` (one JSON line each: {"line", "priority", "category"}, `line` counting
    the labelled file's messages from 1), as a function of a message's text that `evaluate` can score like a system.

    Every message must be read exactly once: a reading that skipped one would score better than it is.
    """
    by_line: dict[int, SecondReading] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("priority") not in PRIORITIES or row.get("category") not in CATEGORIES:
            raise ReadingError(f"{path}:{number}: unknown priority or category")
        if not isinstance(row.get("line"), int) or not 1 <= row["line"] <= len(messages) or row["line"] in by_line:
            raise ReadingError(f"{path}:{number}: 'line' must name each of the file's {len(messages)} messages once")
        by_line[row["line"]] = SecondReading(row["priority"], row["category"])
    if len(by_line) != len(messages):
        raise ReadingError(f"{path}: {len(by_line)} of the file's {len(messages)} messages read")
    readings: dict[str, SecondReading] = {}
    for line, message in enumerate(messages, start=1):
        if readings.setdefault(message["text"], by_line[line]) != by_line[line]:
            raise ReadingError(f"{path}: the same text is read two ways (line {line})")
    return readings.__getitem__


def evaluate(messages: list[dict], classify: Callable) -> Report:
    critical = caught = calm = cried_wolf = right_category = right_priority = 0
    confusion: Counter = Counter()
    report = Report(0, 0, 0, 0, 0)
    for row in messages:
        result = classify(row["text"])
        seen = {**row, "got_priority": result.priority, "got_category": result.category, "reasons": result.reasons}
        confusion[(row["priority"], result.priority)] += 1
        if row["priority"] == "critical":
            critical += 1
            if result.priority == "critical":
                caught += 1
            else:
                report.missed_critical.append(seen)
        if row["priority"] in ("low", "normal"):
            calm += 1
            if result.priority == "critical":
                cried_wolf += 1
                report.false_critical.append(seen)
        if result.category == row["category"]:
            right_category += 1
        else:
            report.wrong_category.append(seen)
        right_priority += result.priority == row["priority"]
    total = len(messages)
    report.total = total
    report.critical_recall = caught / critical if critical else 1.0
    report.low_normal_marked_critical = cried_wolf / calm if calm else 0.0
    report.category_accuracy = right_category / total if total else 0.0
    report.priority_accuracy = right_priority / total if total else 0.0
    report.confusion = confusion
    return report
