"""Triage in two steps: the rules triage and assign a case at once, and the semantic model takes a second look in a
worker of its own, raising what the rules missed and acting on it. Nobody waits for the model; the model never
lowers what a person was called for, and never overrides a person's own classification.

These use the real model (it loads once per test process) and the real broker.
"""
from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from notifications.models import Notification, NotificationChannel, NotificationKind
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from triage import semantic_model
from triage import services as triage
from triage.semantic.model import Prediction

pytestmark = pytest.mark.django_db

# A farewell with affairs settled: no word of the rules' lists, and the model knows what it means.
FAREWELL = "Pisem vam zadnji put, mačku sam dala komšinici i pisma su u ladici"
BEATEN = "Muž me tuče, pomozite"  # a critical rule's words
# High by the rules (water coming in, nobody named who cannot get out). With an old person named ("baka je sama u
# kući, voda ulazi") the rules now say critical, and the model reads it at once, never from this queue.
FLOODED_HOUSE = "Voda ulazi u kuću, nema struje, šta da radimo"


def contact(text: str) -> Case:
    case = CaseFactory()
    MessageFactory(case=case, body=text)
    return case


def alerts_to(staff, case: Case) -> list[tuple[str, str]]:
    rows = Notification.objects.filter(case=case, recipient=staff.user, kind=NotificationKind.ASSIGNMENT)
    return list(rows.order_by("id").values_list("channel", "body"))


def latest_triage(case: Case) -> dict:
    return case.timeline.filter(kind=EventKind.TRIAGED).latest("id").details


def test_a_case_is_assigned_by_the_rules_at_once_and_the_model_worker_is_rung(
    queues, django_capture_on_commit_callbacks
):
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = contact(FAREWELL)
    with django_capture_on_commit_callbacks(execute=True):
        actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert case.assigned_to == worker.user and case.priority == "normal"
    assert case.awaiting_model
    assert queues.size("model") == 1  # the doorbell; the mark in the database is the work itself


def test_the_models_second_look_makes_a_farewell_critical_and_calls_the_worker_who_has_not_answered_yet():
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = contact(FAREWELL)
    actions.do_triage_case(case.pk)
    first_deadline = Case.objects.get(pk=case.pk).acknowledge_by

    assert actions.do_second_look() == 1

    case.refresh_from_db()
    assert (case.priority, case.category) == ("critical", "suicide_self_harm")
    assert case.assigned_to == worker.user and not case.awaiting_model
    assert case.acknowledge_by < first_deadline  # the critical ladder's short deadline now runs
    channels = [channel for channel, _ in alerts_to(worker, case)]
    assert channels == [NotificationChannel.SMS, NotificationChannel.SMS, NotificationChannel.VOICE]
    look = latest_triage(case)
    assert look["second_look"] is True and look["priority"] == "critical"
    assert any(reason.startswith("semantic model: critical") and "resembles:" in reason for reason in look["reasons"])
    handed_again = case.timeline.filter(kind=EventKind.ASSIGNED).latest("id").details["explanation"]
    assert "raised the priority from normal to critical" in handed_again


def test_a_case_nobody_had_room_for_is_given_out_once_the_model_calls_it_critical():
    worker = StaffFactory(max_open_cases=1)
    ShiftFactory(staff=worker)
    busy = contact("Trebam informaciju o dječijem doplatku")
    actions.do_triage_case(busy.pk)
    case = contact(FAREWELL)
    actions.do_triage_case(case.pk)
    assert Case.objects.get(pk=case.pk).assigned_to is None  # normal by the rules: it waits for room

    actions.do_second_look()

    case.refresh_from_db()
    assert case.priority == "critical" and case.assigned_to == worker.user  # the critical rule goes over the maximum


def test_a_case_already_taken_stays_with_its_worker_without_a_new_alert():
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = contact(FAREWELL)
    actions.do_triage_case(case.pk)
    case = Case.objects.get(pk=case.pk)
    actions.do_acknowledge(case, by=worker.user, via="console")

    actions.do_second_look()

    case.refresh_from_db()
    assert case.priority == "critical" and case.status == CaseStatus.ACKNOWLEDGED
    assert len(alerts_to(worker, case)) == 1  # the first alert only: the worker has the case open


def doubting_prediction() -> Prediction:
    return Prediction(
        priority="low", category="information", critical_probability=0.0, critical_threshold=0.2,
        priority_probabilities={"low": 1.0}, category_probabilities={"information": 1.0}, resembles=(),
    )  # fmt: skip


def doubting_predictions(texts: list[str]) -> list[Prediction]:
    return [doubting_prediction() for _ in texts]


def test_a_critical_rule_the_model_rules_out_is_high_before_anyone_is_called(monkeypatch):
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = contact(BEATEN)
    monkeypatch.setattr(semantic_model.semantic_model(), "predict_many", doubting_predictions)

    actions.do_triage_case(case.pk)

    case.refresh_from_db()
    assert case.priority == "high" and not case.awaiting_model  # the model has read it: no second look
    assert [channel for channel, _ in alerts_to(worker, case)] == [NotificationChannel.SMS]  # no critical call
    assert "ruled it out" in latest_triage(case)["reasons"][-1]


