"""The triage engine: which rules a message matches, and the priority, category and reasons that follow.

Pure functions over text and rule data; the rules themselves live in the database (TriageRule). Missing a
critical message is far worse than over-rating a normal one, so the highest priority matched always wins and a
typo of one letter in a longer word still matches.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from helpline.cases.language import detect_language, detect_script
from helpline.cases.models import PRIORITY_RANK
from triage.normalise import fold, folded_tokens, tokens, without_future_clitics

# Words after which a phrase is denied ("ne želim se ubiti", "nije me udario", "I don't want to die").
NEGATIONS = frozenset(
    "ne nije nisam nisi nismo niste nisu nece necu neces nemoj nikad nikada not never dont doesnt didnt isnt wasnt "
    "no nor".split()
)
# "ne mogu više" is despair, not a denial of what follows.
NOT_NEGATING_AFTER = frozenset("mogu moze mozemo znam smijem smem".split())
MAX_GAP = 2  # words allowed between the words of one phrase
MIN_TYPO_LENGTH = 6  # shorter words are too close to each other ("bills", "pills") to forgive a slip
NEGATION_REACH = 5  # how many words before a phrase a negation still applies ("ne želim više da se ubijem")
# The only words that may stand between a negation and the phrase it denies: clitics, auxiliaries, modals and their
# like ("ne želim se ubiti", "nisam ga udarila", "I'm not going to kill myself"). Any other word is a verb or noun of
# its own that the negation belongs to: "ne zovi policiju ubit će me" and "dont let him kill me" deny nothing.
NEGATION_BRIDGES = frozenset(
    "se si me mi te ti ga mu ju je joj nas nam vas vam ih im sam smo ste su bi bih bismo biste da li vise bas "
    "nikome nikoga nista "
    "zelim zelis zeli zelimo zelite zele hocu hoces hoce hocemo hocete hoce htio htjela htjeo htela htjeli "
    "namjeravam nameravam planiram mislim smijem smem mogu moze "
    "want wanna to going gonna will would plan planning intend mean trying try really ever even actually i "
    "am is are was were be been do did have".split()
)
_CLAUSE_BREAK = re.compile(r"[.!?;,\n]+|\s-\s|\bali\b|\bbut\b")


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]  # word beginnings; "=word" must match whole
    # What a message must hold for the phrase to be worth searching (see _Message.present and `_may_be_in`): `needs`,
    # a beginning for each of its words that forgives no slip (three letters, or the word when shorter); a first
    # word long enough to forgive a slip has `slip_keys` and `slip_tail` instead, what a word within one slip of it
    # must show. `key`, the rarest-looking of the beginnings it needs, is what the rule's quick filter
    # (CompiledRule.opening_bits) asks of it.
    needs: tuple[str, ...] = field(init=False, compare=False)
    key: str = field(init=False, compare=False)
    slip_keys: tuple[str, str] | None = field(init=False, compare=False)
    slip_tail: str | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        first = self.words[0] if self.words else ""
        whole = first[1:] if first.startswith("=") else first
        forgives_a_slip = not first.startswith("=") and len(first) >= MIN_TYPO_LENGTH
        object.__setattr__(self, "slip_tail", first[3:] if forgives_a_slip else None)
        object.__setattr__(self, "slip_keys", (first[:3], first[:2] + first[3]) if forgives_a_slip else None)
        # A later word is compared with word_matches, which forgives a slip in a long word anywhere, and takes a
        # one-letter pattern as a beginning: only the others need their beginning in the message.
        later = [word.lstrip("=")[:3] for word in self.words[1:] if _forgives_no_slip(word) and len(word) > 1]
        needs = later if forgives_a_slip else [whole[:3], *later]
        object.__setattr__(self, "needs", tuple(needs))
        object.__setattr__(self, "key", max(needs, key=len) if needs else whole[:2])

    @classmethod
    def parse(cls, line: str) -> Phrase:
        words = (fold(word) if not word.startswith("=") else "=" + fold(word[1:]) for word in line.split())
        return cls(tuple(without_future_clitics(words)))


def _forgives_no_slip(pattern: str) -> bool:
    return pattern.startswith("=") or len(pattern) < MIN_TYPO_LENGTH


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
    # The same filter as bits, finer where a phrase's key is (three letters for a word that forgives no slip), to
    # pass over the alternatives a message cannot match without testing each part: every part of every alternative
    # is one bit; `opening_bits` gives, for a beginning, the bits of the parts it may begin, and `alternative_bits`
    # each alternative's parts.
    opening_bits: dict[str, int] = field(default_factory=dict, hash=False, compare=False)
    alternative_bits: tuple[int, ...] = ()


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
    # The reasons again, each as a kind and its parameters, for the console to say in the reader's language
    # (helpline.casework.reasons); `reasons` stays English, for the API and the log.
    explained: list[dict] = field(default_factory=list)


def compile_rule(*, name: str, category: str, priority: str, terms: str, can_be_negated: bool = True) -> CompiledRule:
    lines = [line for line in terms.splitlines() if line.strip()]
    same_clause = tuple("&" in line for line in lines)
    alternatives = tuple(
        tuple(
            tuple(phrase for option in part.split("|") if (phrase := Phrase.parse(option)).words)
            for part in re.split(r"[+&]", line)
            if part.strip()
        )
        for line in lines
    )
    openings = tuple(
        tuple(frozenset(phrase.words[0].lstrip("=")[:2] for phrase in part) for part in alternative)
        for alternative in alternatives
    )
    opening_bits: dict[str, int] = {}
    alternative_bits = []
    bit = 1
    for alternative in alternatives:
        bits = 0
        for part in alternative:
            for phrase in part:
                # The finer key where there is one: fewer alternatives pass than by two letters alone.
                opening_bits[phrase.key] = opening_bits.get(phrase.key, 0) | bit
            bits, bit = bits | bit, bit << 1
        alternative_bits.append(bits)
    return CompiledRule(
        name, category, priority, alternatives, can_be_negated, same_clause, openings, opening_bits,
        tuple(alternative_bits),
    )  # fmt: skip


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
        return token == pattern[1:] or pattern[1:] in _with_single_letters(token)
    if token.startswith(pattern):
        return True
    for spelling in _with_single_letters(token):  # a loop, not any(): this runs for every word the rules compare
        if spelling.startswith(pattern):
            return True
    # People type fast in a crisis: one slip in a longer word still counts ("tabelte", "ubitii", "samoubsitvo").
    if len(pattern) >= MIN_TYPO_LENGTH and len(token) >= len(pattern) - 1:
        return _is_slip_of(pattern, token)
    return False


@lru_cache(maxsize=100_000)
def _with_single_letters(token: str) -> tuple[str, ...]:
    """The token's other spellings with one or more of its double letters single: a letter held down ("nooz" from
    "noooož") reads as one, and a real double ("kiill" for "kill") as two. Our languages do not double letters, so
    only a held letter or an English word has one. A double in the first two letters is kept: the engine looks
    words up by those two letters. At most three doubles are tried one by one; beyond, all of them are single."""
    doubles = [i for i in range(2, len(token)) if token[i] == token[i - 1]]
    if not doubles:
        return ()
    if len(doubles) > 3:
        return ("".join(ch for i, ch in enumerate(token) if i not in doubles),)
    spellings = []
    for keep in itertools.product((True, False), repeat=len(doubles)):
        dropped = {i for i, kept in zip(doubles, keep, strict=True) if not kept}
        if dropped:
            spellings.append("".join(ch for i, ch in enumerate(token) if i not in dropped))
    return tuple(spellings)


@lru_cache(maxsize=100_000)
def _is_slip_of(pattern: str, token: str) -> bool:
    # Cached: the same words meet the same patterns message after message, and this is the engine's costliest step.
    return any(_within_one_edit(pattern, token[:n]) for n in (len(pattern) - 1, len(pattern), len(pattern) + 1))


def _is_negated(words: list[str], start: int) -> bool:
    """Whether a negation denies the phrase at `start`: one stands before it with nothing but NEGATION_BRIDGES
    between them, and it is not despair ("ne mogu više ubit ću se")."""
    for i in range(start - 1, max(-1, start - 1 - NEGATION_REACH), -1):
        if words[i] in NEGATIONS:
            following = words[i + 1] if i + 1 < len(words) else ""
            if following not in NOT_NEGATING_AFTER:
                return True
        if words[i] not in NEGATION_BRIDGES:
            return False  # a word of its own: the negation before it belongs to that word, not to the phrase
    return False


def _rest_of_phrase(rest: tuple[str, ...], words: list[str], start: int) -> list[str] | None:
    """The phrase's words from `start` on, each within MAX_GAP words of the one before (None: the phrase stops)."""
    matched, position = [words[start]], start
    for pattern in rest:
        window = range(position + 1, min(len(words), position + 2 + MAX_GAP))
        position = next((i for i in window if word_matches(pattern, words[i])), -1)
        if position < 0:
            return None
        matched.append(words[position])
    return matched


