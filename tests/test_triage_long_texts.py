"""Danger at the end of a long message, or in a follow-up after a calm history: the model reads the new words and the
words a critical rule matched on their own, so a calm paragraph around them never talks the danger away.

These use the real model (it loads once per test process).
"""
from __future__ import annotations

import pytest

from helpline.cases.models import Case, EventKind
from helpline.casework import actions
from notifications.models import Notification, NotificationChannel, NotificationKind
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from triage import semantic_model
from triage.classification import Classification
from triage.semantic.model import Prediction
from triage.services import NEW_MESSAGES, RULES_WORDS, combined_classification

pytestmark = pytest.mark.django_db

ALIMONY = (
    "Dobar dan, pišem vam jer imam problem sa alimentacijom. Bivši muž već šest mjeseci ne plaća alimentaciju za "
    "dvoje djece, a ja radim za minimalac i ne mogu platiti struju i kiriju. Sud je donio presudu ali on se ne "
    "pojavljuje. Šta da radim, kome da se obratim, da li mi pripada neka pomoć od centra?"
)
LIFE_STORY = (
    "Poštovani, ne znam odakle da počnem. Udata sam dvanaest godina, imamo troje djece. Muž je izgubio posao prije "
    "dvije godine i od tada nemamo dovoljno novca ni za hranu ni za račune, živimo od moje plate i dječijeg "
    "doplatka. Pokušavala sam naći dodatni posao ali nemam kome ostaviti djecu. Struju su nam isključili prošle "
    "sedmice, a stanodavac traži kiriju. Molim vas da mi kažete da li mogu dobiti jednokratnu pomoć. "
    "Večeras je rekao da će me ubiti i da ima nož."
)


def alerts_to(staff, case: Case) -> list[str]:
    rows = Notification.objects.filter(case=case, recipient=staff.user, kind=NotificationKind.ASSIGNMENT)
    return list(rows.order_by("id").values_list("channel", flat=True))


def test_pills_taken_in_a_follow_up_to_an_alimony_question_make_the_case_critical_and_call_the_worker():
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = CaseFactory()
    MessageFactory(case=case, body=ALIMONY)
    actions.do_triage_case(case.pk)
    actions.do_second_look()

    MessageFactory(case=case, body="popila sam sve tablete")
    actions.do_triage_case(case.pk)
    actions.do_second_look()

    case.refresh_from_db()
    assert (case.priority, case.category) == ("critical", "suicide_self_harm")
    assert NotificationChannel.VOICE in alerts_to(worker, case)


def test_a_knife_threat_at_the_end_of_a_long_story_is_critical_domestic_violence():
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = CaseFactory(channel="web")
    MessageFactory(case=case, body=LIFE_STORY)

    actions.do_triage_case(case.pk)
    actions.do_second_look()

    case.refresh_from_db()
    assert case.priority == "critical" and case.category != "material_need"
    assert NotificationChannel.VOICE in alerts_to(worker, case)


def test_a_follow_up_the_rules_miss_is_read_by_the_model_on_its_own():
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = CaseFactory()
    MessageFactory(case=case, body=ALIMONY)
    actions.do_triage_case(case.pk)
    actions.do_second_look()

    MessageFactory(case=case, body="istukao me sinoc, ne smijem kuci")
    actions.do_triage_case(case.pk)
    actions.do_second_look()

    case.refresh_from_db()
    assert case.priority == "critical"
    reasons = case.timeline.filter(kind=EventKind.TRIAGED).latest("id").details["reasons"]
    assert any("new messages" in reason for reason in reasons)


def reading(priority: str, category: str, critical: float) -> Prediction:
    return Prediction(
        priority=priority, category=category, critical_probability=critical, critical_threshold=0.2,
        priority_probabilities={priority: 1.0}, category_probabilities={category: 1.0}, resembles=(),
    )  # fmt: skip


KNIFE_RULE = Classification("critical", "domestic_violence", "bs", "latin", ["Oružje (critical): 'noz'"], ["Oružje"])


def test_a_calm_reading_of_a_long_text_cannot_rule_out_a_critical_rule_whose_sentence_reads_critical_alone():
    calm_whole = reading("normal", "domestic_violence", 0.01)
    knife_sentence = reading("critical", "domestic_violence", 0.35)

    result = combined_classification(KNIFE_RULE, calm_whole, parts={RULES_WORDS: knife_sentence})

    assert (result.priority, result.category) == ("critical", "domestic_violence")
    assert "the rule stands" in result.reasons[-1]


def test_a_critical_rule_is_still_ruled_out_when_its_sentence_alone_reads_below_critical():
    # Read without the message around it ("in the film he said he'd kill her"), a sentence sounds worse than it is:
    # only a reading of critical keeps a rule the whole text rules out.
    film_line = reading("high", "domestic_violence", 0.15)

    result = combined_classification(KNIFE_RULE, reading("low", "information", 0.02), parts={RULES_WORDS: film_line})

    assert result.priority == "high"
    assert "the model ruled it out" in result.reasons[-1]


def test_the_sentences_a_rule_matched_never_raise_the_priority_by_themselves():
    calm = Classification("normal", "information", "bs", "latin", [], [])

    result = combined_classification(
        calm, reading("low", "information", 0.01), parts={RULES_WORDS: reading("critical", "domestic_violence", 0.6)}
    )

    assert result.priority == "normal"


def test_the_highest_reading_decides_the_priority_and_brings_its_category():
    calm = Classification("normal", "material_need", "bs", "latin", [], [])
    whole, new = reading("normal", "material_need", 0.01), reading("critical", "domestic_violence", 0.6)

    result = combined_classification(calm, whole, parts={NEW_MESSAGES: new})

    assert (result.priority, result.category) == ("critical", "domestic_violence")
    assert result.reasons[-1] == (
        "combined: critical (from the model reading the new messages), domestic_violence (from the model reading the "
        "new messages)"
    )


def test_a_follow_up_after_a_long_history_costs_the_model_two_readings_not_one_a_message(monkeypatch):
    ShiftFactory(staff=StaffFactory())
    case = CaseFactory()
    for body in (ALIMONY, "Imam i pitanje o dječijem doplatku", "Hvala vam unaprijed"):
        MessageFactory(case=case, body=body)
    actions.do_triage_case(case.pk)
    actions.do_second_look()
    MessageFactory(case=case, body="opet je bilo frke sinoc, ne smijem kuci")
    actions.do_triage_case(case.pk)
    model = semantic_model.semantic_model()
    read, reading_many = [], model.predict_many

    def counting(texts):
        read.extend(texts)
        return reading_many(texts)

    monkeypatch.setattr(model, "predict_many", counting)
    actions.do_second_look()

    assert len(read) == 2 and read[1] == "opet je bilo frke sinoc, ne smijem kuci"