def test_a_critical_rule_the_model_agrees_with_is_critical_at_once():
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = contact(BEATEN)
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.priority, case.category) == ("critical", "domestic_violence") and not case.awaiting_model
    assert [channel for channel, _ in alerts_to(worker, case)] == [NotificationChannel.SMS, NotificationChannel.VOICE]


def test_the_model_never_lowers_a_case_its_callers_earlier_danger_made_critical():
    ShiftFactory(staff=StaffFactory(max_open_cases=10))
    earlier = contact(BEATEN)
    actions.do_triage_case(earlier.pk)
    Case.objects.filter(pk=earlier.pk).update(status=CaseStatus.RESOLVED)  # so the same number opens a new case
    case = CaseFactory(caller=earlier.caller)
    MessageFactory(case=case, body="Koje je radno vrijeme centra?")
    actions.do_triage_case(case.pk)
    assert Case.objects.get(pk=case.pk).priority == "critical"  # raised by the earlier contact

    actions.do_second_look()

    case.refresh_from_db()
    assert case.priority == "critical" and not case.awaiting_model
    look = latest_triage(case)
    assert look["second_look"] is True and look["suggested_priority"] in ("low", "normal")


def test_a_persons_reclassification_is_never_overridden_by_the_model():
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    supervisor = StaffFactory(role="supervisor")
    case = contact(FAREWELL)
    actions.do_triage_case(case.pk)
    case = Case.objects.get(pk=case.pk)
    actions.do_reclassify(case, by=supervisor.user, priority="high", category="family_conflict", reason="pozvala")

    assert actions.do_second_look() == 0

    case.refresh_from_db()
    assert (case.priority, case.category) == ("high", "family_conflict")
    assert case.timeline.filter(kind=EventKind.TRIAGED).count() == 1


def test_a_message_that_arrives_while_the_model_reads_is_read_with_the_next_look(monkeypatch):
    ShiftFactory(staff=StaffFactory())
    case = contact("Dobar dan, imam pitanje")
    actions.do_triage_case(case.pk)
    model = semantic_model.semantic_model()
    reading = model.predict_many

    def citizen_writes_meanwhile(texts):
        MessageFactory(case=case, body=FAREWELL)
        return reading(texts)

    monkeypatch.setattr(model, "predict_many", citizen_writes_meanwhile)
    assert triage.second_look() == []  # what it read is out of date: nothing stored
    monkeypatch.setattr(model, "predict_many", reading)
    assert Case.objects.get(pk=case.pk).awaiting_model

    actions.do_second_look()

    case.refresh_from_db()
    assert case.priority == "critical" and not case.awaiting_model


def test_in_a_queue_the_model_reads_first_the_message_whose_words_sound_likeliest_critical():
    ShiftFactory(staff=StaffFactory(max_open_cases=100))
    older = [contact("Koje je radno vrijeme centra?"), contact(FLOODED_HOUSE), contact("Trebam pomoć oko drva")]
    for case in older:
        actions.do_triage_case(case.pk)
    Case.objects.filter(pk__in=[case.pk for case in older]).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    farewell = contact(FAREWELL)  # the newest, and normal by the rules, like the question
    actions.do_triage_case(farewell.pk)

    [first] = triage.second_look(limit=1)

    assert first.case.pk == farewell.pk and first.case.priority == "critical"
    assert all(Case.objects.get(pk=case.pk).awaiting_model for case in older)


def test_without_the_head_file_the_model_queue_is_read_oldest_first(rules_only_triage):
    ShiftFactory(staff=StaffFactory(max_open_cases=100))
    question, farewell = contact("Koje je radno vrijeme centra?"), contact(FAREWELL)
    for case in (question, farewell):
        actions.do_triage_case(case.pk)
    Case.objects.filter(pk=question.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))

    [first] = triage.second_look(limit=1)

    assert first.case.pk == question.pk


def test_a_message_whose_words_cannot_be_scored_is_still_triaged_and_waits_its_turn(monkeypatch):
    from triage.semantic.head import TriageHead

    def broken(self, texts):
        raise FloatingPointError("a damaged weight")

    monkeypatch.setattr(TriageHead, "critical_by_words", broken)
    worker = StaffFactory()
    ShiftFactory(staff=worker)
    case = contact(FAREWELL)

    actions.do_triage_case(case.pk)

    case.refresh_from_db()
    assert case.assigned_to == worker.user and case.awaiting_model and case.critical_by_words == 0.0


def test_without_the_model_the_second_look_keeps_the_rules_verdict_and_says_so(rules_only_triage):
    ShiftFactory(staff=StaffFactory())
    case = contact(FAREWELL)
    actions.do_triage_case(case.pk)

    assert actions.do_second_look() == 1

    case.refresh_from_db()
    assert case.priority == "normal" and not case.awaiting_model
    assert latest_triage(case)["reasons"][-1] == triage.RULES_ONLY_REASON


