"""How the keyword rules and the semantic model together decide a message's priority and category.

One plain function, used both by the worker's triage (triage.services.classify) and by the cross-author evaluation
(training.cross_author_evaluation), so the figures printed are the figures of what runs.
"""
from __future__ import annotations

from typing import Protocol

PRIORITY_RANK = {"": 0, "low": 1, "normal": 2, "high": 3, "critical": 4}
IN_ONE_LINE = (
    "the higher priority of the two (so critical when either says so, unless the model rules a critical rule out: "
    "then high); at least high when the model comes near its critical threshold; the model's category"
)
# Where the model's critical probability is "near critical": from this share of its critical threshold up to the
# threshold. Two rules use it:
# - a critical rule counts only from this share up. Below it the model has all but ruled danger out (a frightening
#   word in the news, a joke, the past), and the rule's "critical" becomes "high": read soon by a person, without
#   jumping the queue ahead of real danger. See `combine`.
# - a message the model places near critical is at least high, whatever it finds likeliest otherwise
#   (model.choose_priority): the threshold keeps 0.97 of the critical messages of authors the head never saw, and
#   most of those it misses still come close. On the twenty-eight development authors (each scored by heads that
#   never saw them, rules and model combined), the critical messages left at normal or low fell from 24 to 9 of
#   2,575; the calm messages marked high rose from 0.308 to 0.361, and the priorities within one level of the
#   author's fell from 0.884 to 0.871 (a low message made high is two levels off). From three quarters of the
#   threshold: 15, 0.323 and 0.880. A critical message at normal waits behind every high one: that is the error
#   this trades for.
NEAR_CRITICAL_SHARE = 0.5


class Verdict(Protocol):
    priority: str
    category: str


def is_near_critical(critical_probability: float, critical_threshold: float) -> bool:
    """Under the critical threshold, but at least NEAR_CRITICAL_SHARE of it."""
    return NEAR_CRITICAL_SHARE * critical_threshold <= critical_probability < critical_threshold


# From this many characters a text is "long" (a web form's life story, a follow-up after a long history): there the
# model also reads the sentences a critical rule matched on their own (triage.services.parts_to_read), and its
# reading of the whole may not rule the rule out when those sentences alone read as critical. A calm paragraph
# around "Večeras je rekao da će me ubiti i da ima nož" read 0.01 as a whole.
#
# Why only then, and why only to keep a rule: across the thirty-six development authors (each scored by a head that
# never saw them, the shipped threshold), letting the sentences' reading decide the rule-out for every message,
# and raise the priority by itself, caught 3 more of 3,177 critical messages and marked 264 more of 6,071 calm ones
# critical (mean per author 0.075 to 0.119: the jokes, news and past events around a frightening word are context
# the sentence alone lacks). Used only from 300 characters on and only to keep a rule when the sentences alone
# read critical, it caught as many and marked 8 more calm messages critical (0.076).
LONG_TEXT = 300


def rule_ruled_out(
    rules_priority: str,
    critical_probability: float | None,
    critical_threshold: float | None,
    *,
    rules_words_probability: float | None = None,
) -> bool:
    """A critical rule the model rules out: its critical probability for the whole text is under NEAR_CRITICAL_SHARE
    of its threshold, and its reading of the sentences the rule matched (`rules_words_probability`, read in long
    texts only) does not reach the threshold itself."""
    return (
        rules_priority == "critical"
        and critical_probability is not None
        and critical_threshold is not None
        and critical_probability < NEAR_CRITICAL_SHARE * critical_threshold
        and not (rules_words_probability is not None and rules_words_probability >= critical_threshold)
    )


def combine(
    model_priority: str,
    model_category: str,
    rules: Verdict,
    *,
    critical_probability: float | None = None,
    critical_threshold: float | None = None,
    rules_words_probability: float | None = None,
) -> tuple[str, str]:
    """The priority and category of a message, from the model's and the rules' verdicts.

    Priority: the higher of the two. So a message is critical when the model says so, or when a critical rule
    matched and the model does not rule it out; below that neither lowers what the other saw.

    Why a critical rule can be ruled out: across ten authors (each scored by heads that never saw them, at a
    threshold of 0.10), a critical rule's match where the model's critical probability was under its threshold was
    a calm (low or normal) message 196 times, a high one 108 times and a critical one 6 times; those 6 all had a
    probability of at least 0.6 of the threshold. With the cross-author procedure (`evaluate_triage
    --cross-author`), keeping a critical rule only from half the threshold up took the share of calm messages
    marked critical from 0.238 to 0.162 (worst author 0.347 to 0.252), with critical recall 0.973 against 0.972
    (worst author 0.939 both). The half was chosen on those development authors; the unseen sets measure it. A
    rule so ruled out still makes the message high, so a person reads it soon. Without the model's probability
    (the rules alone) a rule counts in full. Measured the same way before (six authors), the alternative "critical
    when either says so, otherwise the model's priority" rated fewer calm messages high or critical (0.30 against
    0.42) but gave fewer high and critical messages at least high (0.952 against 0.964): the higher of the two
    stays.

    Category: the model's, whatever the rules matched. Rules name a category from a few words; the model reads the
    whole message. Measured the same way: the model's category always, 0.721 (worst author 0.698); the rules'
    category when a critical rule matched, 0.670 (0.638); when a high or critical rule matched, 0.630; when any
    rule matched, 0.509; the rules' only when the model was unsure of its category (top probability under 0.4, 0.5
    or 0.6), 0.717 to 0.702. No way of letting a rule "match strongly" beat the model's category on authors the
    rules were not written for. The rules still name the category when the model is unavailable.
    """
    rules_priority = rules.priority
    if rule_ruled_out(
        rules_priority, critical_probability, critical_threshold, rules_words_probability=rules_words_probability
    ):
        rules_priority = "high"  # the model is then below its threshold too: not critical by either
    elif kept_by_its_own_words(rules_priority, critical_probability, critical_threshold, rules_words_probability):
        # The critical rule decided, against the model's reading of the whole: its category too (the whole's is
        # the calm story around the danger: "material need" for a knife threat at the end of a letter).
        return "critical", rules.category
    priority = max(model_priority, rules_priority, key=lambda label: PRIORITY_RANK.get(label, 0))
    return priority, model_category


def kept_by_its_own_words(
    rules_priority: str,
    critical_probability: float | None,
    critical_threshold: float | None,
    rules_words_probability: float | None,
) -> bool:
    """A critical rule the model's reading of the whole text would rule out, kept because the sentences it matched
    read as critical on their own (a long text only: LONG_TEXT)."""
    return rules_words_probability is not None and (
        rule_ruled_out(rules_priority, critical_probability, critical_threshold)
        and not rule_ruled_out(
            rules_priority, critical_probability, critical_threshold, rules_words_probability=rules_words_probability
        )
    )
