"""Personal data encrypted at the field, and found again without being stored in clear.

- Encrypted fields: django-fernet-encrypted-fields does the field plumbing (encrypt on the way in, decrypt on the
  way out, MultiFernet so several keys decrypt). Its keys are derived from SECRET_KEY; ours come straight from
  `FIELD_ENCRYPTION_KEYS`, so rotating Django's signing key can never make citizens' data unreadable, and no
  process pays 100,000 PBKDF2 rounds per field at start. An empty value stays empty (not NULL): emptiness is not
  personal data, and `exclude(field="")` keeps working.
- Blind indexes: a keyed hash (HMAC-SHA256 with `BLIND_INDEX_KEY`) of a normalised value, stored beside the
  ciphertext and indexed: "is this number a known caller?" is an equality lookup on the hash. Without the key the
  hash says nothing; with it, only an exact guess can be confirmed.
- Search tokens: the same keyed hash of every folded word of a message and of each word's beginnings (3 letters
  or more), so staff search finds "nožem" from "nozem" or "ножем" and "отац" from "otac" without the words being
  stored anywhere in clear (helpline.cases.search).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import FieldError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Lookup
from django.db.models.lookups import Exact
from encrypted_fields.fields import EncryptedFieldMixin
from phonenumber_field.modelfields import PhoneNumberField

from helpline.cases.language import fold

# Every stored ciphertext begins with Fernet's version byte, base64 "gAAAAA": how a migration or a check tells an
# encrypted value from one written before encryption.
FERNET_PREFIX = "gAAAAA"


@functools.lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def current_fernet() -> MultiFernet:
    """The keys as settings name them now (tests and `rotate_keys` change them while a process runs)."""
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


class _KeysFromSettings(EncryptedFieldMixin):
    @property
    def f(self) -> MultiFernet:  # the library's name for its Fernet
        return current_fernet()

    def get_prep_value(self, value: Any) -> Any:
        # The library turns an empty value into NULL; ours stay "" (see the module's note). Skip its version and
        # encrypt what the plain field would store.
        value = super(EncryptedFieldMixin, self).get_prep_value(value)
        if value is None or value == "":
            return value
        return self.f.encrypt(str(value).encode()).decode()

    def get_lookup(self, lookup_name: str) -> type[Lookup] | None:
        # A stored ciphertext never equals an encryption of the same value (Fernet is randomised), so a filter on
        # the field would silently match nothing: refuse it, and point to the blind index.
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        if lookup_name == "exact":
            return _EmptyOnlyExact
        raise FieldError(
            f"{self.model.__name__}.{self.name} is encrypted: it cannot be searched with '{lookup_name}'. "
            "Look it up by its blind index (helpline.cases.encryption)."
        )


class _EmptyOnlyExact(Exact):
    """`field=""` (is the field empty?) works on an encrypted field, since empty values are stored as they are."""

    def get_db_prep_lookup(self, value: Any, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
        if value != "":
            raise FieldError(
                f"{self.lhs.target.model.__name__}.{self.lhs.target.name} is encrypted: compare it by its blind "
                "index, not by value."
            )
        return "%s", [""]


class EncryptedCharField(_KeysFromSettings, models.CharField):
    """A CharField stored encrypted (as text: the ciphertext is longer than max_length, which forms still check)."""


class EncryptedTextField(_KeysFromSettings, models.TextField):
    pass


class EncryptedEmailField(_KeysFromSettings, models.EmailField):
    pass


class EncryptedURLField(_KeysFromSettings, models.URLField):
    pass


class EncryptedPhoneNumberField(_KeysFromSettings, PhoneNumberField):
    """A phone number (E.164, parsed as PhoneNumberField parses it) stored encrypted. Look it up by its blind index."""


class EncryptedDetailsField(models.JSONField):
    """A JSON object whose free-text entries (a staff note, a reason, triage's quoted words) are stored encrypted,
    while its other entries (ids, steps, channels) stay queryable: `details__assignee_id=...` keeps working."""

    def __init__(self, *args: Any, encrypted_keys: Iterable[str] = (), **kwargs: Any) -> None:
        self.encrypted_keys = tuple(sorted(encrypted_keys))
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, list, dict]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["encrypted_keys"] = self.encrypted_keys
        return name, path, args, kwargs

    def get_transform(self, name: str) -> Any:
        if name in self.encrypted_keys:  # an encrypted entry never equals a value: refuse, never match nothing
            raise FieldError(f"{self.model.__name__}.{self.name}[{name!r}] is encrypted: it cannot be filtered on.")
        return super().get_transform(name)

    def _each_text(self, value: Any, change: Callable[[str], str]) -> Any:
        if not isinstance(value, dict):
            return value
        changed = dict(value)
        for key in self.encrypted_keys:
            entry = changed.get(key)
            if isinstance(entry, str) and entry:
                changed[key] = change(entry)
            elif isinstance(entry, list):
                changed[key] = [self._each_item(item, change) for item in entry]
        return changed

    @staticmethod
    def _each_item(item: Any, change: Callable[[str], str]) -> Any:
        """A list's text, or its object (triage's explained reasons quote the citizen's words) sealed whole as one
        token, {"sealed": ...}: one token an object, not one a word."""
        if isinstance(item, str) and item:
            return change(item)
        if isinstance(item, dict) and change is _encrypt_once and set(item) != {"sealed"}:
            return {"sealed": _encrypt_once(json.dumps(item, ensure_ascii=False))}
        if isinstance(item, dict) and change is _decrypt_if_encrypted and set(item) == {"sealed"}:
            opened = _decrypt_if_encrypted(str(item["sealed"]))
            return item if opened.startswith(FERNET_PREFIX) else json.loads(opened)  # a lost key: left sealed
        return item

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(self._each_text(value, _encrypt_once))

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        return self._each_text(super().from_db_value(value, expression, connection), _decrypt_if_encrypted)


def _encrypt_once(text: str) -> str:
    return text if text.startswith(FERNET_PREFIX) else current_fernet().encrypt(text.encode()).decode()


def _decrypt_if_encrypted(text: str) -> str:
    if not text.startswith(FERNET_PREFIX):
        return text  # written before encryption; `manage.py rotate_keys` encrypts it
    try:
        return current_fernet().decrypt(text.encode()).decode()
    except InvalidToken:
        return text


ENCRYPTED_FIELD_TYPES = (_KeysFromSettings,)


def with_index_fields(update_fields: Iterable[str] | None, index_of: dict[str, str]) -> list[str] | None:
    """For a model's save(): a partial save that writes an encrypted field writes its blind index too."""
    if update_fields is None:
        return None
    fields = list(update_fields)
    return fields + [index for field, index in index_of.items() if field in fields and index not in fields]


def blind_index(purpose: str, value: str) -> str:
    """The keyed hash of a normalised value, for equality lookups; "" for an empty value. `purpose` keeps a phone's
    hash from ever equalling a word's."""
    if not value:
        return ""
    keyed = _keyed_for(settings.BLIND_INDEX_KEY, purpose).copy()
    keyed.update(value.encode())
    return keyed.hexdigest()[:32]


@functools.lru_cache(maxsize=8)
def _keyed_for(key: str, purpose: str) -> hmac.HMAC:
    """The HMAC with the key and the purpose fed in, never updated itself: each value hashes a copy. Setting the
    key up was most of a short value's cost, and a message has about twenty word beginnings (`search_tokens`)."""
    return hmac.new(key.encode(), f"{purpose}\x00".encode(), hashlib.sha256)


def phone_index(phone: object) -> str:
    """The blind index of a phone number as stored: its E.164 form."""
    return blind_index("phone", str(phone or ""))


def email_index(email: str) -> str:
    return blind_index("email", (email or "").strip().lower())


# --- Search tokens ------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
SHORTEST_PREFIX = 3
LONGEST_PREFIX = 20  # a longer query word is matched on its first 20 letters


def _token(text: str) -> str:
    # 12 hex characters (48 bits): a false match between two different words is about one in 10^14 per pair.
    return blind_index("word", text)[:12]


def search_tokens(text: str) -> str:
    """The tokens staff search looks for in a message: every folded word, and each of its beginnings of 3 to 20
    letters; space separated with a space at each end, so a token is found as " token "."""
    tokens: dict[str, None] = {}
    for word in dict.fromkeys(_WORD.findall(fold(text or ""))):
        tokens[_token(word[:LONGEST_PREFIX])] = None
        for length in range(SHORTEST_PREFIX, min(len(word), LONGEST_PREFIX)):
            tokens[_token(word[:length])] = None
    return f" {' '.join(tokens)} " if tokens else ""


def query_tokens(words: Iterable[str]) -> list[str]:
    """The token to look for per folded query word: a word beginning (3 letters or more) or a whole short word."""
    return [_token(word[:LONGEST_PREFIX]) for word in words]
