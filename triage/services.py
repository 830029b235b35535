"""Triage: classify a case's messages and record why; the request path's quick danger check; the shipped rules.

Two steps. The first triage (`triage_case`) is the rules', about a millisecond, so a case is assigned and its
worker told without waiting for anything slower; only a message a critical rule matched is read by the model at
once, because the model may rule that rule out, and nobody should be called for a danger it would take back.
The semantic model then takes a second look at the rest in a process of its own (`second_look`): it can raise
the priority and name a better category, never lower what people were already called for. The model reads the
whole text, and on their own the messages since it last read the case and the sentences a critical rule matched
(`parts_to_read`): a calm paragraph around a danger neither hides it nor rules the rule out. Both are safe to run
twice or in two workers at once: the case row is locked, and a case whose messages were already read is left as
it is. Who gets the case is triage.assignment.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction

from helpline.cases import services as case_services
from helpline.cases.dispatch import CRITICAL_QUEUE, TRIAGE_QUEUE
from helpline.cases.models import PRIORITY_RANK, Case, Channel, Direction, EventKind, Priority
from triage import selectors
from triage.classification import (
    Classification,
    CompiledRule,
    classify_text,
    reads_as_critical,
    sentences_matched,
)
from triage.models import TriageCorrection, TriageRule
from triage.semantic.combination import LONG_TEXT, combine, kept_by_its_own_words, rule_ruled_out
from triage.semantic_model import critical_by_words, is_turned_off, report_rules_only, semantic_model

if TYPE_CHECKING:
    from triage.semantic.model import Prediction

logger = logging.getLogger(__name__)

REPEAT_CONTACT_WINDOW = dt.timedelta(hours=24)  # said in helpline.cases.services.EARLIER_CONTACT_REASON
# A contact raised by the same person's earlier one keeps its own category only when it names one of these.
DANGER_CATEGORIES = frozenset({"domestic_violence", "child_protection", "suicide_self_harm"})


RULES_ONLY_REASON = "rules only (model unavailable)"
TURNED_OFF_REASON = "rules only (semantic triage turned off)"


def classify_by_rules(
    text: str, channel: str | None = None, *, rules: list[CompiledRule] | None = None
) -> Classification:
    """Priority, category, language, script and readable reasons for one message, by the active rules alone
    (`rules`, when a caller classifying many messages has read them once)."""
    result = classify_text(text, selectors.active_rules() if rules is None else rules, channel=channel)
    if channel == Channel.VOICE and not text.strip() and PRIORITY_RANK[result.priority] < PRIORITY_RANK["high"]:
        # A call with nothing written down yet: someone reached out by phone, and a person must call back soon.
        result.priority = Priority.HIGH
        result.reasons = ["a call with no written message yet: call back"]
        result.explained = [{"kind": "call_without_words"}]
    return result


def classify(text: str, channel: str | None = None) -> Classification:
    """One message's verdict by the rules and the semantic model together (triage.semantic.combination): what the
    model's second look stores, and what `evaluate_triage` measures.

    Never on the request path: the model takes tens of milliseconds a message. Without the model (it could not be
    loaded, or it failed on this message) the rules decide alone, and the reasons say so.
    """
    rules = selectors.active_rules()
    return with_the_model(classify_by_rules(text, channel, rules=rules), text, rules=rules)


# The parts of a case's text the model reads on their own, besides everything the citizen wrote: a calm history
# before a follow-up is enough for the model's reading of the whole to miss the danger ("popila sam sve tablete"
# after an alimony question read 0.01), and a calm paragraph around a danger sentence in a long text enough for it to
# "rule out" a critical rule (see combination.LONG_TEXT for why only in long texts).
NEW_MESSAGES = "the new messages"
RULES_WORDS = "the sentences a critical rule matched"
_PART_KINDS = {NEW_MESSAGES: "new_messages", RULES_WORDS: "rules_words"}  # as the console's reasons name them


def parts_to_read(
    text: str, new_text: str, by_rules: Classification, rules: list[CompiledRule]
) -> dict[str, str]:
    """What the model reads of a case besides its whole text: the messages since its last reading (`new_text`), and
    in a long text the sentences a critical rule matched, each only when it is not the whole text. So at most three
    readings a triage, read in one batch (predict_many)."""
    parts = {}
    if new_text.strip() and new_text.strip() != text.strip():
        parts[NEW_MESSAGES] = new_text
    if by_rules.priority == Priority.CRITICAL and len(text.strip()) >= LONG_TEXT:
        matched = sentences_matched(text, [rule for rule in rules if rule.priority == Priority.CRITICAL])
        if matched.strip() and matched.strip() != text.strip():
            parts[RULES_WORDS] = matched
    return parts


def with_the_model(
    result: Classification, text: str, *, new_text: str = "", rules: list[CompiledRule] | None = None
) -> Classification:
    """The rules' classification of `text` with the model's verdict combined in (or, without the model, the rules'
    alone, saying so). The model also reads `new_text` (the messages since the case was last read) and the sentences
    a critical rule matched on their own (`parts_to_read`)."""
    if not text.strip():
        return result  # nothing written for the model to read (a call, an empty SMS): the rules' answer stands
    parts = parts_to_read(text, new_text, result, selectors.active_rules() if rules is None else rules)
    return with_predictions(result, text, parts, _read_by_the_model([text, *parts.values()]))


def with_predictions(
    rules: Classification, text: str, parts: dict[str, str], predictions: dict[str, Prediction | None]
) -> Classification:
    """The rules' classification with the model's readings of `text` and its `parts` (`predictions`, by text)
    combined in or, without a reading of the whole text (the model could not be loaded, or failed), the rules'
    alone, saying so."""
    prediction = predictions.get(text)
    if prediction is None:
        turned_off = is_turned_off()
        return replace(
            rules,
            reasons=[*rules.reasons, TURNED_OFF_REASON if turned_off else RULES_ONLY_REASON],
            explained=[*rules.explained, {"kind": "rules_only", "turned_off": turned_off}],
        )
    return combined_classification(rules, prediction, parts={part: predictions.get(t) for part, t in parts.items()})


def combined_classification(
    rules: Classification, prediction: Prediction, *, parts: dict[str, Prediction | None] | None = None
) -> Classification:
    """The rules' classification with the model's verdict combined in, and both explained: the rules that matched,
    then the model's probability and the labelled training examples the message resembles (never other cases).

    `prediction` is the model's reading of the whole text; `parts` its readings of parts of it read on their own
    (`parts_to_read`). The model's priority is the highest of its readings of the whole and of the new messages,
    with that reading's category (the whole text's on a tie). A critical rule is ruled out by the model's reading of
    the whole text, unless its reading of the sentences the rule matched (long texts only) is critical on its own
    (`combination.rule_ruled_out`)."""
    parts = dict(parts or {})
    readings = [("", prediction), *((part, read) for part, read in parts.items() if read is not None)]
    # The matched sentences never raise the priority by themselves: read without their context (a joke, the news,
    # the past), they are often more frightening than the message (combination.LONG_TEXT).
    raising = [(label, read) for label, read in readings if label != RULES_WORDS]
    label, top = max(raising, key=lambda reading: PRIORITY_RANK[reading[1].priority])  # the first on a tie
    probability, threshold = prediction.critical_probability, prediction.critical_threshold
    rules_words = parts.get(RULES_WORDS)
    words_probability = rules_words.critical_probability if rules_words is not None else None
    priority, category = combine(
        top.priority, top.category, rules, critical_probability=probability, critical_threshold=threshold,
        rules_words_probability=words_probability,
    )  # fmt: skip
    model_rank, rules_rank = PRIORITY_RANK[top.priority], PRIORITY_RANK[rules.priority]
    model = f"the model reading {label}" if label else "the model"
    # Where the priority and the category came from, for the console: "model" (with `read`, the part it read),
    # "rules", "both", "ruled_out" (a critical rule the model took back), "kept_by_its_words", "rule".
    decision: dict = {"kind": "decision", "priority": priority, "category": category, "read": _PART_KINDS.get(label)}
    if rule_ruled_out(rules.priority, probability, threshold, rules_words_probability=words_probability):
        priority_from = (
            f"a critical rule matched, but the model ruled it out (critical {probability:.2f}, under half its "
            f"threshold {threshold:.2f}): high, not critical"
        )
        decision.update(priority_from="ruled_out", category_from="model")
    elif kept_by_its_own_words(rules.priority, probability, threshold, words_probability):
        model = "the critical rule"  # its category too: see combine
        priority_from = (
            f"a critical rule matched; the model read the whole text as calm (critical {probability:.2f}), but "
            f"{RULES_WORDS} on their own as critical ({words_probability:.2f}): the rule stands"
        )
        decision.update(priority_from="kept_by_its_words", category_from="rule", read="")
    else:
        priority_from = model if model_rank > rules_rank else "the rules" if rules_rank > model_rank else "both"
        decision.update(
            priority_from="model" if model_rank > rules_rank else "rules" if rules_rank > model_rank else "both",
            category_from="model",
        )
    decision.update(critical_probability=round(probability, 3), critical_threshold=round(threshold, 3))
    if words_probability is not None:
        decision["words_probability"] = round(words_probability, 3)
    decided = f"combined: {priority} (from {priority_from}), {category} (from {model})"
    # A part read as the same text as another (the new message is the sentence the rule matched) is named once.
    named: dict[int, list[str]] = {}
    for part, read in parts.items():
        if read is not None and read is not prediction:
            named.setdefault(id(read), []).append(part)
    by_id = {id(read): read for read in parts.values() if read is not None}
    part_reasons = [f"{' and '.join(names)}: {by_id[key].reason}" for key, names in named.items()]
    reasons = [*rules.reasons, prediction.reason, *part_reasons, decided]
    part_explained = [
        {**by_id[key].explained, "parts": [_PART_KINDS[name] for name in names]} for key, names in named.items()
    ]
    explained = [*rules.explained, prediction.explained, *part_explained, decision]
    return replace(rules, priority=priority, category=category, reasons=reasons, explained=explained)


def queue_for_text(text: str) -> str:
    """The Celery queue for a new message: critical-sounding messages never wait behind a surge."""
    try:
        return CRITICAL_QUEUE if text and reads_as_critical(text, selectors.critical_rules()) else TRIAGE_QUEUE
    except Exception:  # intake must never fail on triage; the worker classifies again anyway
        logger.exception("quick classification failed; using the triage queue")
        return TRIAGE_QUEUE


def _inbound_text(case: Case) -> tuple[str, int | None]:
    return selectors.inbound_texts([case.pk]).get(case.pk, ("", None))


def _last_triaged_message_id(case: Case) -> int | None:
    event = case.timeline.filter(kind=EventKind.TRIAGED).order_by("-id").first()
    return event.details.get("up_to_message_id") if event else None


@dataclass(frozen=True)
class TriageRun:
    """The locked case; whether this run read a follow-up (a message that came after an earlier triage); whether a
    critical rule matched the case's messages, so that the model read them at once; whether one matched what this
    run read anew (a follow-up's own words: an earlier message's rule must not make "thank you" urgent); the
    priority the case had before; and when the first message this run read anew was stored."""

    case: Case
    read_follow_up: bool = False
    critical_by_rules: bool = False
    reads_critical: bool = False
    priority_before: str = ""
    first_read_anew_at: dt.datetime | None = None


@transaction.atomic(savepoint=False)  # nothing here is caught and carried on from: no savepoint of its own
def triage_case(case_id: int, *, rules: list[CompiledRule] | None = None) -> TriageRun | None:
    """The first triage, by the rules (about a millisecond), so that assignment never waits for the model:
    classify the case's messages and link the caller's recent cases, under the case's row lock, and mark a case
    with words for the model's second look (`second_look`). A message a critical rule matched is the exception:
    the model reads it now, since it may rule the rule out (`with_the_model`). Messages already triaged are not
    classified again. Assignment is the caller's next step. `rules`: the active rules, when the caller read them."""
    # The caller comes in the same read: the repeat-contact check below needs its number.
    case = Case.objects.select_related("caller").for_change(of=("self",)).filter(pk=case_id).first()
    if case is None:
        logger.warning("triage for a case that does not exist (id %s)", case_id)
        return None
    text, last_message_id = _inbound_text(case)
    read_follow_up = case.triaged_at is not None
    read_up_to = _last_triaged_message_id(case) if read_follow_up else None
    if read_follow_up and last_message_id == read_up_to:
        return TriageRun(case, priority_before=case.priority)
    priority_before = case.priority
    # What came since the last triage, which the model also reads on its own if it reads the case now.
    written_anew, first_at = selectors.written_after(case.pk, read_up_to) if read_follow_up else ("", None)
    rules = selectors.active_rules() if rules is None else rules
    earlier = selectors.recent_cases_of_same_callers([case], window=REPEAT_CONTACT_WINDOW).get(case.pk, [])
    critical_by_rules = _triage_locked(case, text, last_message_id, rules, earlier, written_anew)
    if not read_follow_up:
        return TriageRun(case, False, critical_by_rules, critical_by_rules, priority_before)
    reads_critical = _reads_as_critical(written_anew, classify_by_rules(written_anew, case.channel, rules=rules))
    return TriageRun(case, True, critical_by_rules, reads_critical, priority_before, first_at)


