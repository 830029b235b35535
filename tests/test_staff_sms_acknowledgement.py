"""A worker takes a case by texting back "OK": the most urgent waiting case first, and only with a code they were
sent. Everything else changes nothing, is answered, and is flagged on the case's timeline when the case is known.
The SMS arrive through the signed Twilio webhook, as from a real staff phone."""

from __future__ import annotations

import datetime as dt
import html

import pytest
import time_machine

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from notifications import ladder, texts
from notifications.models import Notification
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
WORKER_PHONE = "+38761200300"
COLLEAGUE_PHONE = "+38761200301"
CRITICAL_TEXT = "ubit će me, ima nož"
NORMAL_TEXT = "treba nam pomoć oko ogrjeva"


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


def new_case(text: str) -> Case:
    """A citizen's case, triaged and given (by the assignment policy) to whoever is on duty."""
    case = CaseFactory()
    MessageFactory(case=case, body=text)
    actions.do_triage_case(case.pk)
    return Case.objects.get(pk=case.pk)


def code_sent(staff, case: Case) -> str:
    return Notification.objects.filter(recipient=staff.user, case=case).values_list("ack_code", flat=True).first()


def reply_text(response) -> str:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    return html.unescape(response.content.decode().split("<Message>")[1].split("</Message>")[0])


def is_waiting(case: Case) -> bool:
    case.refresh_from_db()
    return case.status == CaseStatus.ASSIGNED and case.acknowledged_at is None and case.escalation_due_at is not None


def flags_on(case: Case) -> list[dict]:
    return list(case.timeline.filter(kind=EventKind.FLAGGED).values_list("details", flat=True))


@pytest.mark.parametrize("critical_first", [True, False], ids=["critical first", "critical second"])
def test_a_plain_ok_takes_the_critical_case_and_the_normal_one_still_waits(clock, twilio, critical_first):
    worker = on_duty(phone=WORKER_PHONE)
    if critical_first:
        critical = new_case(CRITICAL_TEXT)
        normal = new_case(NORMAL_TEXT)
    else:
        normal = new_case(NORMAL_TEXT)
        # 14 minutes on, the normal case's deadline (15 min) comes before the critical one's (2 min): only the
        # priority's rank, not the nearest deadline or the priority's text, makes the critical case the first.
        clock.shift(dt.timedelta(minutes=14))
        critical = new_case(CRITICAL_TEXT)
        assert normal.acknowledge_by < critical.acknowledge_by
    assert (critical.priority, normal.priority) == ("critical", "normal")
    assert critical.assigned_to == normal.assigned_to == worker.user

    response = twilio.sms("OK", sid="SMok1", from_number=WORKER_PHONE)

    assert reply_text(response) == texts.acknowledged(critical)
    critical.refresh_from_db()
    assert critical.status == CaseStatus.ACKNOWLEDGED and critical.escalation_due_at is None
    assert is_waiting(normal)

    second = twilio.sms("OK", sid="SMok2", from_number=WORKER_PHONE)  # the next OK takes the next case
    assert reply_text(second) == texts.acknowledged(normal)
    normal.refresh_from_db()
    assert normal.status == CaseStatus.ACKNOWLEDGED
    assert reply_text(twilio.sms("OK", sid="SMok3", from_number=WORKER_PHONE)) == texts.nothing_to_acknowledge()


def test_the_same_ok_delivered_twice_takes_one_case_and_gets_the_same_answer(clock, twilio):
    # Twilio sends a webhook again when our answer was slow; the second copy once took the next case too.
    on_duty(phone=WORKER_PHONE)
    first_case, second_case = new_case(CRITICAL_TEXT), new_case(NORMAL_TEXT)
    first = twilio.sms("OK", sid="SMsame", from_number=WORKER_PHONE)
    again = twilio.sms("OK", sid="SMsame", from_number=WORKER_PHONE)
    assert reply_text(first) == reply_text(again) == texts.acknowledged(first_case)
    assert is_waiting(second_case)


