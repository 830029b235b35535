"""Store the contacts spooled while the database was unreachable (the beat task does the same every few seconds)."""
from django.core.management.base import BaseCommand

from helpline.intake import spool


class Command(BaseCommand):
    help = "Store every contact waiting in the intake spool, exactly once, and report how many."

    def handle(self, *args, **options) -> None:
        waiting = len(spool.pending())
        result = spool.replay_spool()
        self.stdout.write(
            f"spooled: {waiting}, stored: {result.stored}, dropped (code did not match): {result.dropped}, "
            f"failed: {result.failed}, still waiting: {result.remaining}"
        )