_NOT_READ_YET = object()  # no batch read the message beforehand: the model reads it now, if it must


@dataclass
class _Verdict:
    """A case's triage worked out, before anything is written: the classification (raised to the highest priority
    of the same person's recent cases), and what the model's second look will need."""

    result: Classification
    read_by_model: bool
    awaiting_model: bool
    critical_by_words: float
    raised_by: str


def _triage_locked(
    case: Case,
    text: str,
    last_message_id: int | None,
    rules: list[CompiledRule],
    earlier: list[Case],
    new_text: str = "",
) -> bool:
    """Classify a case read under its row lock (its inbound messages joined in `text`, those since its last triage
    in `new_text`), link the same person's recent cases (`earlier`), and record the verdict. True when a critical
    rule matched: the model then read the message at once (a batch reads its cases beforehand and calls `_verdict`
    with their predictions)."""
    verdict = _verdict(case, text, rules, earlier, new_text=new_text)
    _record_verdict(case, verdict, last_message_id, earlier)
    return verdict.read_by_model


def _verdict(
    case: Case,
    text: str,
    rules: list[CompiledRule],
    earlier: list[Case],
    predictions: dict[str, Prediction | None] | object = _NOT_READ_YET,
    by_rules: Classification | None = None,
    new_text: str = "",
) -> _Verdict:
    """Work out a case's triage without writing anything, so that a batch can leave out a case whose words reveal
    a defect here with nothing to undo. `by_rules`: the rules' classification of `text`, when a batch read it;
    `predictions`: the model's readings by text, when a batch read them (`parts_to_read`)."""
    result = classify_by_rules(text, case.channel, rules=rules) if by_rules is None else by_rules
    # A critical rule is the one verdict the model can take back (it rules out "noz" in the news, a joke, the
    # past): it is asked now, before anyone is called, rather than calling someone for what it would lower
    # later. Few messages (about one in ten) and the critical worker's: the rest never wait for the model.
    read_by_model = result.priority == Priority.CRITICAL and bool(text.strip())
    if read_by_model:
        result = (
            with_the_model(result, text, new_text=new_text, rules=rules)
            if predictions is _NOT_READ_YET
            else with_predictions(  # read in a batch beforehand
                result, text, parts_to_read(text, new_text, result, rules), predictions  # type: ignore[arg-type]
            )
        )
    awaiting_model = bool(text.strip()) and not read_by_model and not is_turned_off()
    raised_by = ""
    if earlier:
        highest = max(earlier, key=lambda other: PRIORITY_RANK.get(other.priority, 0))
        if PRIORITY_RANK.get(highest.priority, 0) > PRIORITY_RANK[result.priority]:
            result.priority, raised_by = highest.priority, highest.reference
            # The danger is the earlier contact's: "critical, information" tells the worker nothing. Its category
            # comes along, unless these words name a danger of their own.
            if result.category not in DANGER_CATEGORIES and highest.category:
                result.category = highest.category
    return _Verdict(
        result, read_by_model, awaiting_model, critical_by_words(text) if awaiting_model else 0.0, raised_by
    )


