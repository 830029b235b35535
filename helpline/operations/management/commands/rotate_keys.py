"""Re-encrypt every personal field under the first of FIELD_ENCRYPTION_KEYS and recompute every blind index with
BLIND_INDEX_KEY: the second half of a key rotation (README, "Keys"). Safe to stop and run again."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from helpline.operations.key_rotation import reencrypt_all, reindex_all


class Command(BaseCommand):
    help = "Re-encrypt personal data under the newest key and recompute the blind indexes; prints counts only."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch", type=int, default=500, help="Rows per transaction.")

    def handle(self, *args, batch: int = 500, **options) -> None:
        encrypted = reencrypt_all(batch)
        unreadable = encrypted.pop("unreadable", 0)
        self.stdout.write(f"Re-encrypted {sum(encrypted.values())} values in {len(encrypted)} columns.")
        for column, count in sorted(encrypted.items()):
            self.stdout.write(f"  {column}: {count}")
        left_apart: list[list[str]] = []
        indexed = reindex_all(batch, left_apart)
        self.stdout.write(
            f"Blind indexes recomputed: {indexed['callers']} callers, {indexed['cases']} cases, "
            f"{indexed['messages']} messages, {indexed['staff']} staff, {indexed['register']} register entries, "
            f"{indexed['welfare_checks']} welfare checks."
        )
        for references in left_apart:
            self.stderr.write(
                f"One number is two callers, each with an open case ({', '.join(references)}): it texted while the "
                "blind-index key changed. Resolve one of the cases and run rotate_keys again to merge them."
            )
        if unreadable:
            self.stderr.write(
                f"{unreadable} values could not be opened with any key in FIELD_ENCRYPTION_KEYS and were left as "
                "they are (the log names their tables and rows). Was an old key removed too early?"
            )
