"""What the retention job would anonymise now (--dry-run, for a supervisor or the data protection officer), or run
it at once."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from helpline.privacy import selectors, services


class Command(BaseCommand):
    help = "Anonymise resolved and closed cases past their retention period; --dry-run only reports what it would do."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; say what would be anonymised.")
        parser.add_argument("--list", action="store_true", help="With --dry-run: list the case references too.")

    def handle(self, *args, dry_run: bool = False, list: bool = False, **options) -> None:
        if not dry_run:
            run = services.anonymise_expired()
            self.stdout.write(f"Anonymised {run.total} cases; {run.deferred} wait for Twilio to delete voicemail.")
            return
        plan = selectors.retention_plan()
        self.stdout.write(f"Dry run at {plan.now:%Y-%m-%d %H:%M} UTC: nothing was changed.")
        self.stdout.write(f"Would anonymise {plan.total} cases:")
        for (category, outcome, days), count in sorted(plan.to_anonymise.items()):
            self.stdout.write(f"  {category:<20} {outcome:<10} kept {days:>5} days: {count}")
        if list and plan.references:
            self.stdout.write("  " + ", ".join(plan.references))
        self.stdout.write(f"Kept by a legal hold although expired: {len(plan.held)}")
        for reference, reason in plan.held:
            self.stdout.write(f"  {reference}: {reason}")
