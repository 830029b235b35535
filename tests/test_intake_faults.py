"""Intake never loses a contact and never answers 500: not when two texts from a new number arrive 25 ms apart,
not when Twilio delivers one webhook five times at once, not when PostgreSQL is down, not when Redis hangs."""
import datetime as dt
import json
import os
import re
import time
import uuid

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from helpline.cases import intake, selectors
from helpline.cases.citizen_code import format_code
from helpline.cases.dispatch import publish
from helpline.cases.models import Case, CaseStatus, EventKind, Message
from helpline.cases.search import cases_matching
from helpline.casework import actions
from helpline.intake import spool, staff_phones
from helpline.project.celery import app as celery_app
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL
from tests.encrypted import cases_of_number
from tests.factories import CaseFactory, StaffFactory
from tests.intake_faults import (
    FreezableRedisProxy,
    HungServer,
    broker_at,
    broker_unreachable,
    database_hung,
    database_unreachable,
    send_staggered,
    signed_sms,
)

ON_POSTGRESQL = "postgresql" in django_settings.DATABASES["default"]["ENGINE"]
requires_postgres = pytest.mark.skipif(not ON_POSTGRESQL, reason="needs concurrent transactions")
concurrent = pytest.mark.django_db(transaction=True, serialized_rollback=True)
# A database server that stops: the embedded SQLite database is a file with no server, and the tests' in-memory
# copy of it is gone once its last connection closes, so these run against PostgreSQL (CI, `make faults`).
database_server = pytest.mark.skipif(not ON_POSTGRESQL, reason="simulates PostgreSQL stopping")
SPOOLED_REFERENCE = re.compile(r"SOS-\d{4}-S[2-9A-HJKMNP-TV-Z]{6}")


@pytest.fixture(autouse=True)
def spool_directory(settings, tmp_path):
    settings.INTAKE_SPOOL_DIR = tmp_path / "spool"
    staff_phones.forget()
    return settings.INTAKE_SPOOL_DIR


def reference_in(response) -> str:
    found = re.search(r"SOS-\d{4}-S?[0-9A-Z]{5,6}", response.content.decode())
    assert found, response.content
    return found.group(0)


def assert_not_djangos_error_page(response) -> None:
    assert response.status_code < 500 or response.status_code == 503
    assert b"Server Error" not in response.content


# --- Concurrency: no deadlock, no 500, nothing lost or doubled ---------------------------------------------------


@concurrent
@requires_postgres
@pytest.mark.parametrize("gap_ms", [0, 25, 50])
def test_two_texts_from_a_new_number_are_both_stored_whatever_the_gap(twilio_settings, gap_ms):
    rounds = 6
    for round_number in range(rounds):
        number = f"+3876155{round_number:02d}{gap_ms:03d}"

        def send(index: int, number=number, round_number=round_number):
            return signed_sms(
                Client(), base_url=PUBLIC_BASE_URL, token=AUTH_TOKEN, from_number=number,
                sid=f"SMpair{gap_ms}x{round_number}x{index}", body=f"Poruka {index}",
            )  # fmt: skip

        responses, errors = send_staggered(send, [0, gap_ms / 1000])
        assert errors == []
        assert [response.status_code for response in responses] == [200, 200]
        assert Message.objects.filter(case__in=cases_of_number(number)).count() == 2
        assert cases_of_number(number).count() == 1
    assert spool.pending() == []  # stored by the intake itself, not rescued by the spool


@concurrent
@requires_postgres
def test_five_copies_of_one_webhook_at_once_are_stored_once_and_answered_alike(twilio_settings):
    for round_number in range(8):
        sid, number = f"SMfive{round_number}", f"+387617700{round_number:02d}"

        def send(_index: int, sid=sid, number=number):
            return signed_sms(Client(), base_url=PUBLIC_BASE_URL, token=AUTH_TOKEN, sid=sid, from_number=number)

        responses, errors = send_staggered(send, [0] * 5)
        assert errors == []
        assert {response.status_code for response in responses} == {200}
        assert len({response.content for response in responses}) == 1
        assert Message.objects.filter(twilio_sid=sid).count() == 1
    assert Case.objects.count() == 8
    assert spool.pending() == []


@concurrent
@requires_postgres
def test_a_web_inquiry_sent_five_times_at_once_with_one_key_opens_one_case(twilio_settings):
    key = str(uuid.uuid4())

    def send(_index: int):
        return Client().post(
            "/api/v1/inquiries/", data={"message": "Treba mi pomoć"}, content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=key,
        )  # fmt: skip

    responses, errors = send_staggered(send, [0] * 5)
    assert errors == []
    assert {response.status_code for response in responses} == {201}
    assert len({(r.json()["reference"], r.json()["token"]) for r in responses}) == 1
    assert Case.objects.filter(idempotency_key=key).count() == Case.objects.count() == 1


