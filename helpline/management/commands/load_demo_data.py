"""Loads what a new user needs to see the whole flow: a demo supervisor account (and, with the triage app, a
roster). Safe to run again: it changes nothing that exists."""
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo supervisor account if there are no users yet."

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        if users.exists():
            self.stdout.write("Demo data: users exist already, nothing changed.")
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser("supervisor", password=password)
        self.stdout.write(
            self.style.SUCCESS(f"Demo supervisor created: log in at /admin/ as 'supervisor' with password {password}")
        )
