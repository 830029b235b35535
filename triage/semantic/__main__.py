"""Train the shipped head: `python -m triage.semantic [--out triage/data/triage_head.npz]`.

Learns from every author file in triage/data/training and the older evaluation sets (each file one author);
the critical threshold comes from leaving one author out at a time. Deterministic: same files, same head.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triage.semantic.embedding import shared_embedder
from triage.semantic.model import DEFAULT_HEAD_FILE
from triage.semantic.training import EmbeddingTable, TrainingSettings, load_authors, train_shipped_head

TRIAGE_DIR = Path(__file__).resolve().parent.parent
AUTHOR_FILES = sorted((TRIAGE_DIR / "data" / "training").glob("author_*.jsonl"))
OLDER_SETS = [TRIAGE_DIR / "evaluation" / name for name in ("messages.jsonl", "independent.jsonl", "held_out.jsonl")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD_FILE)
    arguments = parser.parse_args(argv)
    settings = TrainingSettings()
    groups = load_authors([*AUTHOR_FILES, *OLDER_SETS])
    head = train_shipped_head(groups, EmbeddingTable(shared_embedder(), settings.features), settings)
    head.save(arguments.out)
    size = arguments.out.stat().st_size
    print(f"wrote {arguments.out} ({size / 1e6:.2f} MB), critical threshold {head.critical_threshold:.3f}")
    for key, value in head.notes.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
