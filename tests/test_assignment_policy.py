"""One assignment policy: triage, the escalation ladder's reassign step and a supervisor's "give it to whoever
should have it" choose the same person, by skills, then open cases, then idle time, and never the person who let
the case wait. Every assignment, whoever makes it, restarts that person's idle time."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from helpline.roster.models import StaffProfile
from notifications import ladder
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from triage.assignment import choose_assignee

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
# The shipped critical ladder: acknowledge within 2 minutes; step 1 reminds (then waits 1), step 2 reassigns.
REMINDER_DUE = START + dt.timedelta(minutes=2)
REASSIGN_DUE = START + dt.timedelta(minutes=3)
CRITICAL_TEXT = "ubit će me, ima nož"  # critical, domestic violence
SKILL = "domestic_violence"


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def on_duty(idle_since: dt.datetime | None = None, **profile) -> StaffProfile:
    staff = StaffFactory(last_assigned_at=idle_since, **profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


def triaged_critical_case() -> Case:
    case = CaseFactory()
    MessageFactory(case=case, body=CRITICAL_TEXT)
    actions.do_triage_case(case.pk)
    case = Case.objects.get(pk=case.pk)
    assert (case.priority, case.category) == ("critical", SKILL)
    return case


def give_open_cases(staff: StaffProfile, count: int) -> None:
    for _ in range(count):
        CaseFactory(assigned_to=staff.user, status=CaseStatus.ASSIGNED)


def run_the_reassign_step(clock, case: Case) -> StaffProfile | None:
    """Let the case go unacknowledged through the reminder to the reassign step. Returns whom the policy, asked
    just before the step and without the current assignee, would choose."""
    clock.move_to(REMINDER_DUE)
    assert ladder.run_due_escalations() == 1
    clock.move_to(REASSIGN_DUE)
    case.refresh_from_db()
    policy_choice = choose_assignee(case, REASSIGN_DUE, exclude=case.assigned_to_id).staff
    assert ladder.run_due_escalations() == 1
    case.refresh_from_db()
    assert case.escalation_step == 2
    actions_run = list(case.timeline.filter(kind=EventKind.ESCALATED).values_list("details__action", flat=True))
    assert actions_run == ["remind_assignee", "reassign"]
    return policy_choice


def idle_since(staff: StaffProfile) -> dt.datetime | None:
    return StaffProfile.objects.get(pk=staff.pk).last_assigned_at


def test_the_ladder_gives_the_case_to_a_skilled_worker_before_an_idle_unskilled_one(clock):
    first = on_duty(skills=[SKILL])
    skilled = on_duty(idle_since=START - dt.timedelta(minutes=30), skills=[SKILL])
    unskilled = on_duty(skills=[])  # idle all day: would win on idle time alone
    case = triaged_critical_case()
    assert case.assigned_to == first.user

    policy_choice = run_the_reassign_step(clock, case)

    assert case.assigned_to == skilled.user == policy_choice.user
    assert case.assigned_to != unskilled.user


def test_the_ladder_gives_the_case_to_the_longest_idle_among_equals(clock):
    first = on_duty()
    recently = on_duty(idle_since=START - dt.timedelta(minutes=10))
    longest = on_duty(idle_since=START - dt.timedelta(hours=2))  # created later: not the first by id
    busier = on_duty(idle_since=START - dt.timedelta(days=1))  # idle longer still, but has an open case
    give_open_cases(busier, 1)
    case = triaged_critical_case()
    assert case.assigned_to == first.user

    policy_choice = run_the_reassign_step(clock, case)

    assert case.assigned_to == longest.user == policy_choice.user
    assert case.assigned_to not in (recently.user, busier.user)


def test_the_ladder_never_gives_the_case_back_to_the_worker_who_let_it_wait(clock):
    first = on_duty()
    busy = on_duty()
    give_open_cases(busy, 2)
    case = triaged_critical_case()
    assert case.assigned_to == first.user
    assert choose_assignee(case, REASSIGN_DUE).staff == first  # still the policy's favourite, were it allowed

    policy_choice = run_the_reassign_step(clock, case)

    assert case.assigned_to == busy.user == policy_choice.user


def test_the_ladder_gives_the_case_to_the_supervisor_on_duty_when_no_other_worker_can_take_it(clock):
    first = on_duty()
    on_duty(languages=["en"])  # on duty, but does not speak the caller's language
    StaffFactory()  # speaks it, but is not on duty
    supervisor = on_duty(role="supervisor")
    case = triaged_critical_case()
    assert case.assigned_to == first.user

    policy_choice = run_the_reassign_step(clock, case)

    assert case.assigned_to == supervisor.user == policy_choice.user
    explanation = case.timeline.filter(kind=EventKind.ASSIGNED).latest("id").details["explanation"]
    assert "escalation step 2" in explanation and "supervisor on duty" in explanation


def test_the_ladders_reassignment_is_explained_on_the_case_page(clock):
    on_duty(skills=[SKILL])
    on_duty(skills=[SKILL])
    supervisor = StaffFactory(role="supervisor")
    case = triaged_critical_case()
    run_the_reassign_step(clock, case)

    client = Client()
    client.force_login(supervisor.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    assert "escalation step 2, not acknowledged in time" in page


@pytest.mark.parametrize("body", [{}, {"staff_id": None}], ids=["no staff_id", "staff_id null"])
def test_a_supervisors_assign_without_a_person_uses_the_same_policy(clock, body):
    first = on_duty(skills=[SKILL])
    skilled = on_duty(idle_since=START - dt.timedelta(minutes=30), skills=[SKILL])
    on_duty(skills=[])
    supervisor = StaffFactory(role="supervisor")
    case = triaged_critical_case()
    assert case.assigned_to == first.user
    clock.move_to(START + dt.timedelta(minutes=1))
    policy_choice = choose_assignee(case, START + dt.timedelta(minutes=1), exclude=first.user_id).staff

    response = api_client(supervisor).post(f"/api/v1/cases/{case.pk}/assign/", body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["assigned_to"]["id"] == skilled.user_id == policy_choice.user_id
    case.refresh_from_db()
    assert case.assigned_to == skilled.user and case.acknowledge_by == START + dt.timedelta(minutes=3)


def api_client(staff: StaffProfile) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=staff.user)
    return client


def test_every_assignment_restarts_the_persons_idle_time(clock):
    first = on_duty(skills=[SKILL])
    second = on_duty(idle_since=START - dt.timedelta(hours=1), skills=[SKILL])
    third = on_duty(idle_since=START - dt.timedelta(hours=3))
    fourth = on_duty(idle_since=START - dt.timedelta(hours=4))
    supervisor = on_duty(role="supervisor")

    case = triaged_critical_case()  # by triage
    assert case.assigned_to == first.user and idle_since(first) == START

    run_the_reassign_step(clock, case)  # by the ladder
    assert case.assigned_to == second.user and idle_since(second) == REASSIGN_DUE

    by_name = REASSIGN_DUE + dt.timedelta(minutes=1)  # by a supervisor naming the person, in the API
    clock.move_to(by_name)
    api = api_client(supervisor)
    assert api.post(f"/api/v1/cases/{case.pk}/assign/", {"staff_id": third.user_id}, format="json").status_code == 200
    assert idle_since(third) == by_name

    by_policy = by_name + dt.timedelta(minutes=1)  # by a supervisor leaving the choice to the policy
    clock.move_to(by_policy)
    response = api.post(f"/api/v1/cases/{case.pk}/assign/", {}, format="json")
    assert response.json()["assigned_to"]["id"] == first.user_id  # skilled, and idle longer than `second` now
    assert idle_since(first) == by_policy

    in_console = by_policy + dt.timedelta(minutes=1)  # by a supervisor in the console
    clock.move_to(in_console)
    console = Client()
    console.force_login(supervisor.user)
    assert console.post(f"/console/cases/{case.pk}/reassign/", {"staff": fourth.pk}).status_code == 302
    assert idle_since(fourth) == in_console
    assert Case.objects.get(pk=case.pk).assigned_to == fourth.user


@pytest.mark.parametrize("how", ["console take next", "console acknowledge", "api acknowledge"])
def test_taking_a_waiting_case_restarts_the_workers_idle_time(clock, how):
    worker = on_duty(idle_since=START - dt.timedelta(hours=2))
    case = CaseFactory(status=CaseStatus.TRIAGED, priority="high")
    console = Client()
    console.force_login(worker.user)
    if how == "console take next":
        assert console.post("/console/queue/take-next/").status_code == 302
    elif how == "console acknowledge":
        assert console.post(f"/console/cases/{case.pk}/acknowledge/").status_code == 302
    else:
        assert api_client(worker).post(f"/api/v1/cases/{case.pk}/acknowledge/").status_code == 200
    case.refresh_from_db()
    assert case.assigned_to == worker.user and case.status == CaseStatus.ACKNOWLEDGED
    assert idle_since(worker) == START