def _record_verdict(case: Case, verdict: _Verdict, last_message_id: int | None, earlier: list[Case]) -> None:
    result = verdict.result
    if earlier:
        case_services.link_cases(case, earlier)
    by_the_model = verdict.read_by_model and result.reasons[-1:] not in ([RULES_ONLY_REASON], [TURNED_OFF_REASON])
    case_services.record_triage(
        case,
        row_locked=True,
        priority=result.priority,
        category=result.category,
        reasons=result.reasons,
        explained=result.explained,
        up_to_message_id=last_message_id,
        raised_by_earlier_contact=verdict.raised_by,
        awaiting_model=verdict.awaiting_model,
        critical_by_words=verdict.critical_by_words,
        read_by_model=by_the_model,
    )
    logger.info(
        "triaged %s as %s/%s by %s", case.reference, case.priority, case.category,
        "the rules and the model" if by_the_model else "the rules",
    )  # fmt: skip


class TakenAlongCaseFailed(Exception):
    """Writing the triage of a case a batch took along failed: the batch's transaction, the doorbell's own case
    with it, must be rolled back, and the doorbell's case triaged again without the batch."""


class _FailedCases(dict[int, float]):
    """Cases whose triage failed in this process's batches, by when: left out of batches for a while, so that one
    case no batch can triage is not tried, and logged, by every batch after it (its own doorbell still tries it)."""

    def forget_older_than(self, seconds: float) -> None:
        now = time.monotonic()
        for case_id in [case_id for case_id, failed_at in self.items() if now - failed_at > seconds]:
            del self[case_id]


