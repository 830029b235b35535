"""A person who raises a case's priority by hand starts the new priority's clock: a case raised to critical calls
its worker now, with the critical ladder's short deadline, instead of waiting for the old priority's next step."""
from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from helpline.cases.models import Case, CaseStatus
from helpline.casework import actions
from helpline.roster.models import StaffProfile
from notifications.models import Notification, NotificationChannel, NotificationKind
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
CALM = "treba nam pomoć oko ogrjeva"


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=8))
    return staff


def assigned_case(text: str) -> Case:
    case = CaseFactory()
    MessageFactory(case=case, body=text)
    return actions.do_triage_case(case.pk)


def alert_channels(staff, case: Case) -> list[str]:
    rows = Notification.objects.filter(case=case, recipient=staff.user, kind=NotificationKind.ASSIGNMENT)
    return list(rows.order_by("id").values_list("channel", flat=True))


def test_a_case_raised_to_critical_by_hand_calls_its_worker_with_the_critical_deadline(clock):
    worker = on_duty()
    supervisor = on_duty(role="supervisor")
    case = assigned_case(CALM)
    assert (case.priority, case.assigned_to) == ("normal", worker.user)
    normal_deadline = case.acknowledge_by

    clock.shift(dt.timedelta(minutes=1))
    raised = actions.do_reclassify(case, by=supervisor.user, priority="critical", category="domestic_violence",
                                   reason="pozvala je, muž joj prijeti")  # fmt: skip

    assert raised.assigned_to == worker.user and raised.status == CaseStatus.ASSIGNED
    assert raised.acknowledge_by < normal_deadline  # the critical ladder's deadline, from now
    assert alert_channels(worker, case) == [NotificationChannel.SMS, NotificationChannel.SMS, NotificationChannel.VOICE]


def test_a_raised_case_whose_worker_went_off_duty_goes_to_someone_on_duty(clock):
    leaving = StaffFactory()
    ShiftFactory(staff=leaving, starts_at=START - dt.timedelta(hours=8), ends_at=START + dt.timedelta(minutes=5))
    case = assigned_case(CALM)
    assert case.assigned_to == leaving.user
    clock.shift(dt.timedelta(minutes=10))
    colleague = on_duty()
    supervisor = on_duty(role="supervisor")

    raised = actions.do_reclassify(case, by=supervisor.user, priority="critical", category="suicide_self_harm",
                                   reason="rekla je da ima tablete")  # fmt: skip

    assert raised.assigned_to in (colleague.user, supervisor.user)
    now_with = StaffProfile.objects.get(user=raised.assigned_to)
    assert NotificationChannel.VOICE in alert_channels(now_with, case)


def test_lowering_or_recategorising_by_hand_leaves_the_clock_alone(clock):
    worker = on_duty()
    supervisor = on_duty(role="supervisor")
    case = assigned_case(CALM)
    deadline = case.acknowledge_by
    clock.shift(dt.timedelta(minutes=1))

    changed = actions.do_reclassify(case, by=supervisor.user, priority="low", category="information",
                                    reason="samo pitanje")  # fmt: skip

    assert changed.acknowledge_by == deadline
    assert alert_channels(worker, case) == [NotificationChannel.SMS]
