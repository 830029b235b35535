"""The two things a web citizen keeps to read their case: the case reference and the secret code.

Both are read aloud, written on paper and typed on a cheap phone, so both are normalised here, in one place,
before they are compared: case and separators never matter, and letters people mix up (O and 0, I and L and 1,
a Cyrillic letter and the Latin one it looks like) count as the same. The code is 12 characters of Crockford's
base32 in three groups (K7QM-4TXD-9RWP): 60 random bits, far beyond what an attacker could guess online at the
status page's throttled rate (60 tries a minute per address would need about 10^10 years on average for one case).
"""
from __future__ import annotations

import re
import secrets

# Crockford's base32: digits and letters without I, L, O and U (no 1/I/L, 0/O confusion, no accidental words).
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
CODE_GROUP = 4
# A Serbian phone's Cyrillic keyboard types these for the Latin letters they look like (and С for the S of "SOS").
_CYRILLIC_LOOKALIKES = str.maketrans("АВЕКМНОРСТХЈ", "ABEKMHOPCTXJ")
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-_.·/]+")
_REFERENCE = re.compile(r"^[SC]O[SC]-?(\d{4})-?([0-9A-Z]+)$")  # C: "СОС" typed in Cyrillic


def new_code() -> str:
    return format_code("".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)))


def code_from_bytes(digest: bytes) -> str:
    """A code taken from the first 60 bits of a digest (a code derived, not drawn)."""
    number = int.from_bytes(digest[:8], "big") >> 4
    chars = []
    for _ in range(CODE_LENGTH):
        number, index = divmod(number, 32)
        chars.append(CODE_ALPHABET[index])
    return format_code("".join(reversed(chars)))


def format_code(code: str) -> str:
    """K7QM4TXD9RWP as K7QM-4TXD-9RWP: groups of four are easier to read aloud and to copy."""
    plain = normalise_code(code)
    return "-".join(plain[i : i + CODE_GROUP] for i in range(0, len(plain), CODE_GROUP))


def normalise_code(typed: str) -> str:
    """What the citizen typed, as the code is stored: upper case, no spaces or dashes, look-alikes folded."""
    return _SEPARATORS.sub("", typed or "").upper().translate(_CYRILLIC_LOOKALIKES).translate(_LOOKALIKES)


def normalise_reference(typed: str) -> str:
    """"sos 2026 42", "SOS-2026-00042" and "sos2026-00042" are all SOS-2026-00042; a spool reference
    (SOS-2026-S7KX3M) keeps its letters; "СОС-2026-00042", typed in Cyrillic, is SOS-2026-00042 too. Anything else
    is returned upper-cased (Cyrillic look-alikes in Latin), to match nothing."""
    compact = _SEPARATORS.sub("-", (typed or "").strip().upper().translate(_CYRILLIC_LOOKALIKES)).strip("-")
    match = _REFERENCE.match(compact.replace("-", "")) or _REFERENCE.match(compact)
    if match is None:
        return compact
    year, number = match.groups()
    if number[0] in "SC":  # a spool reference's S, typed as the Cyrillic С
        return f"SOS-{year}-S{number[1:]}"
    digits = number.translate(_DIGIT_LOOKALIKES)  # "SOS-2026-OOO42", typed with the letter O
    if not digits.isdigit():
        return compact  # "SOS-2026-ABC": matches nothing (int() of it was a 500, and a spooled follow-up for ever)
    return f"SOS-{year}-{int(digits):05d}"