def test_ok_with_a_reference_from_a_staff_phone_never_notified_changes_nothing(clock, twilio):
    on_duty(phone=WORKER_PHONE)
    colleague = StaffFactory(phone=COLLEAGUE_PHONE)  # a registered staff phone, told about nothing
    case = new_case(NORMAL_TEXT)

    response = twilio.sms(f"OK {case.reference.lower()}", sid="SMref", from_number=COLLEAGUE_PHONE)

    assert reply_text(response) == texts.use_the_code()
    assert is_waiting(case) and case.assigned_to != colleague.user
    [flag] = flags_on(case)
    assert flag["staff_id"] == colleague.user_id and "reference" in flag["reason"]
    assert Case.objects.count() == 1  # a staff SMS is a command, never a citizen case


def test_a_wrong_code_changes_nothing(clock, twilio):
    worker = on_duty(phone=WORKER_PHONE)
    case = new_case(NORMAL_TEXT)
    wrong = f"{(int(code_sent(worker, case)) + 1) % 10_000:04d}"

    response = twilio.sms(f"OK {wrong}", sid="SMwrong", from_number=WORKER_PHONE)

    assert reply_text(response) == texts.code_not_recognised()
    assert is_waiting(case)
    assert not case.timeline.filter(kind=EventKind.ACKNOWLEDGED).exists()


def test_a_code_sent_to_someone_else_changes_nothing_and_the_right_person_then_takes_the_case(clock, twilio):
    worker = on_duty(phone=WORKER_PHONE)
    colleague = StaffFactory(phone=COLLEAGUE_PHONE)  # off duty, never told about the case
    case = new_case(NORMAL_TEXT)
    code = code_sent(worker, case)

    response = twilio.sms(f"OK {code}", sid="SMtheirs", from_number=COLLEAGUE_PHONE)

    assert reply_text(response) == texts.code_not_recognised()
    assert is_waiting(case) and case.assigned_to == worker.user
    assert not Notification.objects.filter(recipient=colleague.user).exists()
    assert Notification.objects.get(recipient=worker.user, case=case).ack_code_used_at is None  # still usable

    response = twilio.sms(f"OK {code}", sid="SMmine", from_number=WORKER_PHONE)

    assert reply_text(response) == texts.acknowledged(case)
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED and case.assigned_to == worker.user
    assert case.timeline.get(kind=EventKind.ACKNOWLEDGED).details["via"] == "SMS"


def test_a_used_code_sent_again_changes_nothing_and_is_flagged(clock, twilio):
    worker = on_duty(phone=WORKER_PHONE)
    case = new_case(NORMAL_TEXT)
    code = code_sent(worker, case)
    assert reply_text(twilio.sms(f"OK {code}", sid="SMfirst", from_number=WORKER_PHONE)) == texts.acknowledged(case)
    case.refresh_from_db()
    taken = (case.status, case.acknowledged_at, case.timeline.filter(kind=EventKind.ACKNOWLEDGED).count())

    clock.shift(dt.timedelta(minutes=5))
    response = twilio.sms(f"OK {code}", sid="SMagain", from_number=WORKER_PHONE)

    assert reply_text(response) == texts.code_already_used(case)
    case.refresh_from_db()
    assert (case.status, case.acknowledged_at, case.timeline.filter(kind=EventKind.ACKNOWLEDGED).count()) == taken
    [flag] = flags_on(case)
    assert flag["staff_id"] == worker.user_id


def test_a_code_that_came_again_on_a_case_since_closed_takes_the_case_still_waiting(clock, twilio):
    # Four digits repeat among a night's alerts: the newest message with the code won, so "OK 4821" was refused
    # as used (its case closed) while the case the worker meant went on escalating.
    worker = on_duty(phone=WORKER_PHONE)
    waiting = new_case(NORMAL_TEXT)
    code = code_sent(worker, waiting)
    clock.shift(dt.timedelta(minutes=1))
    closed = new_case(CRITICAL_TEXT)
    Notification.objects.filter(case=closed).update(ack_code=code)
    Case.objects.filter(pk=closed.pk).update(status=CaseStatus.RESOLVED)

    response = twilio.sms(f"OK {code}", sid="SMsamecode", from_number=WORKER_PHONE)

    assert reply_text(response) == texts.acknowledged(waiting)
    waiting.refresh_from_db()
    assert waiting.status == CaseStatus.ACKNOWLEDGED


