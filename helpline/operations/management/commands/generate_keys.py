"""Print new keys for FIELD_ENCRYPTION_KEYS and BLIND_INDEX_KEY, to put in the environment (README, "Keys")."""
from __future__ import annotations

import secrets

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print a new field encryption key and a new blind index key; nothing is stored."
    # The first step of a new deployment, before PUBLIC_BASE_URL and the rest are set: the checks of a running
    # service (notifications.E001, E005) must not stop it. It reads nothing and stores nothing.
    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"FIELD_ENCRYPTION_KEYS={Fernet.generate_key().decode()}")
        self.stdout.write(f"BLIND_INDEX_KEY={secrets.token_urlsafe(48)}")