def test_a_call_with_nothing_written_is_not_given_to_the_model():
    ShiftFactory(staff=StaffFactory())
    case = CaseFactory(channel="voice")
    actions.do_triage_case(case.pk)
    assert not Case.objects.get(pk=case.pk).awaiting_model
    assert actions.do_second_look() == 0


def test_a_model_that_loads_but_fails_on_every_message_leaves_the_cases_for_it_and_says_so(monkeypatch):
    # They were marked read by the rules alone: the model never read them once it worked again (it would have
    # made this farewell critical), and /healthz/ said semantic triage was ok.
    from helpline.cases.models import Heartbeat

    ShiftFactory(staff=StaffFactory())
    case = contact(FAREWELL)
    actions.do_triage_case(case.pk)
    model = semantic_model.semantic_model()
    reading = model.predict_many

    def out_of_memory(texts):
        raise MemoryError

    monkeypatch.setattr(model, "predict_many", out_of_memory)
    semantic_model._last_report.clear()
    assert triage.second_look() == []
    assert Case.objects.get(pk=case.pk).awaiting_model
    assert Heartbeat.objects.filter(name__startswith=semantic_model.RULES_ONLY_HEARTBEAT_PREFIX).exists()

    monkeypatch.setattr(model, "predict_many", reading)
    actions.do_second_look()
    case.refresh_from_db()
    assert not case.awaiting_model and case.priority == "critical"


def test_one_message_that_breaks_the_model_does_not_cost_the_others_their_reading(monkeypatch):
    ShiftFactory(staff=StaffFactory())
    breaking, farewell = contact("Dobar dan, imam pitanje oko dokumenata"), contact(FAREWELL)
    for case in (breaking, farewell):
        actions.do_triage_case(case.pk)
    model = semantic_model.semantic_model()
    reading = model.predict_many

    def fails_on_one(texts):
        if any("dokumenata" in text for text in texts):
            raise ValueError("a text the model cannot read")
        return reading(texts)

    monkeypatch.setattr(model, "predict_many", fails_on_one)
    actions.do_second_look()
    assert Case.objects.get(pk=farewell.pk).priority == "critical"
    assert not Case.objects.get(pk=breaking.pk).awaiting_model  # read by the rules alone, not retried for ever


def test_one_message_the_model_cannot_read_alone_in_the_queue_is_decided_by_the_rules(monkeypatch):
    # Alone in a quiet night's queue, it was left waiting for ever ("the second look 600 s behind" on /healthz/),
    # and each look reported the model as unavailable while it read everything else.
    from helpline.cases.models import Heartbeat

    ShiftFactory(staff=StaffFactory())
    case = contact("Dobar dan, imam pitanje oko dokumenata")
    actions.do_triage_case(case.pk)
    model = semantic_model.semantic_model()
    reading = model.predict_many

    def cannot_read_that_one(texts):
        if any("dokumenata" in text for text in texts):
            raise ValueError("a text the model cannot read")
        return reading(texts)

    monkeypatch.setattr(model, "predict_many", cannot_read_that_one)
    semantic_model._last_report.clear()
    actions.do_second_look()
    assert not Case.objects.get(pk=case.pk).awaiting_model
    assert not Heartbeat.objects.filter(name__startswith=semantic_model.RULES_ONLY_HEARTBEAT_PREFIX).exists()


def test_a_follow_up_the_model_reads_before_the_rules_still_reaches_someone_on_duty():
    # The look marked the case read up to the follow-up; its doorbell, behind it in the queue, then did nothing:
    # "he is back with a knife" stayed with a worker who had gone home.
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        leaving = StaffFactory()
        ShiftFactory(staff=leaving, starts_at=start - dt.timedelta(hours=8), ends_at=start + dt.timedelta(minutes=30))
        colleague = StaffFactory()
        ShiftFactory(staff=colleague, starts_at=start + dt.timedelta(minutes=20), ends_at=start + dt.timedelta(hours=8))
        case = contact("Dobar dan, imam pitanje oko alimentacije")
        actions.do_triage_case(case.pk)
        actions.do_acknowledge(Case.objects.get(pk=case.pk), by=leaving.user, via="console")
        clock.move_to(start + dt.timedelta(minutes=40))
        follow_up = MessageFactory(case=case, body="Opet je došao, ima nož, prijeti")  # its doorbell still waits

        actions.do_second_look()
        # Were that doorbell lost, the sweep finds the follow-up written after the case's last full triage.
        assert Case.objects.get(pk=case.pk).triaged_at < follow_up.created_at
        actions.do_triage_case(case.pk)  # the follow-up's doorbell

    case.refresh_from_db()
    assert case.assigned_to == colleague.user  # handed on: the words read as critical and its worker is off duty
    assert alerts_to(colleague, case)
