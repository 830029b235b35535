"""A worker closes a case only as they last saw it: a message from the person or a new priority that came after
their page (or app) loaded stops Resolve, changes nothing, and is shown to them before they can close it."""
import re

import pytest

from helpline.cases import intake
from helpline.cases.models import CaseStatus, EventKind
from helpline.casework import actions
from tests.factories import CaseFactory, MessageFactory, StaffFactory
from tests.test_staff_api import client_for

pytestmark = pytest.mark.django_db

NEW_MESSAGE_REFUSAL = "Stigla je nova poruka otkako ste otvorili slučaj"
PRIORITY_REFUSAL = "Prioritet slučaja se promijenio otkako ste ga otvorili"


@pytest.fixture
def worker():
    return StaffFactory(phone="+38761300001")


@pytest.fixture
def case(worker):
    case = CaseFactory(status=CaseStatus.IN_PROGRESS, assigned_to=worker.user, priority="normal")
    MessageFactory(case=case, body="Treba mi savjet oko starateljstva.")
    return case


def the_citizen_writes(case, text: str, sid: str = "SMfollow1") -> None:
    intake.record_inbound_sms(message_sid=sid, from_number=str(case.caller.phone), body=text)


def seen_on(page: str) -> dict[str, str]:
    """The hidden fields the resolve form carries: what the page showed."""
    form = page[page.index("/resolve/"):]
    return dict(re.findall(r'name="(seen_\w+)" value="([^"]*)"', form[: form.index("</form>")]))


def resolve_from(client, case, page: str, outcome: str = "Savjetovana, upućena na CSR."):
    return client.post(f"/console/cases/{case.pk}/resolve/", {"outcome": outcome, **seen_on(page)})


def still_open(case) -> bool:
    case.refresh_from_db()
    return case.status == CaseStatus.IN_PROGRESS and case.resolved_at is None


def test_resolve_from_a_page_loaded_before_the_persons_new_message_is_refused_and_shows_it(client, worker, case):
    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    the_citizen_writes(case, "Vratio se, ima nož.")

    response = resolve_from(client, case, page)

    refused = response.content.decode()
    assert response.status_code == 409
    assert NEW_MESSAGE_REFUSAL in refused and "Vratio se, ima nož." in refused
    assert "Savjetovana, upućena na CSR." in refused  # what the worker wrote stays in the form
    assert still_open(case)
    assert not case.timeline.filter(kind=EventKind.STATUS_CHANGED, details__to=CaseStatus.RESOLVED).exists()

    # The page that showed the message resolves.
    assert resolve_from(client, case, refused).status_code == 302
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED


def test_resolve_from_a_page_loaded_before_the_priority_was_raised_is_refused(client, worker, case):
    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    supervisor = StaffFactory(role="supervisor", phone="+38761300009")
    actions.do_reclassify(case, by=supervisor.user, priority="critical", category=case.category, reason="Nož")

    response = resolve_from(client, case, page)

    assert response.status_code == 409 and PRIORITY_REFUSAL in response.content.decode()
    case.refresh_from_db()
    assert case.status != CaseStatus.RESOLVED and case.resolved_at is None


def test_the_workers_own_reply_after_the_page_loaded_does_not_stop_resolve(client, worker, case):
    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    actions.do_reply(case, by=worker.user, text="Javite se ako zatrebate.")

    assert resolve_from(client, case, page).status_code == 302
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED


def test_resolve_from_a_page_loaded_before_the_case_was_given_to_a_colleague_is_refused(client, worker, case):
    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    supervisor = StaffFactory(role="supervisor", phone="+38761300009")
    actions.do_assign(case, by=supervisor.user, staff=StaffFactory(phone="+38761300002"))

    # Theirs no longer: refused as any action on a colleague's case is.
    assert resolve_from(client, case, page).status_code in (403, 404)
    case.refresh_from_db()
    assert case.status != CaseStatus.RESOLVED


# --- The staff API ---------------------------------------------------------------------------------------------


def last_message_id(client, case) -> int:
    return client.get(f"/api/v1/cases/{case.pk}/").json()["messages"][-1]["id"]


def test_the_api_refuses_resolve_when_a_message_came_after_the_last_one_the_app_showed(worker, case):
    client = client_for(worker)
    shown = last_message_id(client, case)
    the_citizen_writes(case, "Vratio se, ima nož.")

    response = client.post(f"/api/v1/cases/{case.pk}/resolve/",
                           {"outcome": "Riješeno", "seen_message_id": shown, "seen_priority": "normal"},
                           format="json")  # fmt: skip

    assert response.status_code == 409 and NEW_MESSAGE_REFUSAL in response.json()["detail"]
    assert still_open(case)
    fresh = last_message_id(client, case)
    response = client.post(f"/api/v1/cases/{case.pk}/resolve/",
                           {"outcome": "Riješeno", "seen_message_id": fresh, "seen_priority": "normal"},
                           format="json")  # fmt: skip
    assert response.status_code == 200 and response.json()["status"] == CaseStatus.RESOLVED


def test_the_api_refuses_resolve_when_the_priority_differs_from_what_the_app_showed(worker, case):
    response = client_for(worker).post(f"/api/v1/cases/{case.pk}/resolve/",
                                       {"outcome": "Riješeno", "seen_priority": "low",
                                        "seen_message_id": last_message_id(client_for(worker), case)},
                                       format="json")  # fmt: skip
    assert response.status_code == 409 and PRIORITY_REFUSAL in response.json()["detail"]
    assert still_open(case)


def test_an_api_client_must_say_which_message_it_showed_before_a_case_closes(worker, case):
    response = client_for(worker).post(f"/api/v1/cases/{case.pk}/resolve/", {"outcome": "Riješeno"}, format="json")
    assert response.status_code == 400
    assert "poruku koju je osoba poslala nakon nje treba pročitati" in response.json()["seen_message_id"][0]
    assert still_open(case)


def test_the_api_refuses_a_seen_message_of_another_case(worker, case):
    elsewhere = MessageFactory(body="drugi slučaj")
    response = client_for(worker).post(f"/api/v1/cases/{case.pk}/resolve/",
                                       {"outcome": "Riješeno", "seen_message_id": elsewhere.pk}, format="json")
    assert response.status_code == 409
    assert still_open(case)


@pytest.mark.parametrize("field, value", [("seen_message_id", "zadnja"), ("seen_message_id", -1),
                                          ("seen_priority", "urgent")])  # fmt: skip
def test_the_api_says_which_seen_field_is_wrong(worker, case, field, value):
    response = client_for(worker).post(f"/api/v1/cases/{case.pk}/resolve/",
                                       {"outcome": "Riješeno", field: value}, format="json")
    assert response.status_code == 400 and field in response.json()
    assert still_open(case)
