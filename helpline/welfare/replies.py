"""Reading a person's answer to a welfare question: "1", "ok", "dobro", "сигуран сам" mean safe; "2", "pomoć",
"треба помоћ" or anything else written mean a person should look at it; a bare "da" is asked again."""
from __future__ import annotations

import enum
import itertools
import re
import unicodedata

from helpline.cases.language import cyrillic_to_latin


class Reading(enum.StrEnum):
    SAFE = "safe"
    HELP = "help"  # answered 2, or asked for help in words
    FREE_TEXT = "free_text"  # wrote something else: a person reads it, as a case
    # "Da" or "Yes" and nothing that says safe: the answer to the supervisor's question, which may have been
    # "Do you need help?" as well as "Are you safe?". The person is asked to answer 1 or 2.
    UNCLEAR = "unclear"


# Words that, alone or together, say "I am safe" (after folding: no diacritics, Cyrillic read as Latin).
_SAFE_WORDS = frozenset({
    "1", "da", "ok", "okej", "okay", "oke", "dobro", "dobar", "dobra", "sam", "smo", "siguran", "sigurna", "sigurni",
    "sigurno", "u", "redu", "sve", "je", "hvala", "yes", "safe", "fine", "i", "am", "im", "we", "are", "ja", "mi",
})  # fmt: skip
# A "safe" answer says so with one of these: "sam" and "sve je" alone do not ("Sam sam" is "I am alone").
_SAYS_SAFE = frozenset({
    "1", "da", "ok", "okej", "okay", "oke", "dobro", "dobar", "dobra", "siguran", "sigurna", "sigurni", "sigurno",
    "redu", "yes", "safe", "fine", "hvala",
})  # fmt: skip
# Yes-words answer the question, whatever it was; "hvala" (thanks) alone declines help as politely as it says safe.
_ANSWER_THE_QUESTION = frozenset({"da", "yes"})
_HELP_WORDS = frozenset({
    "2", "pomoc", "pomozite", "help", "treba", "trebam", "trebamo", "hitno", "sos", "ne", "no", "nisam", "nismo",
})  # fmt: skip


# After "I am safe", what asks for help again unmistakably: "2" first, or a word that only means help. Not "ne",
# "no" or "treba" alone: "Hvala, ne treba ništa" (thanks, we need nothing) is an ordinary message.
_UNMISTAKABLE_HELP_WORDS = frozenset({"pomoc", "pomozite", "help", "hitno", "sos"})


def asks_for_help_again(body: str) -> bool:
    """A message from someone who answered "safe" that asks the campaign for help after all."""
    words = fold(body).split()
    return bool(words) and (words[0] == "2" or bool(set(words) & _UNMISTAKABLE_HELP_WORDS))


def fold(text: str) -> str:
    """Lower case, Latin, no diacritics (č, ć -> c; đ -> dj), words separated by single spaces."""
    latin = cyrillic_to_latin(text).lower().replace("đ", "dj")
    plain = unicodedata.normalize("NFKD", latin).encode("ascii", "ignore").decode()
    return " ".join(re.findall(r"[a-z0-9]+", plain))


def read_reply(body: str) -> Reading:
    words = fold(body).split()
    if not words:
        return Reading.FREE_TEXT
    alone = ("sam", "sam") in itertools.pairwise(words)  # "(Ja) sam sam": I am alone
    if set(words) <= _SAFE_WORDS and set(words) & _SAYS_SAFE and not set(words) & _HELP_WORDS and not alone:
        if set(words) & _ANSWER_THE_QUESTION and not set(words) & (_SAYS_SAFE - _ANSWER_THE_QUESTION - {"hvala"}):
            return Reading.UNCLEAR  # "Da", "Da, hvala": yes to a question we cannot read
        return Reading.SAFE
    if set(words) & _HELP_WORDS:
        return Reading.HELP
    return Reading.FREE_TEXT


def read_key_press(digits: str) -> Reading | None:
    return {"1": Reading.SAFE, "2": Reading.HELP}.get((digits or "").strip()[:1])