_failed_in_a_batch = _FailedCases()
FAILED_IN_A_BATCH_FOR = 600.0


def forget_batch_failures() -> None:
    """Forget which cases failed in this process's batches, as a new process starts."""
    _failed_in_a_batch.clear()


@transaction.atomic(savepoint=False)
def triage_waiting_cases(
    *, besides: int, limit: int, rules: list[CompiledRule], critical: bool = False
) -> list[TriageRun]:
    """Triage, in the caller's transaction, up to `limit` other new cases nobody has triaged yet, oldest first: in a
    surge one doorbell does the work of many, reading the rules, the messages and (in its caller) the crisis events
    and the assignment turn once for all of them. Their own doorbells then find nothing to do
    (`selectors.triaged_as_written`). Cases another worker holds are skipped, not waited for.

    Two kinds of batch, never mixed. A calm one (the triage queue's) takes no case whose doorbell rides the critical
    queue (`Case.sounds_critical`) and none whose words read as critical, nor locks one of the first: its own
    doorbell, on the critical worker, would wait on that row for the whole batch of a worker that gives way to
    everything else. A critical one (`critical`: the critical worker's doorbell) takes only those, and the model
    reads them all in one batch, before anyone is called, as it reads one case alone."""
    _failed_in_a_batch.forget_older_than(FAILED_IN_A_BATCH_FOR)
    cases = selectors.lock_new_cases_not_triaged(
        besides={besides, *_failed_in_a_batch}, limit=limit, sounding_critical=critical
    )
    if not cases:
        return []
    texts = selectors.inbound_texts([case.pk for case in cases])
    # The rules' reading of each message, read once: it tells whether the case is of this batch's kind, and it is
    # the verdict's first step (checking the critical rules apart, before, cost the general worker a tenth of its
    # CPU). The flag a case was stored with tells its kind, but a follow-up may have come since, or the rules
    # changed: a case of the other kind is left to its own doorbell.
    by_rules = {}
    for case in cases:
        read = _read_by_rules_in_a_batch(case, texts.get(case.pk, ("", None))[0], rules)
        if read is not None and _reads_as_critical(texts.get(case.pk, ("", None))[0], read) == critical:
            by_rules[case.pk] = read
    cases = [case for case in cases if case.pk in by_rules]
    to_read = [
        read for case in cases for read in _texts_to_read(texts.get(case.pk, ("", None))[0], by_rules[case.pk], rules)
    ]
    predictions = _read_by_the_model(to_read) if critical else None
    earlier = selectors.recent_cases_of_same_callers(cases, window=REPEAT_CONTACT_WINDOW)
    # One case that cannot be triaged must not hold back the batch, nor, taken along again and again, every batch
    # after it: it is left to its own doorbell, alone. There is no savepoint a case (SAVEPOINT and RELEASE were two
    # of the nine statements a case cost): its verdict is worked out before anything of it is written, so a defect
    # its words reveal leaves nothing to undo; a write that fails (never seen) takes the batch's transaction with
    # it, and the doorbell triages its own case again without the batch (`TakenAlongCaseFailed`).
    try:
        with case_services.written_together():  # one UPDATE of the batch's cases, one INSERT of their timeline
            return [
                TriageRun(case) for case in cases
                if _triage_taken_along(case, texts, by_rules[case.pk], rules, earlier, predictions)
            ]  # fmt: skip
    except (OperationalError, InterfaceError, TakenAlongCaseFailed):
        raise  # the database is away (not the cases' fault: the doorbell fails and is tried again), or said above
    except Exception as error:  # the batch's one UPDATE or INSERT failed: which case caused it is not known
        failed_at = time.monotonic()
        _failed_in_a_batch.update(dict.fromkeys((case.pk for case in cases), failed_at))
        logger.exception(
            "writing a batch's triage failed; it is rolled back, the doorbell's own case is triaged again without "
            "it, and the %s cases it took along are left to their own doorbells", len(cases),
        )  # fmt: skip
        raise TakenAlongCaseFailed(", ".join(case.reference for case in cases)) from error


