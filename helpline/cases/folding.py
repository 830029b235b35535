"""`fold` (helpline.cases.language) as a database expression: the same lower case, Cyrillic to Latin and folded
diacritics, computed by PostgreSQL.

Kept for migration 0010, which built staff search on a folded clear copy of each message (`Message.search_text`).
Message texts are encrypted since migration 0011 and search reads keyed word hashes instead
(helpline.cases.search); nothing else uses this expression."""
from __future__ import annotations

from django.db.models import Func, TextField

from helpline.cases.language import fold

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
