"""Writes staff corrections of triage as a jsonl author file for training the semantic model.

    python manage.py export_triage_corrections [--out FILE]
    python -m triage.semantic --with-corrections FILE

The file holds citizens' words: it is written under VAR_DIR by default, outside the repository, and must never be
committed. Each row is marked "quotable": false, so training learns from it but never shows it as an example.
"""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from triage.selectors import corrections_for_training


def default_corrections_file() -> Path:
    """Where the corrections are written unless told otherwise: under VAR_DIR, outside the repository."""
    return Path(settings.VAR_DIR) / "training" / "triage_corrections.jsonl"


class Command(BaseCommand):
    help = "Write staff corrections of triage (the latest per case) as a jsonl file the training can read."

    def add_arguments(self, parser):
        parser.add_argument(
            "--out", type=Path, default=None,
            help="where to write (default: VAR_DIR/training/triage_corrections.jsonl, outside the repository)",
        )

    def handle(self, *args, out: Path | None, **options) -> None:
        out = out or default_corrections_file()
        rows = corrections_for_training()
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, "quotable": False}, ensure_ascii=False) + "\n")
        self.stdout.write(f"wrote {len(rows)} corrections to {out}")
        self.stdout.write(f"train with them: python -m triage.semantic --with-corrections {out}")