def test_a_used_code_cannot_take_the_case_back_after_it_was_given_to_someone_else(clock, twilio):
    worker = on_duty(phone=WORKER_PHONE)
    colleague = on_duty(phone=COLLEAGUE_PHONE)
    supervisor = StaffFactory(role="supervisor", phone="+38761200309")
    case = new_case(NORMAL_TEXT)
    old_code = code_sent(case.assigned_to.staff_profile, case)
    first, second = (worker, colleague) if case.assigned_to == worker.user else (colleague, worker)
    first_phone = str(first.phone)
    twilio.sms(f"OK {old_code}", sid="SMtaken", from_number=first_phone)
    actions.do_assign(case, by=supervisor.user, staff=second)  # waiting again, for the other worker now
    assert is_waiting(case) and case.assigned_to == second.user

    response = twilio.sms(f"OK {old_code}", sid="SMback", from_number=first_phone)

    assert reply_text(response) == texts.code_already_used(case)
    assert is_waiting(case) and case.assigned_to == second.user
    assert [flag["staff_id"] for flag in flags_on(case)] == [first.user_id]

    new_code = code_sent(second, case)  # the person it was given to takes it with their own code
    assert reply_text(twilio.sms(f"OK {new_code}", sid="SMnew", from_number=str(second.phone))) == texts.acknowledged(
        case
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED and case.assigned_to == second.user


def test_a_plain_ok_after_the_ladder_gave_a_case_away_takes_the_workers_own_case(clock, twilio):
    worker = on_duty(phone=WORKER_PHONE)
    normal = new_case(NORMAL_TEXT)
    critical = new_case(CRITICAL_TEXT)
    colleague = on_duty(phone=COLLEAGUE_PHONE)  # comes on duty after both were assigned
    assert normal.assigned_to == critical.assigned_to == worker.user
    for minutes in (2, 3):  # the critical case: a reminder, then given to the colleague
        clock.move_to(START + dt.timedelta(minutes=minutes))
        ladder.run_due_escalations()
    critical.refresh_from_db()
    assert critical.assigned_to == colleague.user

    response = twilio.sms("OK", sid="SMmine", from_number=WORKER_PHONE)

    assert reply_text(response) == texts.acknowledged(normal)
    normal.refresh_from_db()
    assert normal.status == CaseStatus.ACKNOWLEDGED
    assert is_waiting(critical) and critical.assigned_to == colleague.user


def test_a_deactivated_login_takes_its_phones_staff_powers_with_it(clock, twilio):
    # Only the staff profile was checked: after the Django user was deactivated, "OK" from their phone still took
    # a critical case and stopped its ladder, and the ladder kept calling them as a supervisor.
    worker = on_duty(phone=WORKER_PHONE)
    case = new_case(CRITICAL_TEXT)
    worker.user.is_active = False
    worker.user.save()

    twilio.sms("OK", sid="SMgone1", from_number=WORKER_PHONE)
    case.refresh_from_db()
    assert case.acknowledged_at is None
    worker.refresh_from_db()
    assert not worker.is_active


def test_a_plain_ok_from_a_supervisors_number_does_not_take_a_colleagues_escalated_case(clock, twilio):
    # All a forged sender number needed: the centre's most urgent escalated case was taken and its ladder stopped,
    # the supervisor none the wiser. With the message's code it is taken as before.
    on_duty(phone=WORKER_PHONE)
    supervisor = StaffFactory(role="supervisor", phone=COLLEAGUE_PHONE)  # off duty: told by the ladder's later steps
    case = new_case(CRITICAL_TEXT)
    from notifications import ladder

    for minutes in (2, 3):  # not taken: a reminder, then nobody to reassign to, so every supervisor is told
        clock.move_to(START + dt.timedelta(minutes=minutes))
        ladder.run_due_escalations()
    assert code_sent(supervisor, case)

    assert reply_text(twilio.sms("OK", sid="SMsup1", from_number=COLLEAGUE_PHONE)) == texts.use_the_code()
    assert Case.objects.get(pk=case.pk).acknowledged_at is None
    reply = twilio.sms(f"OK {code_sent(supervisor, case)}", sid="SMsup2", from_number=COLLEAGUE_PHONE)
    assert Case.objects.get(pk=case.pk).acknowledged_at is not None, reply_text(reply)
