"""Oversized requests get a clear 413 on every surface, a citizen's long message is never cut without a word, and
the logs of an SMS's whole way (intake, triage, the worker's alert, a staff reply) carry no full number and none of
the citizen's or the worker's words."""
import logging
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from helpline.cases.models import Case, Message
from helpline.casework import actions
from helpline.operations.logs import RedactPhoneNumbers
from notifications import outbox
from notifications.models import Notification
from tests.factories import CaseFactory, ShiftFactory, StaffFactory
from tests.tokens import api_token

pytestmark = pytest.mark.django_db

CITIZEN = "+38761987654"
WORDS = "Otac me zatvorio u podrum i uzeo mi telefon"
REPLY = "Policija je obaviještena, drži se, zovemo te za deset minuta"


@pytest.fixture
def oversized(settings):
    return "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_an_oversized_public_form_is_a_413_and_nothing_is_stored(client, oversized, encoding):
    if encoding == "urlencoded":  # as a browser sends the form
        body = urlencode({"message": oversized})
        response = client.post("/inquiry/", body, content_type="application/x-www-form-urlencoded")
    else:  # within the upload cap, so Django's own cap meets it when the form is read
        response = client.post("/inquiry/", {"message": oversized})
    assert response.status_code == 413
    assert not Case.objects.exists()


def test_an_oversized_api_inquiry_is_a_json_413(client, oversized):
    response = client.post("/api/v1/inquiries/", {"message": oversized}, content_type="application/json")
    assert response.status_code == 413 and response.json()["detail"]
    assert not Case.objects.exists()


def test_an_oversized_staff_api_request_is_a_413():
    staff = StaffFactory(role="supervisor")
    case = CaseFactory(assigned_to=staff.user, status="assigned")
    api = APIClient(HTTP_AUTHORIZATION=f"Token {api_token(staff.user)}")
    text = "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    assert api.post(f"/api/v1/cases/{case.pk}/note/", {"text": text}, format="json").status_code == 413


def test_an_oversized_signed_webhook_is_a_413(twilio, oversized):
    assert twilio.sms(oversized, sid="SM-big").status_code == 413
    assert not Case.objects.exists()


def test_a_signed_sms_longer_than_twilio_sends_is_kept_up_to_the_cap(twilio, caplog):
    body = "Pomozite. " + "a" * 2500
    with caplog.at_level(logging.WARNING):
        response = twilio.sms(body, sid="SM-long", from_number=CITIZEN)
    assert response.status_code == 200
    stored = Message.objects.get().body
    assert stored == body[: django_settings.SMS_MAX_LENGTH]
    assert "cut to 1600" in caplog.text and "Pomozite" not in caplog.text


def test_a_web_message_over_the_limit_comes_back_whole_with_its_length_said(client):
    too_long = "Pomozite mi." * 430  # 5,160 characters
    page = client.get("/inquiry/").content.decode()
    assert 'maxlength="5000"' not in page  # a browser would cut a pasted text without a word
    response = client.post("/inquiry/", {"message": too_long})
    assert response.status_code == 400
    text = response.content.decode()
    assert too_long in text  # still in the box, nothing lost
    assert "5000" in text and "5160" in text
    assert not Case.objects.exists()


def _everything_logged(records) -> str:
    lines = []
    for record in records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


def test_the_logs_of_an_sms_on_its_whole_way_carry_no_number_and_no_words(twilio, settings, caplog):
    settings.SMS_BACKEND = "console"  # the development default: it writes what it "sends" to the log
    worker = StaffFactory(phone="+38762555111")
    ShiftFactory(staff=worker)
    with caplog.at_level(logging.DEBUG):
        assert twilio.sms(WORDS, sid="SM-logs", from_number=CITIZEN).status_code == 200
        case = actions.do_triage_case(Case.objects.get().pk)
        assert case.assigned_to == worker.user
        actions.do_second_look()
        case.refresh_from_db()
        actions.do_reply(case, by=worker.user, text=REPLY)
        sent = [outbox.deliver(pk) for pk in Notification.objects.values_list("pk", flat=True)]
    # A child locked in a cellar: the rules' first alert, then the model's second look makes it critical (an alert
    # by SMS and by a call), and the reply to the citizen.
    assert case.priority == "critical" and len(sent) == 4
    logged = _everything_logged(caplog.records)
    assert case.reference in logged and "[console sms]" in logged
    for secret in (CITIZEN, "+38762555111", WORDS, "podrum", REPLY, "Policija"):
        assert secret not in logged, secret
    assert "+38761 *** 654" in logged


def test_a_number_that_reaches_a_log_line_anyway_leaves_masked():
    record = logging.LogRecord("twilio.http_client", logging.INFO, __file__, 1, "Query Params: %s", ({"To": CITIZEN},),
                               None)  # fmt: skip
    RedactPhoneNumbers().filter(record)
    assert CITIZEN not in record.getMessage() and "+38761 *** 654" in record.getMessage()


def test_access_log_lines_leave_out_the_query_string():
    from pathlib import Path

    config = {}
    exec(Path("deploy/gunicorn.conf.py").read_text(), config)  # noqa: S102 - our own config file
    assert "%(U)s" in config["access_log_format"] and "%(r)s" not in config["access_log_format"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/cases/?assigned_to=²", "/api/v1/cases/?page_size=²", "/api/v1/cases/²/",
        "/console/search/?assigned_to=²",
    ],
)
def test_a_digit_that_is_not_a_number_is_a_clear_answer_not_a_500(client, path):
    # str.isdigit() takes "²", which int() refuses: these were 500s.
    supervisor = StaffFactory(role="supervisor")
    client.force_login(supervisor.user)
    response = client.get(path)
    assert response.status_code in (200, 302, 400, 404)


@pytest.mark.django_db
def test_a_token_login_with_an_overlong_username_is_a_400(client):
    response = client.post(
        "/api/v1/auth/token/", {"username": "x" * 300, "password": "nije"}, content_type="application/json"
    )
    assert response.status_code == 400
