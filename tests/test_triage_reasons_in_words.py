"""Why triage chose a case's priority, as a social worker reads it on the console's case page: in Bosnian, in plain
words and rounded figures; the API keeps the English reasons. An event stored before keeps its English reasons.

These use the real model (it loads once per test process), as the other triage tests do.
"""
from __future__ import annotations

import re

import pytest
from django.db import connection
from rest_framework.test import APIClient

from helpline.cases import services as case_services
from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from helpline.operations.key_rotation import reindex_all
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from tests.test_triage_long_texts import LIFE_STORY
from tests.tokens import api_token

pytestmark = pytest.mark.django_db


def case_page(client, worker, case: Case) -> str:
    client.force_login(worker.user)
    return client.get(f"/console/cases/{case.pk}/").content.decode()


def triaged(text: str, channel: str = "sms") -> tuple[object, Case]:
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = CaseFactory(channel=channel)
    MessageFactory(case=case, body=text)
    actions.do_triage_case(case.pk)
    return worker, Case.objects.get(pk=case.pk)


def test_a_knife_threat_shows_the_rule_the_model_and_the_decision_in_bosnian(client):
    worker, case = triaged("ubit će me, ima nož")
    assert case.priority == "critical"

    page = case_page(client, worker, case)

    assert re.search(r"Pravilo »[^«]+« \(kritično\): »[^«]*no[zž]", page)
    assert re.search(r"Model: [a-zč]+.*\(vjerovatnoća kritičnog (&lt;1|\d{1,3}) %, prag \d{1,3} %\)", page)
    assert "sliči na: «" in page
    assert "Odluka: kritično, " in page
    assert "semantic model:" not in page and "combined:" not in page
    # No raw probabilities in the reasons ("0.73"); a timestamp's seconds ("09:30:00.730135") are not one.
    assert not re.search(r"(?<![\d:.])0\.\d\d(?!\d)", page.split("Odluka")[0][-2000:])


def test_the_api_still_gives_the_english_reasons(client):
    worker, case = triaged("ubit će me, ima nož")

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(worker.user)}")
    timeline = api.get(f"/api/v1/cases/{case.pk}/").json()["timeline"]
    reasons = [event for event in timeline if event["kind"] == EventKind.TRIAGED][-1]["details"]["reasons"]

    assert any(reason.startswith("semantic model: ") for reason in reasons)
    assert reasons[-1].startswith("combined: critical (from ")
    assert any("(critical): '" in reason for reason in reasons)


def test_a_rule_kept_by_its_own_sentence_in_a_long_story_says_so(client):
    worker, case = triaged(LIFE_STORY, channel="web")
    assert case.priority == "critical"

    page = case_page(client, worker, case)

    assert "pravilo je ostalo jer rečenica koju je prepoznalo sama zvuči kritično" in page
    assert "Model, čitajući samo rečenice koje je pravilo prepoznalo: kritično" in page


def test_rules_alone_say_the_model_was_not_available(client, rules_only_triage):
    worker, case = triaged("ubit će me, ima nož")

    page = case_page(client, worker, case)

    assert "Samo pravila: model nije bio dostupan" in page
    assert "(kritično): »" in page


def test_a_call_with_nothing_written_asks_for_a_call_back(client):
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = CaseFactory(channel="voice")
    actions.do_triage_case(case.pk)

    page = case_page(client, worker, Case.objects.get(pk=case.pk))

    assert "Poziv bez ijedne zapisane riječi: nazovite osobu" in page


def test_an_event_stored_before_the_explained_reasons_still_shows_its_english_reasons(client):
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = CaseFactory()
    case_services.record_triage(
        case, priority="critical", category="domestic_violence", reasons=["Oružje (critical): 'noz'"],
        up_to_message_id=None,
    )  # fmt: skip

    page = case_page(client, worker, case)

    assert "Oružje (critical): &#x27;noz&#x27;" in page


def test_the_citizens_words_in_the_explained_reasons_are_not_stored_in_clear():
    _, case = triaged("ubit će me, ima nož")
    event = case.timeline.filter(kind=EventKind.TRIAGED).latest("id")
    assert any(item.get("words") for item in event.details["explained"])

    with connection.cursor() as cursor:
        cursor.execute("SELECT CAST(details AS TEXT) FROM helpline_timelineevent WHERE id = %s", [event.pk])
        stored = cursor.fetchone()[0]

    assert "noz" not in stored and "nož" not in stored


def test_an_anonymised_case_shows_the_rules_it_matched_without_the_words(client):
    worker, case = triaged("ubit će me, ima nož")
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.RESOLVED)

    case_services.anonymise_case(Case.objects.get(pk=case.pk), basis="retention")

    page = case_page(client, worker, case)
    assert "Oružje" in page
    assert "noz" not in page and "nož" not in page
    assert not case.timeline.filter(kind=EventKind.TRIAGED).latest("id").details["explained"]


def test_the_explained_reasons_still_read_after_the_timeline_is_re_encrypted(client):
    worker, case = triaged("ubit će me, ima nož")

    reindex_all()

    assert re.search(r"Pravilo »Oružje« \(kritično\): »no[zž]«", case_page(client, worker, case))
