"""A deploy-time check that the configured keys open the data already stored.

A wrong FIELD_ENCRYPTION_KEYS (a typo, a key from another installation, an old key dropped before `rotate_keys`
ran) does not fail loudly by itself: the field shows the ciphertext. `manage.py migrate`, which every start runs
first (`make run`, docker-compose's migrate step), runs database checks, so it stops here instead, naming the key
setting and never the data.
"""
from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.checks import CheckMessage, Error, Tags, register
from django.db import DatabaseError, connections

from helpline.cases.encryption import FERNET_PREFIX, current_fernet


@register(Tags.database)
def keys_open_stored_data(
    app_configs: Any = None, databases: list[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    if not databases or "default" not in databases:
        return []
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT body FROM helpline_message WHERE body LIKE %s ORDER BY id DESC LIMIT 1", [FERNET_PREFIX + "%"]
            )
            row = cursor.fetchone()
    except DatabaseError:
        return []  # no table yet (before the first migrate) or no database: nothing stored to open
    if row is None:
        return []
    try:
        current_fernet().decrypt(row[0].encode())
    except InvalidToken:
        return [Error(
            "FIELD_ENCRYPTION_KEYS cannot open the messages already stored.",
            hint="The keys are not the ones this database was encrypted with. Restore the right key (a new key goes "
            "first, the old ones stay after it until `manage.py rotate_keys` has run).",
            id="helpline.E001",
        )]  # fmt: skip
    return []
