"""A contact raised to the priority of the same person's earlier contact says so, naming that case, where staff read
why (the console's case page in Bosnian, the API's timeline), and takes that case's category unless its own words
name a danger too.

These use the real model (it loads once per test process).
"""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from tests.tokens import api_token

pytestmark = pytest.mark.django_db


def earlier_knife_threat_and_a_question_today(worker):
    earlier = CaseFactory()
    MessageFactory(case=earlier, body="ubit će me, ima nož")
    actions.do_triage_case(earlier.pk)
    Case.objects.filter(pk=earlier.pk).update(status=CaseStatus.RESOLVED)  # so the same number opens a new case
    case = CaseFactory(caller=earlier.caller)
    MessageFactory(case=case, body="Koje dokumente trebam za dječiji doplatak?")
    actions.do_triage_case(case.pk)
    return Case.objects.get(pk=earlier.pk), Case.objects.get(pk=case.pk)


def test_a_question_raised_by_an_earlier_threat_says_why_and_keeps_the_threats_category(client):
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    earlier, case = earlier_knife_threat_and_a_question_today(worker)
    assert earlier.priority == "critical"

    assert (case.priority, case.category) == ("critical", earlier.category)
    reasons = case.timeline.filter(kind=EventKind.TRIAGED).latest("id").details["reasons"]
    assert f"raised because of the same person's earlier contact within 24 hours: {earlier.reference}" in reasons

    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    assert f"zbog ranijeg javljanja iste osobe u posljednja 24 sata: {earlier.reference}" in page

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(worker.user)}")
    timeline = api.get(f"/api/v1/cases/{case.pk}/").json()["timeline"]
    triaged = [event for event in timeline if event["kind"] == EventKind.TRIAGED][-1]
    assert any(earlier.reference in reason for reason in triaged["details"]["reasons"])


def test_the_reason_stays_readable_after_the_models_second_look(client):
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    earlier, case = earlier_knife_threat_and_a_question_today(worker)

    actions.do_second_look()

    case.refresh_from_db()
    assert (case.priority, case.category) == ("critical", earlier.category)
    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    assert f"zbog ranijeg javljanja iste osobe u posljednja 24 sata: {earlier.reference}" in page