def clauses(text: str) -> list[list[str]]:
    """The message cut at punctuation and 'but', so that a negation in one clause never reaches the next."""
    return [words for part in _CLAUSE_BREAK.split(fold(text)) if (words := folded_tokens(part))]


_WHOLE_MESSAGE = -1  # a scope: every clause, rather than the clause at that index
_NOT_SEARCHED = object()


class _Message:
    """One message as the rules read it: its clauses' words, and where each word beginning (two letters) stands.
    A message meets a few hundred phrases; each is looked up by its first word's beginning instead of being
    compared with every word, and searched once whatever the number of alternatives it comes back in."""

    def __init__(self, text: str) -> None:
        self.parts = clauses(text)
        self.at: dict[str, list[tuple[int, int]]] = {}  # two letters -> (clause, position) of each word, in order
        for clause, words in enumerate(self.parts):
            for position, word in enumerate(words):
                self.at.setdefault(word[:2], []).append((clause, position))
        # Every two-letter beginning, and every three-letter one: a word's own, and the one it has when a letter
        # held down in it is read once ("nooož": "noz"; see _with_single_letters, which keeps the first two).
        self.present = set(self.at)
        for words in self.parts:
            for word in words:
                if len(word) > 2:
                    self.present.add(word[:3])
                    if word[2] == word[1]:
                        third = next((letter for letter in word[3:] if letter != word[1]), "")
                        self.present.add(word[:2] + third)
        self.joined = " ".join(word for words in self.parts for word in words)
        self._starts: dict[str, list[tuple[int, int]]] = {}
        self._found: dict[tuple[tuple[str, ...], int, bool], list[str] | None] = {}
        # By the part's id: the rules outlive the message, so an id is not reused while the message is read.
        self._candidates: dict[int, list[Phrase]] = {}

    def find(self, phrase: Phrase, scope: int, can_be_negated: bool) -> list[str] | None:
        """The words of the phrase's first occurrence in the scope that is not denied. In each clause only the
        phrase's first occurrence counts: denied there, the next clause is tried."""
        key = (phrase.words, scope, can_be_negated)
        found = self._found.get(key, _NOT_SEARCHED)
        if found is _NOT_SEARCHED:
            first = phrase.words[0]
            starts = self._starts.get(first)
            if starts is None:
                starts = self._starts[first] = self._look_up(first)
            found = self._found[key] = self._first_occurrence(phrase, starts, scope, can_be_negated) if starts else None
        return found

    def candidates(self, options: tuple[Phrase, ...]) -> list[Phrase]:
        """The phrases of a part that some word of the message may begin, in their order: worked out once per part,
        however many clauses an "a & b" pattern is tried in."""
        kept = self._candidates.get(id(options))
        if kept is None:
            present, joined = self.present, self.joined
            kept = self._candidates[id(options)] = [phrase for phrase in options if _may_be_in(phrase, present, joined)]
        return kept

    def _look_up(self, pattern: str) -> list[tuple[int, int]]:
        whole = pattern[1:] if pattern.startswith("=") else pattern
        # Looked up by its first two letters: a slip there is not forgiven (that is the price of not comparing every
        # word); a word that begins them and is within one slip of a long pattern is. A one-letter first word ("u
        # krvi") is that word itself.
        return [(c, i) for c, i in self.at.get(whole[:2], ()) if word_matches(pattern, self.parts[c][i])]

    def _first_occurrence(
        self, phrase: Phrase, starts: list[tuple[int, int]], scope: int, can_be_negated: bool
    ) -> list[str] | None:
        deniable = can_be_negated and phrase.words[0].lstrip("=") not in NEGATIONS
        decided = -1  # the clause whose first occurrence has been seen
        for clause, start in starts:
            if clause == decided or (scope != _WHOLE_MESSAGE and clause != scope):
                continue
            words = self.parts[clause]
            matched = _rest_of_phrase(phrase.words[1:], words, start)
            if matched is None:
                continue
            decided = clause
            if deniable and _is_negated(words, start):
                continue
            return matched
        return None


