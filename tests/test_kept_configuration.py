"""A worker keeps its configuration reads (surge mode, crisis events, escalation ladders, the triage rules) for a
second instead of asking the database for every contact. A supervisor's change made through this process is used
by the very next case; one made in another process (committed there, with no signal here) within a second."""
import datetime as dt

import pytest
import time_machine
from django.db import connection

from helpline.cases import kept_reads
from helpline.cases.models import Case
from helpline.casework import actions
from notifications.models import CrisisContact, EscalationPolicy, Notification, NotificationKind
from tests.factories import CaseFactory, MessageFactory, on_duty_worker
from triage.models import TriageRule
from triage.services import queue_for_text

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


class Seconds:
    """The monotonic clock the kept reads age on, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def seconds(monkeypatch) -> Seconds:
    clock = Seconds()
    monkeypatch.setattr(kept_reads, "seconds_now", clock)
    return clock


@pytest.fixture
def supervisor():
    return on_duty_worker(role="supervisor", phone="+38761200309")


@pytest.fixture
def worker():
    return on_duty_worker(phone="+38761200301", max_open_cases=50)


def new_case(text: str = "treba nam pomoć oko ogrjeva") -> Case:
    case = CaseFactory()
    MessageFactory(case=case, body=text)
    return actions.do_triage_case(case.pk)


def assignment_sms_to(staff) -> int:
    return Notification.objects.filter(recipient=staff.user, kind=NotificationKind.ASSIGNMENT).count()


def changed_by_another_process(sql: str, *params: object) -> None:
    """A change committed by another process: the row changes, and no signal reaches this one."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_surge_mode_switched_here_quiets_the_very_next_assignment_and_ending_it_speaks_again(
    seconds, supervisor, worker
):
    new_case()  # surge mode off is read and kept
    assert assignment_sms_to(worker) == 1
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    new_case()
    assert assignment_sms_to(worker) == 1  # no per-case SMS: the minute's digest tells them
    actions.do_end_surge(by=supervisor.user)
    new_case()
    assert assignment_sms_to(worker) == 2


def test_surge_mode_switched_in_another_process_is_used_within_a_second(seconds, supervisor, worker):
    new_case()
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    new_case()
    changed_by_another_process("UPDATE notifications_surgemode SET is_on = false, ended_at = %s", START)
    seconds.now += 0.5
    new_case()
    assert assignment_sms_to(worker) == 1  # still quiet half a second later
    seconds.now += 0.6
    new_case()
    assert assignment_sms_to(worker) == 2


def test_a_crisis_event_declared_groups_the_next_contact_and_once_ended_no_more(seconds, supervisor, worker):
    assert new_case("Poplava u Maglaju, voda ulazi u kuću").crisis_contacts.count() == 0
    flood = actions.do_declare_crisis_event(
        by=supervisor.user, title="Poplava Maglaj", places="Maglaj", answer="Odgovaramo sporije zbog poplave.",
    )  # fmt: skip
    assert new_case("Poplava u Maglaju, voda ulazi u kuću").crisis_contacts.count() == 1
    actions.do_end_crisis_event(flood, by=supervisor.user)  # an UPDATE: no signal, the action forgets itself
    new_case("Poplava u Maglaju, voda ulazi u kuću")
    assert CrisisContact.objects.filter(event=flood).count() == 1


def test_a_crisis_event_declared_in_another_process_groups_contacts_within_a_second(seconds, worker):
    assert new_case("Poplava u Maglaju, voda ulazi u kuću").crisis_contacts.count() == 0
    changed_by_another_process(
        "INSERT INTO notifications_crisisevent (title, keywords, places, categories, answer, answer_cyrillic,"
        " declared_at) VALUES ('Poplava Maglaj', '', 'Maglaj', '[]', 'Odgovaramo sporije.', '', %s)", START
    )
    seconds.now += 0.5
    assert new_case("Poplava u Maglaju, voda ulazi u kuću").crisis_contacts.count() == 0
    seconds.now += 0.6
    assert new_case("Poplava u Maglaju, voda ulazi u kuću").crisis_contacts.count() == 1


def test_an_escalation_policy_edited_in_the_admin_starts_the_next_clock_at_once(seconds, worker):
    new_case()
    policy = EscalationPolicy.objects.get(priority="normal")
    policy.acknowledge_within_minutes = 45
    policy.save()
    case = new_case()
    assert case.acknowledge_by == START + dt.timedelta(minutes=45)


def test_a_rule_added_in_another_process_decides_the_queue_within_a_second(seconds):
    assert queue_for_text("zmaj u kuhinji") == "triage"
    changed_by_another_process(
        "INSERT INTO triage_triagerule (name, category, priority, terms, can_be_negated, is_active, updated_at)"
        " VALUES ('Zmaj', 'other', 'critical', 'zmaj + kuhinj', false, true, %s)", START
    )
    assert queue_for_text("zmaj u kuhinji") == "triage"  # the request path's copy of the rules is a second old
    seconds.now += 1.1
    assert queue_for_text("zmaj u kuhinji") == "critical"
    assert TriageRule.objects.filter(name="Zmaj").exists()


def test_a_rule_a_supervisor_adds_here_decides_the_queue_at_once(seconds):
    assert queue_for_text("zmaj u kuhinji") == "triage"
    TriageRule.objects.create(name="Zmaj", category="other", priority="critical", terms="zmaj + kuhinj")
    assert queue_for_text("zmaj u kuhinji") == "critical"


def two_workers_on_duty():
    return tuple(on_duty_worker(phone=f"+3876120040{n}", max_open_cases=5, languages=["bs"]) for n in range(2))


def test_a_shift_ended_in_another_process_stops_cases_going_to_that_person_within_a_second(seconds):
    first, second = two_workers_on_duty()
    assert new_case().assigned_to in (first.user, second.user)  # who is on duty is read and kept
    ended = START - dt.timedelta(minutes=1)
    changed_by_another_process("UPDATE triage_shift SET ends_at = %s WHERE staff_id = %s", ended, first.pk)
    seconds.now += 1.1
    assert {new_case().assigned_to for _ in range(3)} == {second.user}


def test_counters_and_deactivations_from_another_process_count_for_the_very_next_case(seconds):
    first, second = two_workers_on_duty()
    new_case()  # who is on duty is read and kept
    for _ in range(3):  # another process gave the first worker three cases a moment ago
        changed_by_another_process(
            "UPDATE helpline_case SET assigned_to_id = %s, status = 'assigned' WHERE id = %s",
            first.user_id, CaseFactory().pk,
        )  # fmt: skip
    assert new_case().assigned_to == second.user  # fewest open cases, counted now, not a second ago
    changed_by_another_process("UPDATE triage_staffprofile SET is_active = false WHERE id = %s", second.pk)
    assert new_case().assigned_to == first.user