def _read_by_rules_in_a_batch(case: Case, text: str, rules: list[CompiledRule]) -> Classification | None:
    """The rules' classification of a case a batch took along; None (and the case left to its own doorbell) when
    its words reveal a defect."""
    try:
        return classify_by_rules(text, case.channel, rules=rules)
    except Exception:
        _failed_in_a_batch[case.pk] = time.monotonic()
        logger.exception("triage of %s failed in a batch; its own doorbell tries it alone", case.reference)
        return None


def _reads_as_critical(text: str, by_rules: Classification) -> bool:
    """Whether a critical rule matched the message: the rules' priority is that of the highest rule matched."""
    return bool(text) and by_rules.priority == Priority.CRITICAL


def _triage_taken_along(
    case: Case,
    texts: dict[int, tuple[str, int | None]],
    by_rules: Classification,
    rules: list[CompiledRule],
    earlier: dict[int, list[Case]],
    predictions: dict[str, Prediction | None] | None,
) -> bool:
    """Triage one case of a batch; False when its words reveal a defect (nothing of it was written)."""
    text, last_message_id = texts.get(case.pk, ("", None))
    read = {"predictions": predictions} if predictions is not None else {}
    try:
        verdict = _verdict(case, text, rules, earlier.get(case.pk, []), by_rules=by_rules, **read)
    except Exception:
        _failed_in_a_batch[case.pk] = time.monotonic()
        logger.exception("triage of %s failed in a batch; its own doorbell tries it alone", case.reference)
        return False
    try:
        _record_verdict(case, verdict, last_message_id, earlier.get(case.pk, []))
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        _failed_in_a_batch[case.pk] = time.monotonic()
        logger.exception(
            "recording the triage of %s failed in a batch; the batch is rolled back, the doorbell's own case is "
            "triaged again without it, and its own doorbell tries it alone", case.reference,
        )  # fmt: skip
        raise TakenAlongCaseFailed(case.reference) from error
    return True


