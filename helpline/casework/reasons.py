"""Triage's reasons in the reader's language: the kinds and parameters triage stores beside its English reasons
(details["explained"] of a TRIAGED event) said in plain words a social worker reads at a glance, at three in the
morning, in Bosnian. The English reasons stay for the API and the log, and for events written before."""
from __future__ import annotations

from collections.abc import Callable

from django.utils.translation import gettext as _

from helpline.cases.models import Priority
from triage.models import Category


class UnknownReason(Exception):
    """A kind (or a parameter) this console does not know how to say: the English reasons are shown instead."""


def reasons_in_words(explained: list[dict]) -> list[str]:
    """Each explained reason as one short line. Raises UnknownReason when one cannot be said."""
    try:
        return [_SAY[item["kind"]](item) for item in explained]
    except (KeyError, TypeError, ValueError) as error:
        raise UnknownReason(str(error)) from error


def _priority(value: str) -> str:
    return str(Priority(value).label).lower()


def _category(value: str) -> str:
    return str(Category(value).label).lower()


def _percent(share: float) -> str:
    """0.043 as "4 %": two digits after the point tell a worker nothing the rounded figure does not."""
    whole = round(float(share) * 100)
    return "<1 %" if whole == 0 and share > 0 else f"{whole} %"


def _rule(item: dict) -> str:
    return _("Rule »%(rule)s« (%(priority)s): »%(words)s«") % {
        "rule": item["rule"], "priority": _priority(item["priority"]), "words": item["words"],
    }  # fmt: skip


def _model(item: dict) -> str:
    parts = item.get("parts") or []
    who = {
        (): _("Model"),
        ("new_messages",): _("Model, reading only the new messages"),
        ("rules_words",): _("Model, reading only the sentences the rule matched"),
    }.get(tuple(parts)) or _("Model, reading only the new messages, which are the sentences the rule matched")
    numbers = {
        "probability": _percent(item["critical_probability"]),
        "threshold": _percent(item["critical_threshold"]),
    }
    said = (
        _("%(who)s: %(priority)s, close to critical (chance of critical %(probability)s, threshold %(threshold)s), "
          "%(category)s")
        if item.get("near_critical")
        else _("%(who)s: %(priority)s (chance of critical %(probability)s, threshold %(threshold)s), %(category)s")
    ) % {"who": who, "priority": _priority(item["priority"]), "category": _category(item["category"]), **numbers}
    examples = "; ".join(
        f"«{example['text']}» ({_percent(example['similarity'])})" for example in item.get("resembles") or []
    )
    return _("%(verdict)s; resembles: %(examples)s") % {"verdict": said, "examples": examples} if examples else said


def _decision(item: dict) -> str:
    numbers = {
        "probability": _percent(item["critical_probability"]),
        "threshold": _percent(item["critical_threshold"]),
    }
    priority_from = {
        "model": _("the priority is the model's")
        if not item.get("read")
        else _("the priority is the model's, from the new messages"),
        "rules": _("the priority is the rules'"),
        "both": _("the rules and the model agree on the priority"),
        "ruled_out": _(
            "the model ruled the critical rule out (chance of critical %(probability)s, under half the threshold "
            "%(threshold)s): high, not critical"
        ) % numbers,
        "kept_by_its_words": _(
            "the rule stands, because the sentence it matched sounds critical on its own, though the whole text "
            "sounds calm"
        ),
    }[item["priority_from"]]
    category_from = {
        "model": _("the category is the model's"),
        "rule": _("the category is the critical rule's"),
    }[item["category_from"]]
    return _("Decision: %(priority)s, %(category)s — %(priority_from)s; %(category_from)s") % {
        "priority": _priority(item["priority"]), "category": _category(item["category"]),
        "priority_from": priority_from, "category_from": category_from,
    }  # fmt: skip


def _rules_only(item: dict) -> str:
    if item.get("turned_off"):
        return _("Rules only: the model is turned off")
    return _("Rules only: the model was not available")


_SAY: dict[str, Callable[[dict], str]] = {
    "rule": _rule,
    "no_rule": lambda item: _("No rule matched: a person must read the message"),
    "call_without_words": lambda item: _("A call with nothing written yet: call the person back"),
    "model": _model,
    "decision": _decision,
    "rules_only": _rules_only,
}
