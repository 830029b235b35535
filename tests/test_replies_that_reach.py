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
