"""Text normalisation for triage: one spelling for every way people write the same word.

"Убити", "ubiti", "UBIT ĆE" and "ubit ce" all become the same tokens, so a rule written once in plain Latin
without diacritics matches Latin and Cyrillic, with or without diacritics, in any case.
"""
from __future__ import annotations

import re

# fold lives in the case domain, below triage, so that staff search (helpline.cases.search) folds words exactly as
# the rules do; it is re-exported here for the rules and their tests.
from helpline.cases.language import fold

__all__ = ["fold", "tokens"]

_WORD = re.compile(r"[a-z0-9]+")
# "ubit ću", "ubit ce", "ubiću" all say "will kill": the future clitic is dropped, not the meaning.
_FUTURE_CLITICS = frozenset({"cu", "ces", "ce", "cemo", "cete"})


def tokens(text: str) -> list[str]:
    """The words of a message, folded, without the future clitic."""
    return [word for word in _WORD.findall(fold(text)) if word not in _FUTURE_CLITICS]