# --- Idempotency keys on the web -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_retried_api_inquiry_is_stored_once_and_answered_the_same(client):
    send = lambda message: client.post(  # noqa: E731
        "/api/v1/inquiries/", data={"message": message}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    first, retry = send("Pomoć"), send("Pomoć")
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json()
    assert Case.objects.count() == 1
    status = client.get(first.json()["status_url"], HTTP_X_INQUIRY_TOKEN=first.json()["token"])
    assert status.status_code == 200

    reused = send("Nešto sasvim drugo")
    assert reused.status_code == 422 and "idempotency_key" in reused.json()
    assert Case.objects.count() == 1


@pytest.mark.django_db
def test_the_form_sends_a_fresh_key_with_every_page_and_a_resubmission_is_stored_once(client):
    page = client.get("/inquiry/").content.decode()
    keys = re.findall(r'name="idempotency_key" value="([0-9a-f]{32})"', page)
    assert len(keys) == 1
    assert keys[0] not in client.get("/inquiry/").content.decode()

    form = {"message": "Muž me tuče", "idempotency_key": keys[0]}
    first, again = client.post("/inquiry/", form), client.post("/inquiry/", form)
    assert first.status_code == again.status_code == 303
    receipt = re.compile(r'class="reference">([^<]+)<.*class="code">([^<]+)<', re.DOTALL)
    reference, code = receipt.search(client.get("/inquiry/received/").content.decode()).groups()
    assert reference == Case.objects.get().reference and code == format_code(intake.token_for_idempotency_key(keys[0]))


@pytest.mark.django_db
def test_a_retried_follow_up_with_the_same_key_is_stored_once(client):
    created = client.post("/api/v1/inquiries/", data={"message": "Pomoć"}, content_type="application/json").json()
    url = f"/api/v1/inquiries/{created['reference']}/messages/"
    for _ in range(2):
        response = client.post(
            url, data={"message": "Još nešto"}, content_type="application/json",
            HTTP_X_INQUIRY_TOKEN=created["token"], HTTP_IDEMPOTENCY_KEY="follow-1",
        )  # fmt: skip
        assert response.status_code == 201
    assert list(Message.objects.values_list("body", flat=True)).count("Još nešto") == 1


@pytest.mark.django_db
def test_a_follow_up_sent_again_with_other_words_under_the_same_key_is_kept_too(client):
    # The earlier message was returned and the new words dropped, answered 201 "sent".
    created = client.post("/api/v1/inquiries/", data={"message": "Pomoć"}, content_type="application/json").json()
    url = f"/api/v1/inquiries/{created['reference']}/messages/"
    for text in ("Još nešto", "Još nešto, i opet je došao", "Još nešto, i opet je došao"):
        response = client.post(
            url, data={"message": text}, content_type="application/json",
            HTTP_X_INQUIRY_TOKEN=created["token"], HTTP_IDEMPOTENCY_KEY="follow-2",
        )  # fmt: skip
        assert response.status_code == 201
    bodies = list(Message.objects.values_list("body", flat=True))
    assert bodies.count("Još nešto") == 1 and bodies.count("Još nešto, i opet je došao") == 1


# --- PostgreSQL unreachable: spooled, answered as usual, stored once when it returns ------------------------------


@concurrent
@database_server
def test_an_sms_sent_while_the_database_is_down_is_answered_and_stored_once_it_returns(twilio):
    with database_unreachable():
        response = twilio.sms("Pomozite mi", sid="SMdown1", from_number="+38761400500")
        retried = twilio.sms("Pomozite mi", sid="SMdown1", from_number="+38761400500")
    assert_not_djangos_error_page(response)
    assert response.status_code == retried.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    reference = reference_in(response)
    assert SPOOLED_REFERENCE.fullmatch(reference)
    assert reference_in(retried) == reference  # Twilio's retry got the same answer
    assert len(spool.pending()) == 1 and Case.objects.count() == 0

    first, second = spool.replay_spool(), spool.replay_spool()
    assert (first.stored, second.stored) == (1, 0)
    case = Case.objects.get()
    assert case.reference == reference  # the reference the citizen was given is the case's
    assert case.messages.get().twilio_sid == "SMdown1"
    assert spool.pending() == []


@concurrent
@requires_postgres
def test_an_sms_sent_while_the_database_hangs_is_answered_within_seconds_and_stored_once_it_returns(twilio):
    started = time.monotonic()
    with database_hung():
        response = twilio.sms("Pomozite mi", sid="SMhung1", from_number="+38761400550")
    took = time.monotonic() - started
    assert_not_djangos_error_page(response)
    assert response.status_code == 200
    assert took < 10, f"answered after {took:.1f} s: Twilio gives up at 15 s"  # connect_timeout, not forever
    reference = reference_in(response)
    assert SPOOLED_REFERENCE.fullmatch(reference)

    assert spool.replay_spool().stored == 1
    assert Case.objects.get().reference == reference


@concurrent
@database_server
def test_a_spooled_sms_joins_the_callers_open_case_and_keeps_its_reference_on_the_timeline(twilio):
    twilio.sms("Prva poruka", sid="SMopen1", from_number="+38761400600")
    case = Case.objects.get()
    with database_unreachable():
        reference = reference_in(twilio.sms("Druga poruka", sid="SMopen2", from_number="+38761400600"))
    assert spool.replay_spool().stored == 1
    assert Case.objects.count() == 1 and case.messages.count() == 2
    event = case.timeline.get(kind=EventKind.MESSAGE_RECEIVED)
    assert event.details["answered_with_reference"] == reference
    # The citizen quotes the reference they were given; the status page and a worker's search both find the case.
    assert selectors.case_by_reference(reference.lower().replace("-", " ")) == case
    assert list(Case.objects.filter(cases_matching(reference))) == [case]


@concurrent
@database_server
def test_contacts_stored_from_the_spool_keep_the_time_they_came_in(twilio, client, spool_directory):
    # They took the replay's time: a critical SMS from 10:05 replayed at 10:35 read "0 min ago" to its worker.
    key = uuid.uuid4().hex
    with database_unreachable():
        twilio.sms("Ubit će me, ima nož", sid="SMlate1", from_number="+38761400700")
        client.post("/inquiry/", {"message": "Treba mi pomoć", "idempotency_key": key})
    came_in = timezone.now() - dt.timedelta(minutes=30)  # the outage lasted half an hour
    for path in spool_directory.glob("*.json"):
        entry = json.loads(path.read_text())
        path.write_text(json.dumps({**entry, "received_at": came_in.isoformat()}))
    assert spool.replay_spool().stored == 2
    for case in Case.objects.all():
        assert (case.created_at, case.messages.get().created_at) == (came_in, came_in)


@concurrent
@database_server
def test_a_status_callback_or_a_console_page_while_the_database_is_down_is_a_503_not_a_500(twilio, client):
    # Twilio's delivery callbacks were answered with Django's "Server Error" during a PostgreSQL restart.
    client.force_login(StaffFactory().user)
    client.raise_request_exception = False
    twilio.client.raise_request_exception = False
    with database_unreachable():
        callback = twilio.post("/webhooks/twilio/message-status/", {"MessageSid": "SMx", "MessageStatus": "delivered"})
        page = client.get("/console/")
    for response in (callback, page):
        assert response.status_code == 503 and response["Retry-After"] == "10"
        assert b"Server Error" not in response.content


@concurrent
@database_server
def test_a_worker_called_about_a_case_during_an_outage_is_told_to_take_it_by_sms_not_an_application_error(twilio):
    # The call about a critical case reached the worker while PostgreSQL restarted: they heard Twilio's "an
    # application error has occurred" and nothing about how to take the case; its status callback got a 503.
    twilio.client.raise_request_exception = False
    with database_unreachable():
        spoken = twilio.post("/webhooks/twilio/voice/staff-call/?notification=41", {"CallSid": "CAstaff1"})
        pressed = twilio.post("/webhooks/twilio/voice/staff-call/accept/?notification=41",
                              {"CallSid": "CAstaff1", "Digits": "1"})  # fmt: skip
        status = twilio.post("/webhooks/twilio/voice/staff-call/status/?n=41",
                             {"CallSid": "CAstaff1", "CallStatus": "completed"})  # fmt: skip
    for answer in (spoken, pressed):
        assert answer.status_code == 200 and answer["Content-Type"].startswith("text/xml")
        assert b"SMS" in answer.content and b"OK" in answer.content and b"<Hangup />" in answer.content
    assert status.status_code == 204

@concurrent
@database_server
def test_a_workers_silent_alarm_during_an_outage_gets_no_citizens_receipt_back(twilio):
    """Someone may be watching the worker's phone: the alarm is spooled, and nothing is sent back to it."""
    StaffFactory(phone="+38761400800")
    twilio.sms("Kada radite?", sid="SMbefore1", from_number="+38761400801")  # the database answers: phones read
    with database_unreachable():
        alarm = twilio.sms("POMOC", sid="SMalarm1", from_number="+38761400800")
        citizen = twilio.sms("POMOĆ", sid="SMcitizen1", from_number="+38761400802")
    assert alarm.status_code == 200 and b"<Message" not in alarm.content
    assert b"<Message" in citizen.content and SPOOLED_REFERENCE.search(citizen.content.decode())

    assert spool.replay_spool().stored == 2
    assert len(cases_of_number("+38761400800")) == 0  # a staff command, not a citizen's case


@concurrent
@database_server
def test_a_workers_command_sent_during_an_outage_is_answered_by_sms_once_it_has_run(twilio):
    # The spool answered the command with nothing (a citizen's receipt on a worker's phone is dangerous), and the
    # replay ran it but sent nothing either: the worker who took the case never learned that "OK" had worked.
    from helpline.casework import actions
    from notifications.models import Notification, NotificationKind
    from tests.factories import MessageFactory, ShiftFactory

    worker = StaffFactory(phone="+38761400810")
    ShiftFactory(staff=worker, starts_at=timezone.now() - dt.timedelta(hours=1),
                 ends_at=timezone.now() + dt.timedelta(hours=8))  # fmt: skip
    case = CaseFactory()
    MessageFactory(case=case, body="ubit će me, ima nož")
    actions.do_triage_case(case.pk)
    code = Notification.objects.filter(recipient=worker.user, case=case).values_list("ack_code", flat=True).first()
    twilio.sms("Kada radite?", sid="SMbefore2", from_number="+38761400811")  # the database answers: phones read
    with database_unreachable():
        taken = twilio.sms(f"OK {code}", sid="SMok1", from_number="+38761400810")
        alarm = twilio.sms("POMOC", sid="SMalarm2", from_number="+38761400810")
    assert b"<Message" not in taken.content and b"<Message" not in alarm.content

    assert spool.replay_spool().stored == 2
    case.refresh_from_db()
    assert case.acknowledged_at is not None
    (answer,) = Notification.objects.filter(kind=NotificationKind.COMMAND_REPLY)  # the "OK" only, not the alarm
    assert answer.to_number == "+38761400810" and case.reference in answer.body
    spool.spool_contact("sms", "SMok1", {"message_sid": "SMok1", "from_number": "+38761400810", "body": f"OK {code}"})
    spool.replay_spool()  # the replay ran again (killed before it forgot the file): the answer is not sent twice
    assert Notification.objects.filter(kind=NotificationKind.COMMAND_REPLY).count() == 1


@concurrent
@database_server
def test_a_welfare_answer_sent_during_an_outage_opens_its_case_under_the_reference_it_was_given(twilio, settings):
    # The spool answered the "2" with a reference; the replay's welfare path ignored it, and the case got another
    # one: the reference the person was given named no case.
    from helpline.welfare import services as welfare
    from helpline.welfare.models import CheckState, VulnerablePerson, WelfareCheck

    settings.SMS_BACKEND = "memory"
    VulnerablePerson.objects.create(full_name="Osoba", phone="+38762444555", municipality="Maglaj", address="Ulica 2",
                                    legal_basis="public_task")  # fmt: skip
    welfare.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=["Maglaj"], needs=[], by=None)
    welfare.advance_campaigns(timezone.now())
    assert WelfareCheck.objects.get().state == CheckState.ASKED
    with database_unreachable():
        answer = twilio.sms("2", sid="SMwelfare2", from_number="+38762444555")
    given = SPOOLED_REFERENCE.search(answer.content.decode()).group(0)

    assert spool.replay_spool().stored == 1
    check = WelfareCheck.objects.get()
    assert check.state == CheckState.NEEDS_HELP
    assert selectors.case_by_reference(given) == check.case