def _texts_to_read(text: str, by_rules: Classification, rules: list[CompiledRule]) -> list[str]:
    """What the model reads of a new case a critical batch took along: its text, and the sentences a critical rule
    matched (a case never triaged has no messages older than its last triage)."""
    return [text, *parts_to_read(text, "", by_rules, rules).values()] if text.strip() else []


def _read_by_the_model(texts: list[str]) -> dict[str, Prediction | None]:
    """The model's prediction for each text, read in one batch (a third faster a message than one by one); None for
    each when the model is unavailable or fails on the batch: the rules then decide alone, and the reasons say so."""
    texts = [text for text in dict.fromkeys(texts) if text.strip()]
    model = semantic_model() if texts else None
    if model is None:
        return dict.fromkeys(texts)
    try:
        return dict(zip(texts, model.predict_many(texts), strict=True))
    except Exception:  # the rules' answer is a whole answer; no case is left waiting for a broken model
        logger.warning("the model failed on a batch of %s messages; read one by one", len(texts), exc_info=True)
    predictions: dict[str, Prediction | None] = {}
    for text in texts:  # one message that breaks the model must not cost the others their reading
        try:
            predictions[text] = model.predict_many([text])[0]
        except Exception:
            predictions[text] = None
    if not any(predictions.values()) and not model_reads(model):
        # Not these messages: the model. /healthz/ says so, as when it cannot load.
        logger.error("the model fails on whatever it reads; the rules decide")
        report_rules_only()
    return predictions


