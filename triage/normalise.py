"""Text normalisation for triage: one spelling for every way people write the same word.

"Убити", "ubiti", "UBIT ĆE" and "ubit ce" all become the same tokens, so a rule written once in plain Latin
without diacritics matches Latin and Cyrillic, with or without diacritics, in any case.
"""
from __future__ import annotations

import re
import unicodedata

from helpline.cases.language import cyrillic_to_latin

_FOLD = str.maketrans({"č": "c", "ć": "c", "š": "s", "ž": "z", "đ": "dj"})
_WORD = re.compile(r"[a-z0-9]+")
# "ubit ću", "ubit ce", "ubiću" all say "will kill": the future clitic is dropped, not the meaning.
_FUTURE_CLITICS = frozenset({"cu", "ces", "ce", "cemo", "cete"})


def fold(text: str) -> str:
    """Lower case, Cyrillic to Latin, Bosnian diacritics folded (č ć → c, đ → dj, š → s, ž → z), other accents
    removed."""
    # "can't" and "don't" are one word each, as the rules write them ("cant", "dont").
    text = cyrillic_to_latin(text.lower()).translate(_FOLD).replace("'", "").replace("\u2019", "")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """The words of a message, folded, without the future clitic."""
    return [word for word in _WORD.findall(fold(text)) if word not in _FUTURE_CLITICS]