@concurrent
@database_server
def test_a_call_stored_before_the_outage_is_found_by_the_reference_spoken_during_it(twilio):
    twilio.call(sid="CAboth1", from_number="+38761400650")
    case = Case.objects.get()
    with database_unreachable():
        prompt = twilio.call("/webhooks/twilio/voice/language/", sid="CAboth1", Digits="1")
    assert b"<Record" in prompt.content
    spoken = spool.spooled("call", "CAboth1").reference
    assert spoken != case.reference

    spool.replay_spool()
    assert Case.objects.count() == 1
    assert selectors.case_by_reference(spoken) == case


@concurrent
@database_server
def test_a_call_while_the_database_is_down_reaches_voicemail_and_is_stored_with_it(twilio):
    with database_unreachable():
        greeting = twilio.call(sid="CAdown1", from_number="+38761400700")
        prompt = twilio.call("/webhooks/twilio/voice/language/", sid="CAdown1", Digits="1")
        recording = twilio.call(
            "/webhooks/twilio/voice/recording/", sid="CAdown1", RecordingSid="RE1", RecordingStatus="completed",
            RecordingUrl="https://api.twilio.com/rec/RE1", RecordingDuration="12",
        )  # fmt: skip
    assert greeting.status_code == prompt.status_code == 200 and recording.status_code == 204
    assert b"<Gather" in greeting.content and b"<Record" in prompt.content
    reference = spool.spooled("call", "CAdown1").reference
    assert SPOOLED_REFERENCE.fullmatch(reference)

    assert spool.replay_spool().stored == 3
    case = Case.objects.get()
    assert case.reference == reference
    assert case.messages.get().recording_sid == "RE1"