def model_reads(model) -> bool:
    """Whether the model reads a plain message: tells a message it cannot read from a model that reads nothing."""
    try:
        model.predict_many(["Dobar dan, imam pitanje."])
    except Exception:
        return False
    return True


# Messages the model reads at once: batching embeds about a third faster a message, and a batch's cases are
# written one short transaction each, so a batch never holds a case's row for the model's time.
SECOND_LOOK_BATCH = 16


@dataclass(frozen=True)
class SecondLook:
    """A case the model has read, and the priority it had before, when the model raised it ('' otherwise)."""

    case: Case
    raised_from: str = ""


def second_look(limit: int = SECOND_LOOK_BATCH) -> list[SecondLook]:
    """The semantic model reads the cases the rules triaged (the likeliest critical by their words first), and the
    combined verdict is stored (see `classify`): the priority may only rise, the model's category replaces the
    rules' unless a critical rule decided it, and the timeline gets the model's reasons. A case a person
    reclassified meanwhile is left as they said; one written to meanwhile is left for the next look, which reads
    the follow-up too. Without the model the cases keep the rules' verdict, and their timelines say so. Returns
    the cases read."""
    waiting = selectors.awaiting_model(limit)
    if not waiting:
        return []
    rules = selectors.active_rules()  # read once a batch, not once a case
    # Each case's whole text, what came since the model last read it, and the sentences a critical rule matched,
    # in one batch: at most three readings a case.
    to_read = {}
    for case_id, text, new_text, _ in waiting:
        by_rules = classify_by_rules(text, rules=rules)  # the channel counts only for a call with no words
        to_read[case_id] = (by_rules, parts_to_read(text, new_text, by_rules, rules))
    predictions = _read_by_the_model(
        [read for (case_id, text, _, _) in waiting for read in (text, *to_read[case_id][1].values())]
    )
    model = semantic_model()
    if predictions and not any(predictions.values()) and model is not None and not model_reads(model):
        # Loaded, yet it reads nothing, not even a plain message: left waiting for it (and /healthz/ shows the look
        # falling behind), not marked read by the rules alone, which would keep the model from them once it works
        # again. Messages it cannot read while it reads others are theirs to blame: the rules decide them, below.
        return []
    looks = []
    for case_id, text, _, message_id in waiting:
        look = _store_second_look(case_id, text, message_id, predictions, rules, *to_read[case_id])
        if look is not None:
            looks.append(look)
    return looks


