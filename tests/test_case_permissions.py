"""The staff API and the console give the same answer to the same person about the same case.

For every case action, each person (the current assignee, a former assignee, a worker the case was never given
to, a supervisor) is refused or served alike by both surfaces, and leaves the case in the same state. Each test
builds the same case twice, works one copy through the API and the other through the console, and compares.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from helpline.cases import services as case_services
from helpline.cases.models import Case, CaseRead, CaseStatus, Direction
from notifications.models import Notification
from tests.factories import CaseFactory, MessageFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

ALLOWED = "allowed"
ACTIONS = ("view", "acknowledge", "start", "resolve", "reopen", "note", "reply", "reclassify", "assign")

# What each surface is sent: the API's JSON and the console's form carry the same answers.
API_DATA = {
    "start": {"reason": ""},
    "resolve": {"outcome": "Upućena u sigurnu kuću"},
    "reopen": {"reason": "javila se opet"},
    "note": {"text": "Zvati poslije 18h"},
    "reply": {"text": "Jeste li sigurni?"},
    "reclassify": {"priority": "critical", "category": "child_protection", "reason": "djeca su sama"},
}
CONSOLE_ACTION = {"assign": "reassign"}  # the console calls giving a case to someone "reassign"


def _everyone_may_see(answer: str) -> dict[str, str]:
    return {action: answer for action in ACTIONS}


# The one rule, written out: who gets what, on a case assigned to someone, and on a case nobody has yet.
EXPECTED = {
    "assigned": {
        "assignee": {**_everyone_may_see(ALLOWED), "assign": 403},
        "former assignee": {**_everyone_may_see(403), "view": ALLOWED},
        "other worker": _everyone_may_see(404),
        # Its worker has not acknowledged it: starting is theirs (it takes the case); a supervisor takes it first.
        "supervisor": {**_everyone_may_see(ALLOWED), "start": 409},
    },
    "unassigned": {
        # To reopen, the case is resolved first: closed from the queue, it is no longer in the worker's sight.
        "other worker": {**_everyone_may_see(403), "view": ALLOWED, "acknowledge": ALLOWED, "reopen": 404},
        # A triaged case must be taken before work on it starts: a state rule (409), the same for both surfaces.
        "supervisor": {**_everyone_may_see(ALLOWED), "start": 409},
    },
}
MATRIX = [
    (situation, person, action) for situation, people in EXPECTED.items() for person in people for action in ACTIONS
]


@pytest.fixture
def people():
    return {
        "assignee": StaffFactory(phone="+38761300001", user__first_name="Amra"),
        "former assignee": StaffFactory(phone="+38761300002", user__first_name="Berin"),
        "other worker": StaffFactory(phone="+38761300003", user__first_name="Dario"),
        "supervisor": StaffFactory(role="supervisor", phone="+38761300009", user__first_name="Sanja"),
        "colleague": StaffFactory(phone="+38761300004", user__first_name="Emina"),  # whom a case is given to
    }


def build_case(situation: str, action: str, people) -> Case:
    """A high-priority SMS case, in the status the action needs: assigned to Berin first and to Amra since, or
    waiting in the triaged queue."""
    case = CaseFactory(status=CaseStatus.TRIAGED, priority="high", category="domestic_violence")
    MessageFactory(case=case, body="Muž me tuče")
    if situation == "assigned":
        case = case_services.assign_case(case, people["former assignee"].user, explanation="triage")
        case = case_services.assign_case(case, people["assignee"].user, explanation="handover")
    if action == "reopen":
        case = case_services.change_case_status(case, CaseStatus.RESOLVED, reason="resolved earlier")
    return Case.objects.get(pk=case.pk)


def state_of(case: Case) -> dict:
    """What a person would notice about the case afterwards; ids and references differ between the two copies."""
    case = Case.objects.get(pk=case.pk)
    return {
        "status": case.status,
        "assigned_to": case.assigned_to_id,
        "priority": case.priority,
        "category": case.category,
        "acknowledged": case.acknowledged_at is not None,
        "timeline": list(case.timeline.order_by("id").values_list("kind", "actor_id")),
        "replies": list(case.messages.filter(direction=Direction.OUTBOUND).values_list("body", flat=True)),
        "notifications": sorted(
            Notification.objects.filter(case=case).values_list("kind", "recipient_id", "channel", "status")
        ),
        "read_by": list(CaseRead.objects.filter(case=case).values_list("reader_id", flat=True)),
    }


def sent_for(action: str, case: Case) -> dict:
    """The action's answers; a resolution also says which message the page or app showed last (the case's)."""
    data = API_DATA.get(action, {})
    if action == "resolve":
        data = {**data, "seen_message_id": case.messages.latest("pk").pk}
    return data


def through_api(action: str, case: Case, user, people) -> tuple[object, str]:
    client = APIClient()
    client.force_authenticate(user=user)  # how a person signs in is not the point here: what they may do is
    if action == "view":
        response = client.get(f"/api/v1/cases/{case.pk}/")
    else:
        data = {"staff_id": people["colleague"].user.pk} if action == "assign" else sent_for(action, case)
        response = client.post(f"/api/v1/cases/{case.pk}/{action}/", data, format="json")
    answer = ALLOWED if response.status_code in (200, 201) else response.status_code
    detail = response.json().get("detail", "") if answer == 403 else ""
    return answer, str(detail)


def through_console(action: str, case: Case, user, people) -> tuple[object, str]:
    client = Client()
    client.force_login(user)
    if action == "view":
        response = client.get(f"/console/cases/{case.pk}/")
        return (ALLOWED if response.status_code == 200 else response.status_code), response.content.decode()
    data = {"staff": people["colleague"].pk} if action == "assign" else sent_for(action, case)
    response = client.post(f"/console/cases/{case.pk}/{CONSOLE_ACTION.get(action, action)}/", data)
    assert response.status_code != 400, response.content.decode()  # the data is valid: any refusal is the rule's
    return (ALLOWED if response.status_code == 302 else response.status_code), response.content.decode()


@pytest.mark.parametrize(("situation", "person", "action"), MATRIX)
def test_the_api_and_the_console_answer_alike(people, situation, person, action):
    user = people[person].user
    api_case, console_case = build_case(situation, action, people), build_case(situation, action, people)
    before = state_of(api_case)
    assert state_of(console_case) == before

    api_answer, api_reason = through_api(action, api_case, user, people)
    console_answer, console_page = through_console(action, console_case, user, people)

    expected = EXPECTED[situation][person][action]
    assert (api_answer, console_answer) == (expected, expected)
    api_state, console_state = state_of(api_case), state_of(console_case)
    if expected == 409:  # the console shows the whole case again with the reason, a read; the API only the reason
        assert console_state["read_by"] == [*api_state["read_by"], user.pk]
        console_state["read_by"] = api_state["read_by"]
    assert api_state == console_state
    if expected == ALLOWED:
        assert state_of(api_case) != before  # something happened, and it was the same thing on both surfaces
    else:
        assert state_of(api_case) == before  # a refusal changes nothing
    if expected == 403:
        assert api_reason and escape(api_reason) in console_page  # and is explained in the same words


@pytest.mark.parametrize("person", ["assignee", "former assignee", "supervisor"])
def test_a_read_is_recorded_alike_by_both_surfaces(people, person):
    case = build_case("assigned", "view", people)
    user = people[person].user
    through_api("view", case, user, people)
    through_console("view", case, user, people)
    assert set(CaseRead.objects.filter(case=case).values_list("reader_id", "via")) == {
        (user.pk, "api"), (user.pk, "console"),
    }  # fmt: skip


def test_a_former_assignee_still_reads_the_case_but_the_current_one_acts_on_it(people):
    """The story the matrix encodes: Berin had the case, Amra has it now."""
    case = build_case("assigned", "note", people)
    assert through_api("view", case, people["former assignee"].user, people)[0] == ALLOWED
    assert through_console("note", case, people["former assignee"].user, people)[0] == 403
    assert through_console("note", case, people["assignee"].user, people)[0] == ALLOWED
    assert through_api("acknowledge", case, people["assignee"].user, people)[0] == ALLOWED
    assert Case.objects.get(pk=case.pk).status == CaseStatus.ACKNOWLEDGED


# A Django account without a staff profile (an admin-only account, say) is nobody on a case: the console says so
# (403), and the staff API must not show it more.
def test_a_signed_in_user_without_a_staff_profile_reads_no_case_through_either_surface(people):
    outsider = UserFactory(username="not-staff")
    case = build_case("unassigned", "view", people)
    api = APIClient()
    api.force_authenticate(user=outsider)

    listed = api.get("/api/v1/cases/")
    assert listed.status_code == 403
    assert through_console("view", case, outsider, people)[0] == 403
    assert through_api("view", case, outsider, people)[0] == 403
    assert not CaseRead.objects.filter(case=case).exists()


def test_a_signed_in_user_without_a_staff_profile_gets_the_same_answer_from_both_surfaces(people):
    outsider = UserFactory(username="not-staff")
    answers = {}
    for action in ACTIONS:
        api_case, console_case = build_case("unassigned", action, people), build_case("unassigned", action, people)
        answers[action] = (
            through_api(action, api_case, outsider, people)[0],
            through_console(action, console_case, outsider, people)[0],
        )
    assert all(api == console for api, console in answers.values()), answers


@pytest.mark.parametrize("action", [action for action in ACTIONS if action != "view"])
def test_a_signed_in_user_without_a_staff_profile_changes_nothing_on_either_surface(people, action):
    outsider = UserFactory(username="not-staff")
    api_case, console_case = build_case("unassigned", action, people), build_case("unassigned", action, people)
    before = state_of(api_case)

    api_answer, _ = through_api(action, api_case, outsider, people)
    console_answer, _ = through_console(action, console_case, outsider, people)

    assert api_answer in (403, 404) and console_answer in (403, 404)
    assert state_of(api_case) == state_of(console_case) == before


def resolved_case_nobody_has(status: str = CaseStatus.RESOLVED) -> Case:
    """A case closed from the queue before anyone took it (a duplicate, a test message): nobody has it."""
    case = CaseFactory(
        status=CaseStatus.TRIAGED, priority="high", category="domestic_violence", contact_name="Lejla Hodžić",
        safe_contact_note="Samo SMS, muž čita poruke",
    )  # fmt: skip
    MessageFactory(case=case, body="Muž me tuče")
    case_services.change_case_status(case, status, reason="closed from the queue")
    return Case.objects.get(pk=case.pk)


@pytest.mark.parametrize("status", [CaseStatus.RESOLVED, CaseStatus.CLOSED])
@pytest.mark.parametrize("surface", [through_api, through_console])
def test_a_worker_neither_reads_nor_takes_a_closed_case_nobody_has(people, status, surface):
    """Taking it would reopen it onto their desk and show them the contact details it keeps masked."""
    case = resolved_case_nobody_has(status)
    before = state_of(case)
    worker = people["other worker"].user

    assert surface("view", case, worker, people)[0] == 404
    assert surface("acknowledge", case, worker, people)[0] == 404

    assert state_of(case) == before
    assert (case.status, case.assigned_to_id) == (status, None)


def test_a_worker_does_not_find_a_closed_case_nobody_has_in_the_list_or_the_search(people):
    closed, waiting = resolved_case_nobody_has(), build_case("unassigned", "view", people)
    api = APIClient()
    api.force_authenticate(user=people["other worker"].user)
    console = Client()
    console.force_login(people["other worker"].user)

    listed = {row["id"] for row in api.get("/api/v1/cases/", {"page_size": 100}).json()["results"]}
    found = console.get("/console/search/", {"search": ""}).content.decode()

    assert waiting.pk in listed and closed.pk not in listed
    assert f"/console/cases/{waiting.pk}/" in found and f"/console/cases/{closed.pk}/" not in found


def test_a_supervisor_still_reads_a_closed_case_nobody_has_but_reopens_it_rather_than_taking_it(people):
    case = resolved_case_nobody_has()
    supervisor = people["supervisor"].user

    assert through_api("view", case, supervisor, people)[0] == ALLOWED
    assert through_console("view", case, supervisor, people)[0] == ALLOWED
    assert through_api("acknowledge", case, supervisor, people)[0] == 409
    assert through_console("acknowledge", case, supervisor, people)[0] == 409
    assert (Case.objects.get(pk=case.pk).status, Case.objects.get(pk=case.pk).assigned_to_id) == (
        CaseStatus.RESOLVED, None,
    )  # fmt: skip
