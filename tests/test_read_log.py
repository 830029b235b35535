"""The read log: every view of a case's personal data is recorded (console page and its polling, API, admin,
voicemail playback, exports), supervisors read it per case and per staff member, and unusual reading is flagged."""
import datetime as dt

import pytest
import time_machine

from helpline.cases.models import CaseRead, CaseStatus, Channel
from helpline.cases.services import assign_case, record_read
from tests.factories import CaseFactory, MessageFactory, StaffFactory
from tests.test_console_voicemail import RecordingServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def recordings(settings):
    import base64

    token = base64.b64encode(f"{settings.TWILIO_ACCOUNT_SID}:{settings.TWILIO_AUTH_TOKEN}".encode()).decode()
    server = RecordingServer(f"Basic {token}")
    settings.TWILIO_API_BASE_URL = server.url
    yield server
    server.close()


@pytest.fixture
def worker():
    return StaffFactory(user__first_name="Amra")


@pytest.fixture
def supervisor():
    return StaffFactory(role="supervisor", user__is_staff=True, user__is_superuser=True)


def test_every_way_of_opening_a_case_is_in_its_read_log(client, worker, supervisor, recordings):
    case = CaseFactory(channel=Channel.VOICE, assigned_to=worker.user, status=CaseStatus.ASSIGNED)
    voicemail = MessageFactory(case=case, channel=Channel.VOICE, body="",
                               recording_url=f"{recordings.url}/2010-04-01/Accounts/AC0/Recordings/RE9")  # fmt: skip
    client.force_login(worker.user)
    start = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        assert client.get(f"/console/cases/{case.pk}/").status_code == 200
        clock.shift(5)
        assert client.get(f"/console/cases/{case.pk}/conversation/").status_code == 200
        clock.shift(5)
        assert client.get(f"/console/cases/{case.pk}/conversation/").status_code == 200  # the same open page
        clock.shift(5)
        assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200
        clock.shift(5)
        assert client.get(f"/console/cases/{case.pk}/voicemail/{voicemail.pk}/").status_code == 200
        client.force_login(supervisor.user)
        clock.shift(5)
        assert client.get(f"/admin/helpline/case/{case.pk}/change/").status_code == 200

        reads = list(CaseRead.objects.filter(case=case).order_by("read_at").values_list("reader_id", "via"))
        assert reads == [
            (worker.user.pk, "console"), (worker.user.pk, "poll"), (worker.user.pk, "api"),
            (worker.user.pk, "voicemail"), (supervisor.user.pk, "admin"),
        ]  # fmt: skip

        # A supervisor reads the log per case and per staff member.
        page = client.get(f"/console/privacy/cases/{case.pk}/").content.decode()
        for via in ("console", "poll", "api", "voicemail", "admin"):
            assert f"<td>{via}</td>" in page
        assert "Amra" in page
        page = client.get(f"/console/privacy/reads/staff/{worker.user.pk}/").content.decode()
        assert page.count(case.reference) == 4


@pytest.mark.parametrize(("action", "data", "answer"), [
    ("note", {"text": ""}, 400),  # a form sent empty
    ("reopen", {"reason": "opet"}, 409),  # a change the case's status does not allow
])
def test_a_case_page_shown_again_after_a_refused_action_is_in_the_read_log(client, worker, action, data, answer):
    # The page shown with the form's error is the whole case, conversation and all: it was read without a trace.
    case = CaseFactory(assigned_to=worker.user, status=CaseStatus.ASSIGNED)
    MessageFactory(case=case, body="Muž me tuče")
    client.force_login(worker.user)

    response = client.post(f"/console/cases/{case.pk}/{action}/", data)

    assert response.status_code == answer and "Muž me tuče" in response.content.decode()
    assert list(CaseRead.objects.filter(case=case).values_list("reader_id", "via")) == [(worker.user.pk, "console")]


def test_a_polled_conversation_is_logged_again_after_the_quiet_period(client, worker, settings):
    settings.READ_LOG_POLL_EVERY_SECONDS = 600
    case = CaseFactory(assigned_to=worker.user, status=CaseStatus.ASSIGNED)
    client.force_login(worker.user)
    with time_machine.travel(dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC), tick=False) as clock:
        for _ in range(3):
            client.get(f"/console/cases/{case.pk}/conversation/")
            clock.shift(60)
        clock.shift(600)
        client.get(f"/console/cases/{case.pk}/conversation/")
    assert CaseRead.objects.filter(case=case, via="poll").count() == 2


def test_the_read_log_is_for_supervisors_only(client, worker):
    case = CaseFactory(assigned_to=worker.user, status=CaseStatus.ASSIGNED)
    client.force_login(worker.user)
    assert client.get(f"/console/privacy/cases/{case.pk}/").status_code == 403
    assert client.get("/console/privacy/reads/").status_code == 403


def test_a_worker_opening_many_cases_not_theirs_in_a_day_is_flagged(client, worker, supervisor, settings):
    settings.READ_LOG_UNUSUAL_CASES_PER_DAY = 5
    curious = StaffFactory(user__first_name="Dario")
    others = [CaseFactory(status=CaseStatus.TRIAGED) for _ in range(6)]
    own = [CaseFactory(status=CaseStatus.TRIAGED) for _ in range(6)]
    for case in own:
        assign_case(case, worker.user)
    for case in own:
        record_read(case, reader=worker.user, via="console")  # their own cases: normal
    for case in others:
        record_read(case, reader=curious.user, via="console")
    for case in others[:5]:
        record_read(case, reader=worker.user, via="console")  # at the threshold, not over it
    for case in others:
        record_read(case, reader=supervisor.user, via="console")  # a supervisor's role is to read across
    client.force_login(supervisor.user)
    page = client.get("/console/privacy/reads/").content.decode()
    assert "Dario" in page and "otvorio/la 6 slučajeva koji nikad nisu bili" in page  # the console is in Bosnian
    assert page.count("nikad nisu") == 1
