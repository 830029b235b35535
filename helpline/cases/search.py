"""Staff search over what citizens and staff wrote: by word and word beginning, in any case, script or spelling.

"nozem", "NOŽEM" and "ножем" find "nožem"; "otac" finds "отац". The query is folded in Python with the same `fold`
triage uses; each message's text is folded by PostgreSQL when the row is written, into the generated column
`Message.search_text` (`FoldedText`, built from `fold` itself, so the two cannot drift): no intake code changes and
no query is added, and a search reads the folded words instead of folding every message again (2.5 s on 20,000
messages when folded at query time; about 40 ms stored).

When message bodies are encrypted at the field (issue 17, the part left for later) PostgreSQL can no longer read
them and `search_text` (a second clear copy) is dropped; this module is the one place to change: intake then
stores, per case, a keyed hash (HMAC with a key from the environment) of every prefix of 3 or more letters of every
folded word (a blind index table of `(case_id, token)` rows, indexed); `message_text_matches` becomes "the case has
a row whose token is the HMAC of each folded query word". Callers (the staff API's filter and the console search)
keep calling `cases_matching`.
"""
from __future__ import annotations

import re

from django.db.models import Q

from helpline.cases.language import fold
from helpline.cases.models import Message

_WORD = re.compile(r"[a-z0-9]+")


def query_words(query: str) -> list[str]:
    """The folded words of a search, in order, each once."""
    return list(dict.fromkeys(_WORD.findall(fold(query))))


def message_text_matches(word: str) -> Q:
    """Cases with a message holding a word that starts with `word` (already folded)."""
    pattern = rf"(^|[^a-z0-9]){re.escape(word)}"
    return Q(pk__in=Message.objects.filter(search_text__regex=pattern).values("case_id"))


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
