"""Brings the shipped triage rules into this installation: new rules always, changed ones with --update."""

from django.core.management.base import BaseCommand

from triage.services import install_default_rules


class Command(BaseCommand):
    help = (
        "Add shipped triage rules that this installation lacks. With --update, also reset rules of the same "
        "name to the shipped version (overwrites a supervisor's edits to those rules)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--update", action="store_true", help="Also reset same-named rules to the shipped terms.")

    def handle(self, *args, update: bool, **options) -> None:
        result = install_default_rules(update=update)
        self.stdout.write(f"added {len(result.added)}: {', '.join(result.added) or '-'}")
        self.stdout.write(f"updated {len(result.updated)}: {', '.join(result.updated) or '-'}")
