"""A worker's reply reaches the person the way they allowed, or is refused with why: never stored as sent when
nobody can read it."""
import pytest

from helpline.cases.models import CaseStatus, Channel, Direction
from helpline.casework import actions
from notifications.models import Notification
from tests.factories import CaseFactory, StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker():
    return StaffFactory(phone="+38761300001")


def voice_case(worker, **fields):
    return CaseFactory(channel=Channel.VOICE, status=CaseStatus.ACKNOWLEDGED, assigned_to=worker.user, **fields)


def test_a_caller_never_asked_about_sms_is_not_texted(worker):
    case = voice_case(worker)
    with pytest.raises(actions.CannotReach):
        actions.do_reply(case, by=worker.user, text="Jeste li sigurni?")
    assert not Notification.objects.filter(kind="citizen_reply").exists()
    assert not case.messages.filter(direction=Direction.OUTBOUND).exists()


def test_a_caller_who_said_sms_is_safe_is_texted(worker):
    case = voice_case(worker, safe_to_text=True)
    actions.do_reply(case, by=worker.user, text="Jeste li sigurni?")
    sms = Notification.objects.get(kind="citizen_reply")
    assert str(sms.to_number) == str(case.caller.phone)


def test_a_texters_reply_still_goes_by_sms(worker):
    case = CaseFactory(channel=Channel.SMS, status=CaseStatus.ACKNOWLEDGED, assigned_to=worker.user)
    actions.do_reply(case, by=worker.user, text="Jeste li sigurni?")
    assert Notification.objects.filter(kind="citizen_reply").exists()


def test_a_reply_to_a_withheld_number_is_refused_and_says_why(client, worker):
    case = voice_case(worker, caller=None, safe_to_text=True)
    client.force_login(worker.user)
    response = client.post(f"/console/cases/{case.pk}/reply/", {"text": "Jeste li sigurni?"}, follow=True)
    page = response.content.decode()
    assert response.status_code == 409 and "Vaš odgovor je poslan" not in page  # not "your reply is on its way"
    # "The number was withheld ... a call back is not possible either", in the console's Bosnian.
    assert "skriven" in page and "povratni poziv nije moguć" in page
    assert "Jeste li sigurni?" in page  # what the worker wrote is kept in the form
    assert not case.messages.filter(direction=Direction.OUTBOUND).exists()


def test_the_api_answers_409_for_a_reply_nobody_could_read(worker):
    from tests.test_staff_api import client_for

    case = voice_case(worker, caller=None)
    response = client_for(worker).post(f"/api/v1/cases/{case.pk}/reply/", {"text": "x"}, format="json")
    assert response.status_code == 409 and "skriven" in response.json()["detail"]