@concurrent
@database_server
def test_a_voicemail_left_after_the_database_returns_but_before_the_replay_is_kept(twilio):
    # The call waited in the spool; its recording and status came once the database was back, found no call and
    # were ignored with a 204, so Twilio never sent them again: the voicemail was lost.
    with database_unreachable():
        twilio.call(sid="CAlate1", from_number="+38761400710")
        twilio.call("/webhooks/twilio/voice/language/", sid="CAlate1", Digits="1")
    recording = twilio.call(
        "/webhooks/twilio/voice/recording/", sid="CAlate1", RecordingSid="RElate1", RecordingStatus="completed",
        RecordingUrl="https://api.twilio.com/rec/RElate1", RecordingDuration="20",
    )  # fmt: skip
    status = twilio.call("/webhooks/twilio/voice/status/", sid="CAlate1", CallStatus="completed")
    assert recording.status_code == status.status_code == 204

    spool.replay_spool()
    message = Case.objects.get().messages.get()
    assert message.recording_sid == "RElate1" and message.call_status == "completed"


@concurrent
@database_server
@pytest.mark.parametrize("database_back_before_the_end", [False, True], ids=["during", "after"])
def test_a_voicemail_left_in_an_outage_is_not_replayed_as_a_missed_call(twilio, database_back_before_the_end):
    # Twilio posts the Record action, then the call's "completed", then the recording's own callback. Only the last
    # was spooled as the voicemail, after the status: replayed in that order, the call was marked missed first.
    voice = "/webhooks/twilio/voice/"
    recording = {"RecordingSid": "REvm1", "RecordingUrl": "https://api.twilio.com/rec/REvm1",
                 "RecordingDuration": "25"}  # fmt: skip
    with database_unreachable():
        twilio.call(sid="CAvm1", from_number="+38761400750")
        twilio.call(voice + "language/", sid="CAvm1", Digits="1")
        if not database_back_before_the_end:
            twilio.call(voice + "recorded/", sid="CAvm1", **recording)
            twilio.call(voice + "status/", sid="CAvm1", CallStatus="completed")
            twilio.call(voice + "recording/", sid="CAvm1", RecordingStatus="completed", **recording)
    if database_back_before_the_end:
        twilio.call(voice + "recorded/", sid="CAvm1", **recording)
        twilio.call(voice + "status/", sid="CAvm1", CallStatus="completed")
        twilio.call(voice + "recording/", sid="CAvm1", RecordingStatus="completed", **recording)

    spool.replay_spool()
    case = Case.objects.get()
    assert case.messages.get().recording_sid == "REvm1"
    assert not case.needs_callback and not case.timeline.filter(kind=EventKind.CALL_MISSED).exists()

@concurrent
@database_server
def test_a_caller_who_hung_up_at_the_tone_during_an_outage_is_still_marked_for_a_call_back(twilio):
    # The spool kept the empty recording the live path skips; replayed first, it made the missed call look
    # answered, and nobody called back.
    with database_unreachable():
        twilio.call(sid="CAtone1", from_number="+38761400720")
        twilio.call("/webhooks/twilio/voice/language/", sid="CAtone1", Digits="1")
        twilio.call("/webhooks/twilio/voice/recording/", sid="CAtone1", RecordingSid="REtone1",
                    RecordingStatus="completed", RecordingUrl="https://api.twilio.com/rec/REtone1",
                    RecordingDuration="0")  # fmt: skip
        twilio.call("/webhooks/twilio/voice/status/", sid="CAtone1", CallStatus="completed")
    spool.replay_spool()
    case = Case.objects.get()
    assert case.needs_callback and not case.messages.get().recording_sid


@concurrent
@database_server
def test_a_caller_who_chose_english_during_an_outage_hears_the_goodbye_in_english(twilio):
    with database_unreachable():
        twilio.call(sid="CAen1", from_number="+38761400730")
        twilio.call("/webhooks/twilio/voice/language/", sid="CAen1", Digits="2")
        goodbye = twilio.call("/webhooks/twilio/voice/recorded/", sid="CAen1", RecordingSid="REen1",
                              RecordingDuration="9")  # fmt: skip
    assert b'language="en' in goodbye.content


