"""Staff search over what citizens and staff wrote: by word and word beginning, in any case, script or spelling.

"nozem", "NOŽEM" and "ножем" find "nožem"; "otac" finds "отац". Message texts are encrypted, so the database
cannot read them; each message keeps `search_tokens` instead, keyed hashes of its folded words and of each word's
beginnings (helpline.cases.encryption.search_tokens, with the same `fold` triage uses). A query is folded the same
way and each of its words becomes one token to find. Callers (the staff API's filter and the console search) call
`cases_matching`.
"""
from __future__ import annotations

import re

from django.db.models import Q

from helpline.cases.citizen_code import normalise_reference
from helpline.cases.encryption import query_tokens
from helpline.cases.language import fold
from helpline.cases.models import GivenReference, Message

_WORD = re.compile(r"[a-z0-9]+")


def query_words(query: str) -> list[str]:
    """The folded words of a search, in order, each once."""
    return list(dict.fromkeys(_WORD.findall(fold(query))))


def message_text_matches(word: str) -> Q:
    """Cases with a message holding a word that starts with `word` (already folded; a word shorter than 3 letters
    only as a whole word)."""
    (token,) = query_tokens([word])
    return Q(pk__in=Message.objects.filter(search_tokens__contains=f" {token} ").values("case_id"))


def cases_matching(query: str) -> Q:
    """A filter on Case: the reference contains the query, or the case's messages hold every word of it (each as a
    word or the start of one)."""
    query = query.strip()
    words = query_words(query)
    by_text = Q()
    for word in words:
        by_text &= message_text_matches(word)
    # A reference typed in full however the citizen wrote it down ("sos 2026 42", "СОС-2026-00042"), or given
    # during an outage, finds its case too (a subquery: no duplicate rows).
    reference = normalise_reference(query)
    given = GivenReference.objects.filter(reference=reference).values("case_id")
    by_reference = Q(reference__icontains=query) | Q(reference=reference) | Q(pk__in=given)
    return by_reference | by_text if words else by_reference