def reads_as_critical(text: str, critical_rules: Iterable[CompiledRule]) -> bool:
    """Whether any of the given (critical) rules matches: the request path's cheap question, answered at the
    first match, without the language, category and reasons that the worker's full classification adds."""
    return bool(find_matches(text, critical_rules, first_only=True))


def find_matches(text: str, rules: Iterable[CompiledRule], *, first_only: bool = False) -> list[Match]:
    message = _Message(text)
    present = message.present
    matches = []
    for rule in rules:
        # The parts some word of the message may begin: an alternative is tried only when all its parts are there.
        possible = 0
        for opening in present & rule.opening_bits.keys():
            possible |= rule.opening_bits[opening]
        for alternative, bits, same_clause in zip(rule.alternatives, rule.alternative_bits, rule.same_clause,
                                                  strict=True):  # fmt: skip
            if bits & possible != bits:
                continue
            # "a & b" must hold within one clause; "a + b" anywhere in the message.
            scopes = range(len(message.parts)) if same_clause else (_WHOLE_MESSAGE,)
            negatable = rule.can_be_negated
            found = next(
                (found for scope in scopes if all(found := _find_parts(alternative, message, scope, negatable))), None
            )
            if found:
                matches.append(Match(rule, tuple(word for words in found for word in words), len(alternative)))
                if first_only:
                    return matches
                break
    return matches