@transaction.atomic
def _store_second_look(
    case_id: int,
    text: str,
    message_id: int | None,
    predictions: dict[str, Prediction | None],
    rules: list[CompiledRule],
    by_rules: Classification,
    parts: dict[str, str],
) -> SecondLook | None:
    case = Case.objects.for_change().filter(pk=case_id, awaiting_model=True).first()
    if case is None:
        return None  # a person reclassified it, or another look stored it first
    latest = case.messages.filter(direction=Direction.INBOUND).order_by("-id").values_list("id", flat=True).first()
    if latest != message_id:
        return None  # the citizen wrote again since the batch was read: the next look reads the whole text
    result = with_predictions(by_rules, text, parts, predictions)
    prediction = predictions.get(text)
    before = case.priority
    # The model may read a follow-up before the rules' triage of it (its doorbell waits in a busy queue). The look
    # then leaves the mark where the rules left it: marked read up to the follow-up, the doorbell found nothing to
    # do, and "he is back" on a case whose worker had gone off duty reached nobody.
    last_triage = case.timeline.filter(kind=EventKind.TRIAGED).order_by("-id").values_list("details", flat=True)
    last = last_triage.first() or {}
    read_by_the_rules = last.get("up_to_message_id")
    read_ahead_of_the_rules = str(read_by_the_rules) != str(message_id)
    if read_ahead_of_the_rules:
        message_id = read_by_the_rules
    # The model's category counts with its priority: a case kept at a higher priority than the combined verdict
    # (never lowered) keeps the category that came with it, so it never reads "critical, information".
    kept_higher = PRIORITY_RANK.get(before, 0) > PRIORITY_RANK[result.priority]
    case_services.record_triage(
        case,
        row_locked=True,
        priority=result.priority,
        category=result.category,
        reasons=result.reasons,
        explained=result.explained,
        up_to_message_id=message_id,
        category_decided=prediction is not None and not kept_higher,
        # A priority held by the same person's earlier contact still says so, not only the look's lower verdict.
        raised_by_earlier_contact=last.get("raised_by_earlier_contact", "") if kept_higher else "",
        second_look=True,
        read_all_written=not read_ahead_of_the_rules,
    )
    raised = PRIORITY_RANK.get(case.priority, 0) > PRIORITY_RANK.get(before, 0)
    if raised:
        logger.info("the model's second look raised %s from %s to %s", case.reference, before, case.priority)
    return SecondLook(case, raised_from=before if raised else "")


def record_correction(
    case: Case, *, before_priority: str, before_category: str, by: AbstractBaseUser, reason: str
) -> TriageCorrection | None:
    """A person changed the case's priority or category: keep the text triage read with its verdict and theirs,
    as a labelled example for the next training. Nothing is kept when nothing changed.

    The verdict corrected is the latest automatic triage's (from the timeline), so a second person's change still
    says what triage had said; a case changed before triage ever ran has the values it had before.
    """
    if (case.priority, case.category) == (before_priority, before_category):
        return None
    triaged = case.timeline.filter(kind=EventKind.TRIAGED).order_by("-id").values_list("details", flat=True).first()
    predicted_priority = (triaged or {}).get("priority", before_priority) or ""
    predicted_category = (triaged or {}).get("category", before_category) or ""
    text, _ = _inbound_text(case)
    return TriageCorrection.objects.create(
        case=case,
        text=text,
        predicted_priority=predicted_priority,
        predicted_category=predicted_category,
        corrected_priority=case.priority,
        corrected_category=case.category,
        reason=reason,
        corrected_by=by,
    )


def forget_words_in_corrections(case: Case) -> int:
    """The case is being anonymised: its corrections lose the citizen's text and the staff's reason, and so leave
    the training export; the labels stay, as the case's category does, for how often and how triage was corrected.
    Blanked rather than deleted: a label without its words teaches the model nothing, but counts. Returns how many."""
    return TriageCorrection.objects.filter(case=case).exclude(text="", reason="").update(text="", reason="")


DEFAULT_RULES_FILE = selectors.DEFAULT_RULES_FILE


@dataclass(frozen=True)
class DefaultRulesResult:
    added: list[str]
    updated: list[str]


@transaction.atomic
def install_default_rules(*, update: bool = False) -> DefaultRulesResult:
    """Add the shipped rules this installation lacks (by name). With update, also bring rules of the same name
    back to the shipped terms, priority and category: a supervisor's edits to those rules are overwritten, so it
    is a deliberate choice, never automatic."""
    added, updated = [], []
    for shipped in json.loads(DEFAULT_RULES_FILE.read_text(encoding="utf-8")):
        fields = {
            "category": shipped["category"],
            "priority": shipped["priority"],
            "terms": "\n".join(shipped["terms"]),
            "can_be_negated": shipped["can_be_negated"],
        }
        rule, created = TriageRule.objects.get_or_create(name=shipped["name"], defaults=fields)
        if created:
            added.append(rule.name)
        elif update and any(getattr(rule, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(rule, key, value)
            rule.save()
            updated.append(rule.name)
    return DefaultRulesResult(added, updated)
