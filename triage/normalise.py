"""Text normalisation for triage: one spelling for every way people write the same word.

"Убити", "ubiti", "UBIT ĆE" and "ubit ce" all become the same tokens, so a rule written once in plain Latin
without diacritics matches Latin and Cyrillic, with or without diacritics, in any case.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

# fold lives in the case domain, below triage, so that staff search (helpline.cases.search) folds words exactly as
# the rules do; it is re-exported here for the rules and their tests.
from helpline.cases.language import fold

__all__ = ["fold", "folded_tokens", "tokens", "without_future_clitics"]

_WORD = re.compile(r"[a-z0-9]+")
# "ubit ću", "ubit ce", "ubiću" all say "will kill": the future clitic is dropped, not the meaning.
_FUTURE_CLITICS = frozenset({"cu", "ces", "ce", "cemo", "cete"})


def without_future_clitics(words: Iterable[str]) -> list[str]:
    """The words without the future clitic. Messages and rule terms both go through it: a term that kept "ce"
    ("sve ce bit gotovo", a supervisor's "ubit ce me") would wait for a word no message ever has."""
    return [word for word in words if word.lstrip("=") not in _FUTURE_CLITICS]


# A letter held down ("noooož", "tuuuče", "kiiiill"): three or more of one letter are two (one at a word's start,
# where no word doubles a letter), and the rules read a double letter as either ("nooz" is "noz", "kiill" "kill").
_HELD_AT_START = re.compile(r"\b([a-z])\1{2,}")
_HELD = re.compile(r"([a-z])\1{2,}")


def tokens(text: str) -> list[str]:
    """The words of a message, folded, without the future clitic, a letter held down written twice at most."""
    return folded_tokens(fold(text))


def folded_tokens(folded: str) -> list[str]:
    """tokens() of a text already folded: the rules cut a folded message into clauses, and folding each clause
    again cost the request path's quick check a sixth of its time."""
    if _HELD.search(folded):  # rare: most messages hold no letter down, and the two substitutions are then skipped
        folded = _HELD.sub(r"\1\1", _HELD_AT_START.sub(r"\1", folded))
    return without_future_clitics(_WORD.findall(folded))
