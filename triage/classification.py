"""The triage engine: which rules a message matches, and the priority, category and reasons that follow.

Pure functions over text and rule data; the rules themselves live in the database (TriageRule). Missing a
critical message is far worse than over-rating a normal one, so the highest priority matched always wins and a
typo of one letter in a longer word still matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from helpline.cases.language import detect_language, detect_script
from helpline.cases.models import PRIORITY_RANK
from triage.normalise import fold, tokens

# Words after which a phrase is denied ("ne želim se ubiti", "nije me udario", "I don't want to die").
NEGATIONS = frozenset(
    "ne nije nisam nisi nismo niste nisu nece necu neces nemoj nikad nikada not never dont doesnt didnt isnt wasnt "
    "no nor".split()
)
# "ne mogu više" is despair, not a denial of what follows.
NOT_NEGATING_AFTER = frozenset("mogu moze mozemo znam smijem smem".split())
MAX_GAP = 2  # words allowed between the words of one phrase
MIN_TYPO_LENGTH = 6  # shorter words are too close to each other ("bills", "pills") to forgive a slip
NEGATION_REACH = 3  # how many words before a phrase a negation still applies ("ne želim se ubiti")
_CLAUSE_BREAK = re.compile(r"[.!?;,\n]+|\s-\s|\bali\b|\bbut\b")


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]  # word beginnings; "=word" must match whole

    @classmethod
    def parse(cls, line: str) -> Phrase:
        return cls(tuple(fold(word) if not word.startswith("=") else "=" + fold(word[1:]) for word in line.split()))


@dataclass(frozen=True)
class CompiledRule:
    name: str
    category: str
    priority: str
    # Each alternative is one line of the rule's terms: parts that must all occur ("beba + pijan"); each part is
    # one or more phrases, any of which will do ("beba|dijete + pijan|drogiran").
    alternatives: tuple[tuple[tuple[Phrase, ...], ...], ...]
    can_be_negated: bool = True
    # For each alternative: must its parts stand in one clause ("tuče & sada")? Written with "&" instead of "+".
    same_clause: tuple[bool, ...] = ()
    # For each alternative, each part's possible first two letters: an alternative whose part cannot start in the
    # message is skipped without matching (a slip in a word's first two letters is not forgiven; that is the price).
    openings: tuple[tuple[frozenset[str], ...], ...] = ()


@dataclass(frozen=True)
class Match:
    rule: CompiledRule
    words: tuple[str, ...]  # the citizen's words that matched, folded
    parts: int = 1  # how many parts of a combined pattern ("beba + pijan") matched: more specific, more weight


@dataclass
class Classification:
    priority: str
    category: str
    language: str
    script: str
    reasons: list[str] = field(default_factory=list)
    matched_rules: list[str] = field(default_factory=list)


def compile_rule(*, name: str, category: str, priority: str, terms: str, can_be_negated: bool = True) -> CompiledRule:
    lines = [line for line in terms.splitlines() if line.strip()]
    same_clause = tuple("&" in line for line in lines)
    alternatives = tuple(
        tuple(
            tuple(Phrase.parse(option) for option in part.split("|") if option.strip())
            for part in re.split(r"[+&]", line)
            if part.strip()
        )
        for line in lines
    )
    openings = tuple(
        tuple(frozenset(phrase.words[0].lstrip("=")[:2] for phrase in part) for part in alternative)
        for alternative in alternatives
    )
    return CompiledRule(name, category, priority, alternatives, can_be_negated, same_clause, openings)


def _within_one_edit(a: str, b: str) -> bool:
    """True when a and b differ by at most one insertion, deletion, substitution or swap of neighbours."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    return shorter[i:] == longer[i + 1 :]


def word_matches(pattern: str, token: str) -> bool:
    if pattern.startswith("="):
        return token == pattern[1:]
    if token.startswith(pattern):
        return True
    # People type fast in a crisis: one slip in a longer word still counts ("tabelte", "ubitii", "samoubsitvo").
    if len(pattern) >= MIN_TYPO_LENGTH and len(token) >= len(pattern) - 1:
        return _is_slip_of(pattern, token)
    return False


@lru_cache(maxsize=100_000)
def _is_slip_of(pattern: str, token: str) -> bool:
    # Cached: the same words meet the same patterns message after message, and this is the engine's costliest step.
    return any(_within_one_edit(pattern, token[:n]) for n in (len(pattern) - 1, len(pattern), len(pattern) + 1))


def _is_negated(words: list[str], start: int) -> bool:
    for i in range(max(0, start - NEGATION_REACH), start):
        if words[i] in NEGATIONS:
            following = words[i + 1] if i + 1 < len(words) else ""
            if following not in NOT_NEGATING_AFTER:
                return True
    return False