@concurrent
@database_server
def test_a_caller_who_chose_english_during_an_outage_hears_the_goodbye_in_english_after_it_ends(twilio):
    # The database came back while they spoke: their call still waits in the spool, so it has no case to read the
    # language from, and they were thanked in Bosnian.
    with database_unreachable():
        twilio.call(sid="CAen2", from_number="+38761400731")
        twilio.call("/webhooks/twilio/voice/language/", sid="CAen2", Digits="2")
    goodbye = twilio.call("/webhooks/twilio/voice/recorded/", sid="CAen2", RecordingSid="REen2",
                          RecordingDuration="9")  # fmt: skip
    assert goodbye.status_code == 200 and b'language="en' in goodbye.content

@concurrent
@database_server
def test_a_drill_call_spooled_in_an_outage_stays_a_drill_when_its_language_is_chosen_after_it(twilio):
    # The language webhook, with the database back and the call still in the spool, stored the call afresh: a real
    # case (on-duty phones rung for a rehearsal), under a reference other than the one the caller was given.
    from urllib.parse import urlencode

    from helpline.drill.marker import DRILL_HEADER, new_drill_marker
    from tests.conftest import sign

    params = {"CallSid": "CAdrill1", "AccountSid": "AC" + "0" * 32, "From": "+38761400740", "To": "+38733000111",
              "CallStatus": "ringing"}  # fmt: skip
    headers = {"HTTP_X_TWILIO_SIGNATURE": sign("/webhooks/twilio/voice/", params),
               "HTTP_" + DRILL_HEADER.upper().replace("-", "_"): new_drill_marker()}  # fmt: skip
    with database_unreachable():
        twilio.client.post("/webhooks/twilio/voice/", data=urlencode(params),
                           content_type="application/x-www-form-urlencoded", **headers)  # fmt: skip
    given = spool.spooled("call", "CAdrill1").reference
    twilio.call("/webhooks/twilio/voice/language/", sid="CAdrill1", from_number="+38761400740", Digits="2")

    spool.replay_spool()
    case = Case.objects.get()
    assert case.is_drill and case.reference == given and case.language == "en"

@concurrent
@database_server
def test_a_web_form_sent_while_the_database_is_down_is_answered_and_its_code_works_later(client):
    key = uuid.uuid4().hex
    with database_unreachable():
        response = client.post("/inquiry/", {"message": "Treba mi pomoć", "idempotency_key": key})
    assert_not_djangos_error_page(response)
    assert response.status_code == 202
    reference = reference_in(response)
    code = intake.token_for_idempotency_key(key)
    assert code in response.content.decode()

    call_command("replay_intake_spool")
    status = client.post("/inquiry/status/", {"reference": reference, "code": code}, follow=True)
    assert status.status_code == 200
    assert Case.objects.get().reference == reference


@concurrent
@database_server
def test_a_follow_up_from_the_case_open_in_this_browser_during_an_outage_is_spooled_not_a_server_error(client):
    # The browser has a session (the case is open in it); sessions live in the database, and a middleware's look
    # at the signed-in user failed before the view could spool: Django's 500 page, and "he is back" was lost.
    client.raise_request_exception = False
    key = uuid.uuid4().hex
    first = client.post("/inquiry/", {"message": "Treba mi pomoć", "idempotency_key": key}, follow=True)
    reference, code = reference_in(first), intake.token_for_idempotency_key(key)
    assert client.session.session_key
    with database_unreachable():
        again = client.post("/inquiry/status/", {
            "reference": reference, "code": code, "message": "Opet je tu, prijeti", "idempotency_key": uuid.uuid4().hex,
        })  # fmt: skip
        new_form = client.post("/inquiry/", {"message": "Druga stvar", "idempotency_key": uuid.uuid4().hex})
    assert_not_djangos_error_page(again)
    assert (again.status_code, new_form.status_code) == (202, 202)

    assert spool.replay_spool().stored == 2
    assert "Opet je tu, prijeti" in Case.objects.get(reference=reference).messages.values_list("body", flat=True)


@concurrent
@database_server
def test_a_web_form_rewritten_and_sent_again_during_an_outage_keeps_both_messages(client):
    # The spool answered the second form (the same hidden key, other words) with the first one's reference and
    # code, and the second message was never written down.
    key = uuid.uuid4().hex
    with database_unreachable():
        first = client.post("/inquiry/", {"message": "Treba mi pomoć oko ogrjeva", "idempotency_key": key})
        rewritten = client.post("/inquiry/", {"message": "Muž je pijan i razbija stvari", "idempotency_key": key})
        resent = client.post("/inquiry/", {"message": "Muž je pijan i razbija stvari", "idempotency_key": key})
    assert first.status_code == rewritten.status_code == resent.status_code == 202
    assert reference_in(first) != reference_in(rewritten)
    assert reference_in(rewritten) not in resent.content.decode()  # a resend: "received", the code shown once

    assert spool.replay_spool().stored == 2
    assert Case.objects.count() == 2
    assert "Muž je pijan i razbija stvari" in Message.objects.values_list("body", flat=True)


@concurrent
@database_server
def test_a_web_form_stored_then_rewritten_during_an_outage_opens_by_the_code_it_was_given(client):
    # The replay found the key taken by the first message and stored the second with a new random code: the
    # reference and code the citizen was shown opened nothing, and they could not read replies or write again.
    key = uuid.uuid4().hex
    first = client.post("/inquiry/", {"message": "Treba mi pomoć oko ogrjeva", "idempotency_key": key}, follow=True)
    with database_unreachable():
        rewritten = client.post("/inquiry/", {"message": "Muž je pijan i razbija stvari", "idempotency_key": key})
    assert rewritten.status_code == 202
    reference, code = reference_in(rewritten), intake.token_for_idempotency_key(key)

    assert spool.replay_spool().stored == 1
    assert Case.objects.count() == 2
    status = client.post("/inquiry/status/", {"reference": reference, "code": code}, follow=True)
    assert status.status_code == 200 and "Muž je pijan i razbija stvari" in status.content.decode()
    assert reference_in(first) not in status.content.decode()


