"""Where the labelled messages are: one file per author. Training, the evaluation command and the benchmark read
the same lists from here."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from triage.semantic.training import LabelledMessage, load_authors, load_labelled

TRIAGE_DIR = Path(__file__).resolve().parent.parent
AUTHOR_FILES = sorted((TRIAGE_DIR / "data" / "training").glob("author_*.jsonl"))
# The older sets were development sets of the rules: trained on, never scored across authors (they would flatter).
OLDER_SETS = [TRIAGE_DIR / "evaluation" / name for name in ("messages.jsonl", "independent.jsonl", "held_out.jsonl")]


def authors() -> dict[str, list[LabelledMessage]]:
    """The independent authors' files: the ones the cross-author evaluation scores."""
    return load_authors(AUTHOR_FILES)


def older_sets() -> dict[str, list[LabelledMessage]]:
    return load_authors(OLDER_SETS)


def training_groups(correction_files: Sequence[Path] = ()) -> dict[str, list[LabelledMessage]]:
    """Every group the shipped head learns from: the author files, the older sets, and any files of staff
    corrections (manage.py export_triage_corrections), each correction file one more author."""
    groups = {**authors(), **older_sets()}
    for path in correction_files:
        name = f"corrections:{Path(path).stem}"
        groups[name] = load_labelled(path, author=name)
    return groups
