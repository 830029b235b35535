"""Print new keys for FIELD_ENCRYPTION_KEYS and BLIND_INDEX_KEY, to put in the environment (README, "Keys")."""
from __future__ import annotations

import secrets

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print a new field encryption key and a new blind index key; nothing is stored."

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"FIELD_ENCRYPTION_KEYS={Fernet.generate_key().decode()}")
        self.stdout.write(f"BLIND_INDEX_KEY={secrets.token_urlsafe(48)}")