@concurrent
@database_server
def test_a_web_form_stored_then_resent_during_an_outage_opens_the_case_by_either_reference(client):
    # The browser resends the form (same key) while the database is down, its first answer never shown (Send
    # pressed twice on a slow line): the resend is answered with a reference of its own, which once opened
    # nothing after the replay ("No case matches").
    key = uuid.uuid4().hex
    client.post("/inquiry/", {"message": "Treba mi pomoć", "idempotency_key": key})
    first_reference = Case.objects.get().reference
    with database_unreachable():
        resent = client.post("/inquiry/", {"message": "Treba mi pomoć", "idempotency_key": key})
    assert resent.status_code == 202
    spooled_reference, code = reference_in(resent), intake.token_for_idempotency_key(key)

    assert spool.replay_spool().stored == 1
    case = Case.objects.get()
    assert case.reference == first_reference != spooled_reference
    status = client.post("/inquiry/status/", {"reference": spooled_reference, "code": code}, follow=True)
    assert status.status_code == 200 and case.reference in status.content.decode()


def safety_form(**overrides) -> dict:
    return {"message": "Treba mi pomoć", "phone": "061 123 456", "safe_to_call": "yes", "safe_to_text": "yes",
            "safe_contact_note": "", "idempotency_key": uuid.uuid4().hex, **overrides}  # fmt: skip


@concurrent
@database_server
def test_a_form_stored_then_sent_again_during_an_outage_with_not_safe_to_call_is_applied_on_replay(client):
    # The healthy form applies a resend's "not safe to call"; the spooled resend was stored as a plain retry, and
    # a worker could ring the house where the abuser is.
    form = safety_form()
    client.post("/inquiry/", form)
    with database_unreachable():
        client.post("/inquiry/", {**form, "safe_to_call": "no", "safe_contact_note": "Ne zovite, on je kod kuće"})

    assert spool.replay_spool().stored == 1
    case = Case.objects.get()
    assert (case.safe_to_call, case.safe_to_text) == (False, True)
    assert case.safe_contact_note == "Ne zovite, on je kod kuće"
    event = case.timeline.get(kind=EventKind.CONTACT_LIMITED)
    assert event.actor_kind == "citizen" and event.details["safe_to_call"] is False


@concurrent
@database_server
def test_a_form_sent_twice_during_an_outage_keeps_the_safer_answer_of_the_second(client):
    # Both copies were spooled under one key, and the second one (with "no SMS" and a note) was never written.
    form = safety_form()
    with database_unreachable():
        client.post("/inquiry/", form)
        client.post("/inquiry/", {**form, "safe_to_text": "no", "safe_contact_note": "Samo poslije 18h"})
        client.post("/inquiry/", {**form, "safe_to_text": "yes"})  # back to "yes": not safer, ignored

    spool.replay_spool()
    spool.replay_spool()  # a second run changes nothing
    case = Case.objects.get()
    assert (case.safe_to_call, case.safe_to_text) == (True, False)
    assert case.safe_contact_note == "Samo poslije 18h" and case.messages.count() == 1
    assert case.timeline.filter(kind=EventKind.CONTACT_LIMITED).count() == 1
    assert spool.pending() == []


@concurrent
@database_server
def test_a_less_safe_resend_during_an_outage_changes_nothing_on_replay(client):
    form = safety_form(safe_to_call="no", safe_to_text="no", safe_contact_note="Ne zovite")
    client.post("/inquiry/", form)
    with database_unreachable():
        client.post("/inquiry/", {**form, "safe_to_call": "yes", "safe_to_text": "yes", "safe_contact_note": ""})

    spool.replay_spool()
    case = Case.objects.get()
    assert (case.safe_to_call, case.safe_to_text, case.safe_contact_note) == (False, False, "Ne zovite")
    assert not case.timeline.filter(kind=EventKind.CONTACT_LIMITED).exists()


@concurrent
@database_server
def test_a_form_sent_again_during_an_outage_shows_received_but_not_the_code_again(client):
    # The spool answered every resend (Back after the quick exit, then Send) with the reference and secret code,
    # so whoever picked up the phone could open the conversation once the database was back.
    form = safety_form(message="Muž me tuče, ne smije znati")
    code = intake.token_for_idempotency_key(form["idempotency_key"])
    with database_unreachable():
        first = client.post("/inquiry/", form)
        resent = client.post("/inquiry/", form)
    assert code in first.content.decode()
    html = resent.content.decode()
    assert resent.status_code == 202 and "Vaša poruka je primljena" in html
    assert code not in html and reference_in(first) not in html and 'class="code"' not in html

    assert spool.replay_spool().stored == 1
    assert Case.objects.get().messages.count() == 1


@concurrent
@database_server
def test_a_form_whose_code_was_shown_then_sent_again_during_an_outage_does_not_show_it_again(client):
    form = safety_form(message="Muž me tuče, ne smije znati")
    receipt = client.post("/inquiry/", form, follow=True)
    code = intake.token_for_idempotency_key(form["idempotency_key"])
    assert format_code(code) in receipt.content.decode()
    with database_unreachable():
        resent = client.post("/inquiry/", form)
    html = resent.content.decode()
    assert resent.status_code == 202 and "Vaša poruka je primljena" in html
    assert code not in html and format_code(code) not in html and 'class="code"' not in html


