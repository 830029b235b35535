"""Staff search over what citizens and staff wrote: by word and word beginning, in any case, script or spelling.

"nozem", "NOŽEM" and "ножем" find "nožem"; "otac" finds "отац". The query is folded in Python with the same `fold`
triage uses; the stored text is folded by PostgreSQL at query time (`FoldedText`, generated from `fold` itself, so
the two cannot drift), so nothing on the intake path changes.

When message bodies are encrypted at the field (issue 17, the part left for later) PostgreSQL can no longer read
them, and this module is the one place to change: intake then stores, per case, a keyed hash (HMAC with a key from
the environment) of every prefix of 3 or more letters of every folded word (a blind index table of
`(case_id, token)` rows, indexed); `message_text_matches` becomes "the case has a row whose token is the HMAC of each
folded query word". Callers (the staff API's filter and the console search) keep calling `cases_matching`.
"""
from __future__ import annotations

import re

from django.db.models import Func, Q, TextField

from helpline.cases.language import fold
from helpline.cases.models import Message

_WORD = re.compile(r"[a-z0-9]+")

# Every letter a citizen may type here: Latin with the Bosnian and common European accents, Serbian Cyrillic, in
# both cases, and the apostrophes fold drops.
_ALPHABET = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZČĆŠŽĐÁÀÂÄÃÅÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÝÑÇ"
    "abcdefghijklmnopqrstuvwxyzčćšžđáàâäãåéèêëíìîïóòôöõúùûüýÿñç"
    "АБВГДЂЕЖЗИЈКЛЉМНЊОПРСТЋУФХЦЧЏШабвгдђежзијклљмнњопрстћуфхцчџш'\u2019"
)


def _sql_fold_tables() -> tuple[list[tuple[str, str]], str, str]:
    """fold, character by character, as PostgreSQL replace() calls (one letter to two) and one translate()."""
    replacements, source, target, dropped = [], [], [], []
    for ch in _ALPHABET:
        folded = fold(ch)
        if len(folded) == 2:
            replacements.append((ch, folded))
        elif not folded:
            dropped.append(ch)
        elif folded != ch:
            source.append(ch)
            target.append(folded)
    # translate() deletes the characters of its source that have no counterpart in its target.
    return replacements, "".join(source + dropped), "".join(target)


_REPLACEMENTS, _TRANSLATE_FROM, _TRANSLATE_TO = _sql_fold_tables()


class FoldedText(Func):
    """The SQL twin of `fold` for the letters in `_ALPHABET`, independent of the database's collation."""

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra_context):  # SQLite (make run's default): lower case only
        return super().as_sql(compiler, connection, function="LOWER", **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        for letter, folded in _REPLACEMENTS:
            sql = f"REPLACE({sql}, %s, %s)"
            params = [*params, letter, folded]
        return f"TRANSLATE({sql}, %s, %s)", [*params, _TRANSLATE_FROM, _TRANSLATE_TO]


def query_words(query: str) -> list[str]:
    """The folded words of a search, in order, each once."""
    return list(dict.fromkeys(_WORD.findall(fold(query))))


def message_text_matches(word: str) -> Q:
    """Cases with a message holding a word that starts with `word` (already folded)."""
    pattern = rf"(^|[^a-z0-9]){re.escape(word)}"
    matching = Message.objects.annotate(folded=FoldedText("body")).filter(folded__regex=pattern)
    return Q(pk__in=matching.values("case_id"))


def cases_matching(query: str) -> Q:
    """A filter on Case: the reference contains the query, or the case's messages hold every word of it (each as a
    word or the start of one)."""
    query = query.strip()
    words = query_words(query)
    by_text = Q()
    for word in words:
        by_text &= message_text_matches(word)
    by_reference = Q(reference__icontains=query)
    return by_reference | by_text if words else by_reference