def _find_parts(
    alternative: tuple[tuple[Phrase, ...], ...], message: _Message, scope: int, can_be_negated: bool
) -> list[list[str] | None]:
    """For each part of a combined pattern, the words of the first of its phrases found (None: not found)."""
    found: list[list[str] | None] = []
    for options in alternative:
        words = None
        for phrase in message.candidates(options):
            words = message.find(phrase, scope, can_be_negated)
            if words:
                break
        found.append(words)
        if words is None:
            break  # one part missing is enough to fail; the rest need not be searched
    return found


def _may_be_in(phrase: Phrase, present: set[str], joined: str) -> bool:
    """False when the message cannot hold the phrase, so it need not be searched: a beginning it needs is missing, or
    no word can be within one slip of its long first word. Such a word keeps its first three letters (the slip comes
    later), or reads as its first two and fourth (the third left out, or swapped with the fourth), or holds its rest
    from the fourth letter on (the slip in the third letter)."""
    for needed in phrase.needs:
        if needed not in present:
            return False
    if phrase.slip_keys is not None:
        with_three, without_third = phrase.slip_keys
        return with_three in present or without_third in present or phrase.slip_tail in joined  # type: ignore[operator]
    return True


def classify_text(text: str, rules: Iterable[CompiledRule], channel: str | None = None) -> Classification:
    """Priority: the highest any matched rule gives. Category: that of the highest-priority rules, the category
    with most such matches first. Nothing matched: normal, other, for a person to read."""
    language, script = detect_language(text), detect_script(text)
    matches = find_matches(text, rules)
    if not matches:
        return Classification(
            "normal", "other", language, script, ["no rule matched: a person must read it"], [], [{"kind": "no_rule"}]
        )
    top = max(PRIORITY_RANK[m.rule.priority] for m in matches)
    scores: dict[str, float] = {}
    for match in matches:
        weight = PRIORITY_RANK[match.rule.priority] ** 2 * match.parts
        scores[match.rule.category] = scores.get(match.rule.category, 0) + weight
    category = _choose_category(matches, top, scores)
    ordered = sorted(matches, key=lambda m: -PRIORITY_RANK[m.rule.priority])
    reasons = [f"{m.rule.name} ({m.rule.priority}): '{' '.join(m.words)}'" for m in ordered]
    explained = [
        {"kind": "rule", "rule": m.rule.name, "priority": m.rule.priority, "words": " ".join(m.words)} for m in ordered
    ]
    priority = str(next(p for p, rank in PRIORITY_RANK.items() if rank == top))
    return Classification(priority, category, language, script, reasons, [m.rule.name for m in ordered], explained)


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


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def sentences_matched(text: str, rules: Iterable[CompiledRule]) -> str:
    """The sentences of `text` in which the given rules match, in their order ('' when none matches the text): what
    the semantic model reads to judge a critical rule's match, instead of the calm paragraph around it. A pattern
    whose parts ("a + b") stand in two sentences brings the sentences that hold its words."""
    rules = list(rules)
    matches = find_matches(text, rules)
    if not matches:
        return ""
    sentences = [sentence.strip() for sentence in _SENTENCE_END.split(text) if sentence.strip()]
    kept = [sentence for sentence in sentences if find_matches(sentence, rules, first_only=True)]
    if not kept:
        matched_words = {word for match in matches for word in match.words}
        kept = [sentence for sentence in sentences if matched_words & set(tokens(sentence))]
    return " ".join(kept)