def test_what_a_caller_said_on_the_phone_about_sms_is_recorded_and_lets_the_reply_go(client, worker):
    case = voice_case(worker)
    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    assert f"/cases/{case.pk}/safe-contact/" in page
    response = client.post(f"/console/cases/{case.pk}/safe-contact/", {"safe_to_call": "no", "safe_to_text": "yes"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.safe_to_call, case.safe_to_text) == (False, True)
    event = case.timeline.get(kind="safe_contact_recorded")
    assert event.actor == worker.user and event.details["safe_to_text"] is True
    assert "SMS" in client.get(f"/console/cases/{case.pk}/").content.decode()
    actions.do_reply(case, by=worker.user, text="Jeste li sigurni?")
    assert Notification.objects.filter(kind="citizen_reply").exists()


def test_only_the_cases_worker_or_a_supervisor_records_safe_contact(client, worker):
    case = voice_case(worker)
    client.force_login(StaffFactory(phone="+38761300002").user)
    response = client.post(f"/console/cases/{case.pk}/safe-contact/", {"safe_to_call": "", "safe_to_text": "yes"})
    assert response.status_code == 404
    case.refresh_from_db()
    assert case.safe_to_text is None


# --- The same record through the staff API (the mobile app) ---------------------------------------------------


def api_for(staff):
    from tests.test_staff_api import client_for

    return client_for(staff)


def test_the_app_records_what_a_caller_said_about_sms_and_the_reply_then_goes(worker):
    case = voice_case(worker)
    client = api_for(worker)

    response = client.post(f"/api/v1/cases/{case.pk}/safe-contact/", {"safe_to_call": False, "safe_to_text": True},
                           format="json")  # fmt: skip

    assert response.status_code == 200
    assert (response.json()["safe_to_call"], response.json()["safe_to_text"]) == (False, True)
    case.refresh_from_db()
    assert (case.safe_to_call, case.safe_to_text) == (False, True)
    event = case.timeline.get(kind="safe_contact_recorded")
    assert event.actor == worker.user and event.details["safe_to_text"] is True
    reply = client.post(f"/api/v1/cases/{case.pk}/reply/", {"text": "Jeste li sigurni?"}, format="json")
    assert reply.status_code == 201
    assert Notification.objects.filter(kind="citizen_reply").exists()


def test_the_app_records_not_asked_as_null(worker):
    case = voice_case(worker, safe_to_call=True, safe_to_text=True)
    response = api_for(worker).post(f"/api/v1/cases/{case.pk}/safe-contact/",
                                    {"safe_to_call": True, "safe_to_text": None}, format="json")  # fmt: skip
    assert response.status_code == 200
    case.refresh_from_db()
    assert (case.safe_to_call, case.safe_to_text) == (True, None)


def test_a_supervisor_records_safe_contact_through_the_app(worker):
    case = voice_case(worker)
    supervisor = StaffFactory(role="supervisor", phone="+38761300009")
    response = api_for(supervisor).post(f"/api/v1/cases/{case.pk}/safe-contact/",
                                        {"safe_to_call": None, "safe_to_text": True}, format="json")  # fmt: skip
    assert response.status_code == 200
    assert case.timeline.get(kind="safe_contact_recorded").actor == supervisor.user


def test_through_the_app_only_the_cases_worker_or_a_supervisor_records_safe_contact(worker):
    theirs = voice_case(worker)
    unassigned = CaseFactory(channel=Channel.VOICE, status=CaseStatus.TRIAGED)
    other = api_for(StaffFactory(phone="+38761300002"))
    body = {"safe_to_call": None, "safe_to_text": True}

    assert other.post(f"/api/v1/cases/{theirs.pk}/safe-contact/", body, format="json").status_code == 404
    refused = other.post(f"/api/v1/cases/{unassigned.pk}/safe-contact/", body, format="json")
    assert refused.status_code == 403 and refused.json()["detail"]
    for case in (theirs, unassigned):
        case.refresh_from_db()
        assert case.safe_to_text is None and not case.timeline.filter(kind="safe_contact_recorded").exists()


@pytest.mark.parametrize("body, wrong", [
    ({"safe_to_text": True}, "safe_to_call"),  # left out would wipe a "no" recorded before: it must be said
    ({"safe_to_call": False}, "safe_to_text"),
    ({"safe_to_call": "maybe", "safe_to_text": True}, "safe_to_call"),
    ({"safe_to_call": False, "safe_to_text": [True]}, "safe_to_text"),
])  # fmt: skip
def test_the_app_is_told_which_safe_contact_answer_is_wrong_and_nothing_is_stored(worker, body, wrong):
    case = voice_case(worker, safe_to_call=False)
    response = api_for(worker).post(f"/api/v1/cases/{case.pk}/safe-contact/", body, format="json")
    assert response.status_code == 400 and list(response.json()) == [wrong]
    assert "nije pitana" in response.json()[wrong][0]  # what to send instead, in the staff's Bosnian
    case.refresh_from_db()
    assert (case.safe_to_call, case.safe_to_text) == (False, None)
    assert not case.timeline.filter(kind="safe_contact_recorded").exists()