def _find_phrase(phrase: Phrase, words: list[str]) -> tuple[int, list[str]] | None:
    first, rest = phrase.words[0], phrase.words[1:]
    for start, token in enumerate(words):
        if not word_matches(first, token):
            continue
        matched, position = [token], start
        for pattern in rest:
            window = range(position + 1, min(len(words), position + 2 + MAX_GAP))
            position = next((i for i in window if word_matches(pattern, words[i])), -1)
            if position < 0:
                break
            matched.append(words[position])
        else:
            return start, matched
    return None


def clauses(text: str) -> list[list[str]]:
    """The message cut at punctuation and 'but', so that a negation in one clause never reaches the next."""
    return [words for part in _CLAUSE_BREAK.split(fold(text)) if (words := tokens(part))]


def _find_in_message(phrase: Phrase, parts: list[list[str]], can_be_negated: bool) -> list[str] | None:
    for words in parts:
        hit = _find_phrase(phrase, words)
        if hit is None:
            continue
        start, matched = hit
        if can_be_negated and phrase.words[0].lstrip("=") not in NEGATIONS and _is_negated(words, start):
            continue
        return matched
    return None


def reads_as_critical(text: str, critical_rules: Iterable[CompiledRule]) -> bool:
    """Whether any of the given (critical) rules matches: the request path's cheap question, answered at the
    first match, without the language, category and reasons that the worker's full classification adds."""
    return bool(find_matches(text, critical_rules, first_only=True))


def find_matches(text: str, rules: Iterable[CompiledRule], *, first_only: bool = False) -> list[Match]:
    parts = clauses(text)
    present = {word[:2] for words in parts for word in words}
    matches = []
    for rule in rules:
        for alternative, openings, same_clause in zip(rule.alternatives, rule.openings, rule.same_clause, strict=True):
            if not all(present & options for options in openings):
                continue
            # "a & b" must hold within one clause; "a + b" anywhere in the message.
            scopes = [[clause] for clause in parts] if same_clause else [parts]
            found = next(
                (found for scope in scopes if all(found := _find_parts(alternative, scope, rule.can_be_negated))),
                None,
            )
            if found:
                matches.append(Match(rule, tuple(word for words in found for word in words), len(alternative)))
                if first_only:
                    return matches
                break
    return matches


def _find_parts(
    alternative: tuple[tuple[Phrase, ...], ...], parts: list[list[str]], can_be_negated: bool
) -> list[list[str] | None]:
    """For each part of a combined pattern, the words of the first of its phrases found (None: not found)."""
    found: list[list[str] | None] = []
    for options in alternative:
        words = next((words for phrase in options if (words := _find_in_message(phrase, parts, can_be_negated))), None)
        found.append(words)
        if words is None:
            break  # one part missing is enough to fail; the rest need not be searched
    return found


def classify_text(text: str, rules: Iterable[CompiledRule], channel: str | None = None) -> Classification:
    """Priority: the highest any matched rule gives. Category: that of the highest-priority rules, the category
    with most such matches first. Nothing matched: normal, other, for a person to read."""
    language, script = detect_language(text), detect_script(text)
    matches = find_matches(text, rules)
    if not matches:
        return Classification("normal", "other", language, script, ["no rule matched: a person must read it"], [])
    top = max(PRIORITY_RANK[m.rule.priority] for m in matches)
    scores: dict[str, float] = {}
    for match in matches:
        weight = PRIORITY_RANK[match.rule.priority] ** 2 * match.parts
        scores[match.rule.category] = scores.get(match.rule.category, 0) + weight
    category = _choose_category(matches, top, scores)
    ordered = sorted(matches, key=lambda m: -PRIORITY_RANK[m.rule.priority])
    reasons = [f"{m.rule.name} ({m.rule.priority}): '{' '.join(m.words)}'" for m in ordered]
    priority = str(next(p for p, rank in PRIORITY_RANK.items() if rank == top))
    return Classification(priority, category, language, script, reasons, [m.rule.name for m in ordered])


def _choose_category(matches: list[Match], top: int, scores: dict[str, float]) -> str:
    """The category of the highest-priority matches (most weight first). 'other' is only a fallback; a
    question about a procedure with no danger in it is an information request."""
    categories = {m.rule.category for m in matches}
    if "information" in categories and top <= PRIORITY_RANK["normal"]:
        return "information"
    leading = [m for m in matches if PRIORITY_RANK[m.rule.priority] == top and m.rule.category != "other"]
    if not leading:
        leading = [m for m in matches if m.rule.category != "other"] or matches
    return max(leading, key=lambda m: (scores[m.rule.category], -_category_order(m.rule.category))).rule.category


# When two categories tie, the one a worker must see first wins.
_CATEGORY_ORDER = [
    "suicide_self_harm", "child_protection", "domestic_violence", "elderly_disability", "mental_health",
    "addiction", "information", "material_need", "other",
]  # fmt: skip


def _category_order(category: str) -> int:
    return _CATEGORY_ORDER.index(category) if category in _CATEGORY_ORDER else len(_CATEGORY_ORDER)
