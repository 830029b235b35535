"""Retrains the shipped head of the semantic model, as `python -m triage.semantic` does (same files, same head).

    python manage.py train_triage [--with-corrections] [--out FILE] [--jobs N]

`--with-corrections` first writes the staff's corrections of triage from the database
(`manage.py export_triage_corrections`, under VAR_DIR, never into the repository) and learns from them as one more
author. About twenty minutes on two cores.
"""
from __future__ import annotations

import os
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from triage.management.commands.export_triage_corrections import default_corrections_file
from triage.semantic.model import DEFAULT_HEAD_FILE


class Command(BaseCommand):
    help = "Retrain the semantic model's head from the author files (and, if asked, the staff's corrections)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--with-corrections", action="store_true", help="also learn from the staff's corrections in the database"
        )
        parser.add_argument("--out", type=Path, default=DEFAULT_HEAD_FILE, help="where to write the head")
        parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="heads fitted at a time")

    def handle(self, *args, with_corrections: bool, out: Path, jobs: int, **options) -> None:
        # Imported here: training needs scipy, which nothing else in a running service loads.
        from triage.semantic import __main__ as training

        argv = ["--out", str(out), "--jobs", str(jobs)]
        if with_corrections:
            corrections = default_corrections_file()
            call_command("export_triage_corrections", "--out", str(corrections), stdout=self.stdout)
            argv += ["--with-corrections", str(corrections)]
        if training.main(argv) != 0:
            raise CommandError("training failed")
