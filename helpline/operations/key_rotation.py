"""Key rotation: every encrypted value re-encrypted under the first of `FIELD_ENCRYPTION_KEYS`, and every blind index
recomputed with the current `BLIND_INDEX_KEY` (`manage.py rotate_keys`, README "Keys").

Both passes work in batches of their own transactions, in primary-key order, and can be stopped and run again: a
value already under the new key is simply re-encrypted, an index already current is rewritten unchanged. Neither
writes back over a value changed since it was read (an erasure that commits while the rotation runs stays erased).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.db import connection, models, transaction

from helpline.cases.encryption import (
    ENCRYPTED_FIELD_TYPES,
    FERNET_PREFIX,
    current_fernet,
    email_index,
    phone_index,
    search_tokens,
)
from helpline.cases.models import ENCRYPTED_DETAILS, Caller, Case, Message, TimelineEvent
from helpline.cases.services import merge_duplicate_caller
from helpline.roster.models import StaffProfile
from helpline.welfare.models import VulnerablePerson, WelfareCheck

logger = logging.getLogger(__name__)

BATCH = 500


def encrypted_columns() -> Iterator[tuple[type[models.Model], models.Field]]:
    """Every encrypted field of every installed model (their history tables included)."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, ENCRYPTED_FIELD_TYPES):
                yield model, field


def reencrypt_all(batch: int = BATCH) -> Counter:
    """Re-encrypt every stored value under the first key; a value written in clear (before encryption) is
    encrypted. Returns counts per "table.column" and, apart, values no key opens ("unreadable"), which are left as
    they are and named in the log by table and row, never by content."""
    counts: Counter = Counter()
    fernet = current_fernet()
    for model, field in encrypted_columns():
        table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
        quote = connection.ops.quote_name
        # Names from the models' own metadata, never from input; values are parameters.
        select = (
            f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)} "  # noqa: S608
            f"WHERE {quote(column)} <> '' AND {quote(pk)} > %s ORDER BY {quote(pk)} LIMIT %s"
        )
        # Only if the value is still the one read: an erasure or an edit that commits between the read and the
        # write (the read takes no lock) must not be undone by the old ciphertext written back.
        update = (
            f"UPDATE {quote(table)} SET {quote(column)} = %s "  # noqa: S608
            f"WHERE {quote(pk)} = %s AND {quote(column)} = %s"
        )
        last = 0 if isinstance(model._meta.pk, models.AutoField | models.BigAutoField) else ""
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(select, [last, batch])
                rows = cursor.fetchall()
                if not rows:
                    break
                changed = []
                for key, value in rows:
                    if not value.startswith(FERNET_PREFIX):
                        changed.append((fernet.encrypt(value.encode()).decode(), key, value))
                        continue
                    try:
                        changed.append((fernet.rotate(value.encode()).decode(), key, value))
                    except InvalidToken:
                        counts["unreadable"] += 1
                        logger.warning("%s.%s of row %s: no key opens it; left as it is", table, column, key)
                cursor.executemany(update, changed)
                counts[f"{table}.{column}"] += len(changed)
                last = rows[-1][0]
    return counts


def _reindex(queryset: models.QuerySet, fields: list[str], derive: Callable[[models.Model], None], batch: int) -> int:
    """Each batch is locked as it is read: rows derived from values an erasure blanks meanwhile would otherwise be
    written back with the erased words (a note) or the hash of an erased number. An erasure running now waits for
    the batch, or the batch for it, and reads what it left."""
    done, last = 0, 0
    while True:
        with transaction.atomic():
            rows = list(queryset.filter(pk__gt=last).order_by("pk").select_for_update()[:batch])
            if not rows:
                return done
            for row in rows:
                derive(row)
            queryset.model.objects.bulk_update(rows, fields)
            done += len(rows)
            last = rows[-1].pk


def _reindex_callers(batch: int, left_apart: list[list[str]]) -> int:
    """The callers' pass: a number that texted while the new key was set but its index not yet rewritten made a
    second caller under the new index (intake did not recognise it), and rewriting the first caller's index would
    break the index's uniqueness and stop the rotation. The two are merged into the first; when each has an open
    case they are left apart (the first under its old index) and their cases' references added to `left_apart`."""
    done, last = 0, 0
    while True:
        with transaction.atomic():
            rows = list(Caller.objects.filter(pk__gt=last).order_by("pk").select_for_update()[:batch])
            if not rows:
                return done
            merged_away: set[int] = set()
            rewritten = []
            for row in rows:
                if row.pk in merged_away:
                    continue
                index = phone_index(row.phone)
                duplicate = Caller.objects.select_for_update().filter(phone_index=index).exclude(pk=row.pk).first()
                if duplicate is not None:
                    still_open = merge_duplicate_caller(keep=row, duplicate=duplicate)
                    if still_open:
                        left_apart.append(still_open)
                        continue
                    merged_away.add(duplicate.pk)
                row.phone_index = index
                rewritten.append(row)
            Caller.objects.bulk_update(rewritten, ["phone_index"])
            done += len(rewritten)
            last = rows[-1].pk


def reindex_all(batch: int = BATCH, left_apart: list[list[str]] | None = None) -> Counter:
    """Recompute every blind index from the decrypted values with the current BLIND_INDEX_KEY, and re-encrypt the
    timeline's free-text entries (inside JSON, out of reach of `reencrypt_all`'s column pass). Callers one number
    made twice that could not be merged are added to `left_apart` (their open cases' references)."""
    left_apart = [] if left_apart is None else left_apart

    def by_phone(row: StaffProfile) -> None:
        row.phone_index = phone_index(row.phone)

    def case(row: Case) -> None:
        row.contact_phone_index = phone_index(row.contact_phone)
        row.contact_email_index = email_index(row.contact_email)

    def message(row: Message) -> None:
        row.search_tokens = search_tokens(row.body)

    def event(row: TimelineEvent) -> None:
        pass  # read decrypted, written back encrypted under the newest key

    return Counter({
        "events": _reindex(
            TimelineEvent.objects.filter(details__has_any_keys=list(ENCRYPTED_DETAILS)).only("details"), ["details"],
            event, batch,
        ),
        "staff": _reindex(
            StaffProfile.objects.only("phone", "phone_index"), ["phone_index"], by_phone, batch
        ),
        "callers": _reindex_callers(batch, left_apart),
        "cases": _reindex(
            Case.objects.only("contact_phone", "contact_email", "contact_phone_index", "contact_email_index"),
            ["contact_phone_index", "contact_email_index"], case, batch,
        ),
        "messages": _reindex(Message.objects.only("body", "search_tokens"), ["search_tokens"], message, batch),
        "register": _reindex(
            VulnerablePerson.objects.only("phone", "full_name", "phone_index", "entry_index", "name_tokens"),
            ["phone_index", "entry_index", "name_tokens"], VulnerablePerson.refresh_indexes, batch,
        ),
        "welfare_checks": _reindex(
            WelfareCheck.objects.only("phone", "phone_index"), ["phone_index"], WelfareCheck.refresh_indexes, batch
        ),
    })  # fmt: skip