SPOOLED_RECEIPTS = [  # what they wrote, and what the page must say in their language and script
    ("Muž mi prijeti nožem, ubiće me", "Vaša poruka je sačuvana i stići će do socijalnog radnika čim", "obavještava"),
    ("Treba mi savjet o alimentaciji", "Vaša poruka je sačuvana i stići će do socijalnog radnika čim", "obavještava"),
    ("Муж ми прети ножем, сада је у кући", "Ваша порука је сачувана и стићи ће до социјалног радника чим",
     "обавјештава"),
    ("My husband is threatening me with a knife, please help",
     "Your message is saved and will reach a social worker as soon as", "being alerted"),
]


@concurrent
@database_server
@pytest.mark.parametrize(("message", "honest", "untrue"), SPOOLED_RECEIPTS, ids=["danger", "calm", "cyrillic", "en"])
def test_a_form_kept_during_an_outage_says_it_is_saved_for_later_and_whom_to_call_now(client, message, honest, untrue):
    # The spooled receipt said a social worker on duty was being alerted, while nobody could be until the replay:
    # someone in danger waited for a call that could not come.
    form = {"message": message, "idempotency_key": uuid.uuid4().hex}
    with database_unreachable():
        first = client.post("/inquiry/", form)
        resent = client.post("/inquiry/", form)
        follow_up = client.post("/inquiry/status/", {
            "reference": reference_in(first), "code": intake.token_for_idempotency_key(form["idempotency_key"]),
            "message": message, "idempotency_key": uuid.uuid4().hex,
        })  # fmt: skip
    for page in (first, resent, follow_up):
        main = page.content.decode().split('<main id="content"', 1)[1].split("</main>", 1)[0]
        assert page.status_code == 202 and honest in main and untrue not in main
        assert 'href="tel:122"' in main and 'href="tel:124"' in main  # in the page itself, not only its footer
        assert main.index('href="tel:122"') < main.index(honest)


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [OperationalError("server closed the connection unexpectedly"), TypeError("a bug")])
def test_an_inquiry_stored_just_before_the_database_fails_is_answered_with_its_own_reference(
    client, monkeypatch, fault
):
    # The surge notice is read after the case is stored; a failure there once sent the stored inquiry to the spool
    # as well, and the citizen was given the reference of a copy (or, with no key, a second case was made).
    from notifications import surge

    def database_gone(language: str = "") -> str:
        raise fault

    monkeypatch.setattr(surge, "citizen_notice", database_gone)
    response = client.post("/api/v1/inquiries/", data={"message": "Pomoć"}, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["reference"] == Case.objects.get().reference
    form = client.post("/inquiry/", {"message": "Treba mi pomoć", "idempotency_key": uuid.uuid4().hex})
    assert form.status_code == 303 and Case.objects.count() == 2
    assert spool.pending() == []  # nothing sent to the spool besides


@concurrent
@database_server
def test_api_inquiries_and_follow_ups_while_the_database_is_down_get_202_and_are_stored_once(client):
    case = CaseFactory(channel="web", citizen_token_hash=intake._hash_token("tajna"))
    with database_unreachable():
        created = client.post(
            "/api/v1/inquiries/", data={"message": "Pomoć"}, content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="down-1",
        )  # fmt: skip
        followed = client.post(
            f"/api/v1/inquiries/{case.reference}/messages/", data={"message": "Opet ja"},
            content_type="application/json", HTTP_X_INQUIRY_TOKEN="tajna",
        )  # fmt: skip
        forged = client.post(
            f"/api/v1/inquiries/{case.reference}/messages/", data={"message": "Lažna"},
            content_type="application/json", HTTP_X_INQUIRY_TOKEN="pogrešna",
        )  # fmt: skip
    assert created.status_code == followed.status_code == forged.status_code == 202
    body = created.json()
    assert SPOOLED_REFERENCE.fullmatch(body["reference"])

    result = spool.replay_spool()
    assert (result.stored, result.dropped) == (2, 1)  # the forged follow-up is dropped, as a 404 would have been
    assert client.get(body["status_url"], HTTP_X_INQUIRY_TOKEN=body["token"]).status_code == 200
    assert list(case.messages.values_list("body", flat=True)).count("Opet ja") == 1
    assert "Lažna" not in Message.objects.values_list("body", flat=True)


@concurrent
@database_server
def test_replay_waits_while_the_database_is_still_down_and_loses_nothing(twilio):
    with database_unreachable():
        twilio.sms("Jedan", sid="SMwait1", from_number="+38761400800")
        twilio.sms("Dva", sid="SMwait2", from_number="+38761400801")
        still_down = spool.replay_spool()
    assert (still_down.stored, still_down.remaining) == (0, 2)
    assert spool.replay_spool().stored == 2
    assert Message.objects.count() == 2


# --- Redis hung or down: intake answers within a second -------------------------------------------------------


@pytest.fixture
def hung_redis(settings, monkeypatch):
    """Broker and cache both pointed at a server that accepts and never answers."""
    with HungServer() as server:
        original = celery_app.conf["CELERY_BROKER_URL"]

        def repoint(url: str) -> None:
            celery_app.conf["CELERY_BROKER_URL"] = url
            celery_app._pool = None
            celery_app.amqp._producer_pool = None

        monkeypatch.setenv("CELERY_BROKER_URL", server.redis_url)
        repoint(server.redis_url)
        settings.CACHES = {
            "default": {
                "BACKEND": "helpline.project.cache.FailOpenRedisCache",
                "LOCATION": server.redis_url,
                "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
            }
        }
        yield server
        monkeypatch.undo()
        repoint(original)


def test_publishing_to_a_hung_broker_gives_up_within_half_a_second(hung_redis):
    started = time.perf_counter()
    assert publish("helpline.casework.tasks.triage_case", 1, queue="triage") is False
    assert time.perf_counter() - started < 0.6


@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"), reason="needs Redis")
def test_a_broker_that_freezes_under_a_kept_connection_costs_a_publish_a_quarter_second(caplog):
    """A publish reuses the connection the last one used, in the caller's own thread; when Redis freezes under it,
    the publish gives up within that connection's socket timeout (a new connection would wait for the same frozen
    Redis), and the next publish after Redis thaws goes through."""
    with FreezableRedisProxy(os.environ["CELERY_BROKER_URL"]) as redis, broker_at(redis.redis_url):
        assert publish("helpline.casework.tasks.triage_case", 1, queue="triage")  # its connection is kept
        assert publish("helpline.casework.tasks.triage_case", 2, queue="triage")  # on the kept connection
        redis.frozen.set()
        started = time.perf_counter()
        assert publish("helpline.casework.tasks.triage_case", 3, queue="triage") is False
        assert time.perf_counter() - started < 0.45
        assert "the broker did not answer" in caplog.text
        redis.frozen.clear()
        assert publish("helpline.casework.tasks.triage_case", 4, queue="triage")


@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"), reason="needs Redis")
def test_a_publish_after_a_redis_restart_closed_the_kept_connection_goes_through_at_once(queues):
    with FreezableRedisProxy(os.environ["CELERY_BROKER_URL"]) as redis, broker_at(redis.redis_url):
        assert publish("helpline.casework.tasks.triage_case", 1, queue="triage")  # its connection is kept
        redis.drop_connections()
        started = time.perf_counter()
        assert publish("helpline.casework.tasks.triage_case", 2, queue="triage")
        assert time.perf_counter() - started < 0.2  # not taken for a hung broker
    assert queues.size("triage") == 2


@concurrent
def test_intake_answers_within_a_second_and_stores_while_redis_hangs(twilio, client, hung_redis):
    timings = {}
    started = time.perf_counter()
    sms = twilio.sms("Pomoć", sid="SMhung1", from_number="+38761400900")
    timings["sms"] = time.perf_counter() - started
    started = time.perf_counter()
    call = twilio.call(sid="CAhung1", from_number="+38761400901")
    timings["voice"] = time.perf_counter() - started
    started = time.perf_counter()
    web = client.post("/api/v1/inquiries/", data={"message": "Pomoć"}, content_type="application/json")
    timings["web"] = time.perf_counter() - started
    started = time.perf_counter()
    form = client.post("/inquiry/", {"message": "Pomoć", "idempotency_key": uuid.uuid4().hex})
    timings["form"] = time.perf_counter() - started

    assert (sms.status_code, call.status_code, web.status_code, form.status_code) == (200, 200, 201, 303)
    assert max(timings.values()) < 1.0, timings
    assert Case.objects.count() == 4 and spool.pending() == []


@pytest.mark.django_db
def test_web_inquiries_are_taken_while_the_throttles_cache_is_down(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "helpline.project.cache.FailOpenRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    responses = [
        client.post("/api/v1/inquiries/", data={"message": f"Pomoć {n}"}, content_type="application/json")
        for n in range(3)
    ]
    assert [response.status_code for response in responses] == [201, 201, 201]
    assert Case.objects.count() == 3


# --- Broker away: the doorbell nobody took is rung by the first sweep after it returns ----------------------------


@concurrent
def test_a_contact_whose_triage_doorbell_the_broker_refused_is_rung_by_the_very_next_sweep(twilio, queues):
    with broker_unreachable():
        response = twilio.sms("Treba mi pomoć oko ogrjeva", sid="SMnobroker1", from_number="+38761400700")
    assert response.status_code == 200
    case = Case.objects.get()
    assert case.status == CaseStatus.NEW and case.triage_requested_at is None  # nothing waits in a queue for it

    assert actions.sweep_untriaged() == 1  # at once: not after the 30 s grace for a message still in a queue
    assert queues.size("triage") == 1
    case.refresh_from_db()
    assert case.triage_requested_at is not None
    assert actions.sweep_untriaged() == 0


@concurrent
def test_a_sweep_that_finds_the_broker_away_leaves_its_cases_for_the_first_sweep_after_it_returns(queues):
    long_ago = timezone.now() - dt.timedelta(minutes=2)
    cases = [CaseFactory() for _ in range(3)]
    Case.objects.filter(pk__in=[c.pk for c in cases]).update(created_at=long_ago, triage_requested_at=long_ago)

    with broker_unreachable():
        assert actions.sweep_untriaged() == 0
    # Not stamped as re-sent: stamped, they would wait five minutes (RESEND_BACKOFF) after the broker returned. (A
    # broker that cannot say what its queues hold is not asked to take copies either.)
    assert set(Case.objects.values_list("triage_requested_at", flat=True)) == {long_ago}

    assert actions.sweep_untriaged() == 3
    assert queues.size("triage") == 3


@concurrent
@database_server
@pytest.mark.parametrize("rules_compiled_before", [True, False], ids=["rules-compiled", "fresh-process"])
def test_a_danger_message_sent_while_the_database_is_down_still_shows_whom_to_call_now(client, rules_compiled_before):
    # The quick danger check read the rules' change-stamp from the database, failed, and called it "not critical":
    # the spooled receipt had no "call 122/124 now" block exactly when nobody on staff could be alerted.
    from triage import selectors as triage_selectors
    from triage.services import install_default_rules

    install_default_rules()  # a transactional test before may have flushed them
    if rules_compiled_before:
        client.post("/inquiry/", {"message": "Treba mi savjet", "idempotency_key": uuid.uuid4().hex})
    else:
        triage_selectors.forget_compiled_rules()
    with database_unreachable():
        danger = client.post("/inquiry/", {"message": "Муж ми прети ножем, сада је у кући",
                                           "idempotency_key": uuid.uuid4().hex})  # fmt: skip
        calm = client.post("/inquiry/", {"message": "Treba mi savjet o alimentaciji",
                                         "idempotency_key": uuid.uuid4().hex})  # fmt: skip
    assert (danger.status_code, calm.status_code) == (202, 202)
    assert 'class="call-now"' in danger.content.decode()
    assert 'class="call-now"' not in calm.content.decode()
