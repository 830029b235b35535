"""What Twilio took while our webhooks could not be reached (the web down, or too slow for Twilio's 15 s) is found
in Twilio's log and stored: nothing a citizen sends is lost because the server was away."""
import datetime as dt
import html
import io
import re
from email.utils import format_datetime, parsedate_to_datetime

import pytest
import time_machine
from django.core.management import call_command

from helpline.cases import intake
from helpline.cases.models import Case, Message
from helpline.intake import recovery, spool
from notifications.models import Notification, NotificationKind
from tests.test_staff_sms_acknowledgement import CRITICAL_TEXT, WORKER_PHONE, code_sent, new_case, on_duty
from tests.test_welfare_campaign import provider  # noqa: F401 - the welfare tests' sender, a fixture used below

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
SOS_NUMBER = "+38733000111"
CITIZEN = "+38761555123"
WELFARE_NUMBER = "+38733000404"  # a number of the welfare campaigns' Messaging Service


@pytest.fixture
def sos_line(settings, twilio_api, tmp_path):
    settings.TWILIO_PHONE_NUMBER = SOS_NUMBER
    settings.INTAKE_SPOOL_DIR = tmp_path / "spool"  # a contact that fails to store waits there
    return twilio_api


def test_an_sms_no_webhook_received_becomes_a_case_and_the_citizen_gets_the_receipt_by_sms(sos_line):
    listed = sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Muž mi prijeti nožem, pomozite",
                              ago_seconds=300)  # fmt: skip

    found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    message = Message.objects.get(twilio_sid=listed["sid"])
    assert message.body == "Muž mi prijeti nožem, pomozite"
    receipt = Notification.objects.get(kind=NotificationKind.CITIZEN_REPLY, case=message.case)
    assert receipt.to_number == CITIZEN and message.case.reference in receipt.body
    # Dated when it was sent, not when it was found: its worker sees how long it has waited.
    sent_at = parsedate_to_datetime(listed["date_created"])
    assert message.created_at == sent_at and message.case.created_at == sent_at


def test_a_worker_that_dies_before_the_receipt_is_queued_leaves_the_sms_for_the_next_look(sos_line, monkeypatch):
    listed = sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Ne mogu više, pomozite mi", ago_seconds=300)
    queue = recovery.queue_notification

    def worker_killed(**kwargs):
        raise SystemExit("killed")  # not an Exception: the look itself dies, as a killed process would

    monkeypatch.setattr(recovery, "queue_notification", worker_killed)
    with pytest.raises(SystemExit):
        recovery.recover_missed_contacts()
    assert not Message.objects.filter(twilio_sid=listed["sid"]).exists()

    monkeypatch.setattr(recovery, "queue_notification", queue)
    found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    message = Message.objects.get(twilio_sid=listed["sid"])
    assert Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY, case=message.case).count() == 1


def test_looking_again_stores_nothing_twice_and_sends_no_second_receipt(sos_line):
    sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Trebam pomoć oko ogrjeva", ago_seconds=150)
    recovery.recover_missed_contacts()

    again = recovery.recover_missed_contacts()

    assert again is not None and again.listed == 1 and again.stored_sms == 0
    assert Case.objects.count() == 1
    assert Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY).count() == 1


def test_an_sms_its_webhook_already_stored_is_left_alone(sos_line, twilio):
    response = twilio.sms("Dobar dan, imam pitanje o alimentaciji", sid="SM" + "2" * 32, from_number=CITIZEN)
    assert response.status_code == 200
    stored = Message.objects.get()
    sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body=stored.body, sid=stored.twilio_sid, ago_seconds=300)

    found = recovery.recover_missed_contacts()

    assert found is not None and found.listed == 1 and found.stored_sms == 0
    assert Message.objects.count() == 1
    assert not Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY).exists()


def test_an_sms_stored_by_a_webhook_twilio_gave_up_on_gets_its_receipt_by_sms_once(sos_line, twilio, settings):
    # In a surge the webhook stored the SMS after Twilio's 15 s: Twilio dropped the answer, and the citizen read no
    # reference and no emergency numbers. Twilio's debugger says which request it gave up on.
    response = twilio.sms("Mama ne ustaje iz kreveta od jutros, sama sam s njom", sid="SM" + "3" * 32,
                          from_number=CITIZEN)  # fmt: skip
    assert response.status_code == 200
    stored = Message.objects.get()
    sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body=stored.body, sid=stored.twilio_sid, ago_seconds=300)
    sos_line.webhook_failed(stored.twilio_sid, settings.PUBLIC_BASE_URL + "/webhooks/twilio/sms/")

    found = recovery.recover_missed_contacts()
    again = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 0 and found.answered_late == 1
    receipt = Notification.objects.get(kind=NotificationKind.CITIZEN_REPLY)
    assert receipt.to_number == CITIZEN and stored.case.reference in receipt.body
    assert settings.EMERGENCY_NUMBERS["police"] in receipt.body
    assert again is not None and again.answered_late == 0
    assert Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY).count() == 1


def test_a_receipt_twilio_never_got_goes_out_once_twilios_debugger_answers_again_after_ten_minutes_down(
    sos_line, twilio, settings
):
    """The Monitor API can be down while the SMS API answers: the looks went on, and the alerts of the minutes it
    was down were never read again (only the last three minutes were)."""
    with time_machine.travel(START, tick=False) as clock:
        recovery.recover_missed_contacts()  # the looks had been running
        clock.shift(dt.timedelta(minutes=1))
        response = twilio.sms("Otac pije i prijeti, djeca su sa mnom u sobi", sid="SM" + "4" * 32, from_number=CITIZEN)
        assert response.status_code == 200
        sos_line.webhook_failed("SM" + "4" * 32, settings.PUBLIC_BASE_URL + "/webhooks/twilio/sms/")
        sos_line.alerts_unavailable = True
        for _ in range(10):  # ten looks while the debugger cannot be asked
            clock.shift(dt.timedelta(minutes=1))
            assert recovery.recover_missed_contacts().answered_late == 0
        sos_line.alerts_unavailable = False
        clock.shift(dt.timedelta(minutes=1))

        found = recovery.recover_missed_contacts()
        clock.shift(dt.timedelta(minutes=1))
        again = recovery.recover_missed_contacts()

    assert found.answered_late == 1 and again.answered_late == 0
    receipt = Notification.objects.get(kind=NotificationKind.CITIZEN_REPLY)
    assert receipt.to_number == CITIZEN and Message.objects.get().case.reference in receipt.body


def test_a_day_old_alert_is_not_read_when_the_debugger_comes_back(sos_line, twilio, settings):
    with time_machine.travel(START, tick=False) as clock:
        recovery.recover_missed_contacts()
        response = twilio.sms("Hvala na pomoći prošle sedmice", sid="SM" + "5" * 32, from_number=CITIZEN)
        assert response.status_code == 200
        sos_line.webhook_failed("SM" + "5" * 32, settings.PUBLIC_BASE_URL + "/webhooks/twilio/sms/")
        sos_line.alerts_unavailable = True
        for _ in range(26):  # a day and more of looks, an hour apart
            clock.shift(dt.timedelta(hours=1))
            recovery.recover_missed_contacts()
        sos_line.alerts_unavailable = False

        found = recovery.recover_missed_contacts()

    assert found.answered_late == 0  # as far back as the contacts' look reads: a day
    assert not Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY).exists()


def test_a_staff_command_whose_answer_twilio_never_got_is_answered_by_sms(sos_line, settings):
    from helpline.intake import services as intake_services

    with time_machine.travel(START, tick=False) as clock:
        worker = on_duty(phone=WORKER_PHONE)
        case = new_case(CRITICAL_TEXT)
        sid = "SM" + "4" * 32
        received = intake_services.receive_sms(message_sid=sid, from_number=WORKER_PHONE,
                                               body=f"OK {code_sent(worker, case)}")  # fmt: skip
        sos_line.webhook_failed(sid, settings.PUBLIC_BASE_URL + "/webhooks/twilio/sms/")
        clock.shift(dt.timedelta(minutes=3))

        found = recovery.recover_missed_contacts()

    assert found is not None and found.answered_late == 1
    reply = Notification.objects.get(kind=NotificationKind.COMMAND_REPLY)
    assert reply.recipient == worker.user and received.staff_reply and reply.body
    assert Case.objects.count() == 1


def test_a_failed_status_callback_sends_nobody_anything(sos_line, twilio, settings):
    response = twilio.sms("Trebam informaciju o jednokratnoj pomoći", sid="SM" + "5" * 32, from_number=CITIZEN)
    assert response.status_code == 200
    stored = Message.objects.get()
    sos_line.webhook_failed(stored.twilio_sid, settings.PUBLIC_BASE_URL + "/webhooks/twilio/sms/status/")

    found = recovery.recover_missed_contacts()

    assert found is not None and found.answered_late == 0
    assert not Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY).exists()


def test_a_contact_of_the_last_seconds_is_left_to_its_webhook_still_on_the_way(sos_line):
    with time_machine.travel(START, tick=False) as clock:
        sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Pomozite", ago_seconds=5)

        found = recovery.recover_missed_contacts()

        assert found is not None and found.stored_sms == 0
        assert not Case.objects.exists()
        clock.shift(dt.timedelta(minutes=3))  # no webhook came: the next look past the grace stores it
        assert recovery.recover_missed_contacts().stored_sms == 1


@pytest.mark.parametrize(
    ("sender", "pool", "answered_on"),
    [
        ("+38733000222", None, "+38733000222"),
        # The README advises a Messaging Service for staff alerts: a worker answers the number of its pool that
        # texted them, which Twilio names only when asked for the pool.
        ("MG" + "7" * 32, ["+38733000301", "+38733000302"], "+38733000302"),
    ],
    ids=["a number", "a messaging service"],
)
def test_a_workers_ok_to_the_number_staff_alerts_come_from_is_read_too(sos_line, settings, sender, pool, answered_on):
    settings.STAFF_ALERT_SENDER = sender
    if pool is not None:
        sos_line.messaging_services[sender] = pool
    with time_machine.travel(START, tick=False) as clock:
        worker = on_duty(phone=WORKER_PHONE)
        case = new_case(CRITICAL_TEXT)
        sos_line.inbound("sms", from_=WORKER_PHONE, to=answered_on, body=f"OK {code_sent(worker, case)}")
        clock.shift(dt.timedelta(minutes=5))

        found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    case.refresh_from_db()
    assert case.acknowledged_at is not None
    assert Notification.objects.filter(kind=NotificationKind.COMMAND_REPLY, recipient=worker.user).exists()


def test_a_messaging_service_twilio_does_not_know_keeps_nobody_elses_sms_from_being_read(sos_line, settings):
    settings.STAFF_ALERT_SENDER = "MG" + "8" * 32  # mistyped: Twilio answers 404 for its pool
    listed = sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Treba mi pomoć, sama sam", ago_seconds=300)

    found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    assert Message.objects.filter(twilio_sid=listed["sid"]).exists()


def test_a_call_no_webhook_received_becomes_a_missed_call_to_call_back(sos_line):
    sos_line.inbound("call", from_=CITIZEN, to=SOS_NUMBER, status="no-answer", ago_seconds=300, duration=0)

    found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_calls == 1
    case = Case.objects.get()
    assert case.needs_callback


def test_a_call_whose_final_status_never_reached_us_is_settled_as_missed(sos_line):
    case = intake.record_incoming_call(call_sid="CA" + "1" * 32, from_number=CITIZEN)
    sos_line.inbound("call", from_=CITIZEN, to=SOS_NUMBER, status="completed", sid="CA" + "1" * 32, ago_seconds=300,
                     duration=4)  # fmt: skip

    found = recovery.recover_missed_contacts()

    assert found is not None and found.settled_calls == 1 and found.stored_calls == 0
    case.refresh_from_db()
    assert case.needs_callback
    assert Case.objects.count() == 1


def test_twilio_unreachable_leaves_the_window_for_the_next_look(sos_line):
    sos_line.outage()
    sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Ne mogu više, sve sam sredila", ago_seconds=300)

    assert recovery.recover_missed_contacts() is None

    sos_line.recover()
    found = recovery.recover_missed_contacts()
    assert found is not None and found.stored_sms == 1


def test_a_workers_ok_no_webhook_received_takes_the_case_and_is_answered_by_sms(sos_line):
    with time_machine.travel(START, tick=False):
        worker = on_duty(phone=WORKER_PHONE)
        case = new_case(CRITICAL_TEXT)
        sos_line.inbound("sms", from_=WORKER_PHONE, to=SOS_NUMBER, body=f"OK {code_sent(worker, case)}")
    with time_machine.travel(START + dt.timedelta(minutes=5), tick=False):
        found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    case.refresh_from_db()
    assert case.acknowledged_at is not None
    assert Notification.objects.filter(kind=NotificationKind.COMMAND_REPLY, recipient=worker.user).exists()
    assert Case.objects.count() == 1  # the worker's SMS is a command, never a case of its own


def test_the_fallback_twiml_tells_callers_the_emergency_numbers_in_both_languages_and_puts_them_through(settings):
    settings.ESCALATION_FALLBACK_NUMBERS = ["+38761999000"]
    out = io.StringIO()
    call_command("twilio_fallback_twiml", stdout=out)
    voice = html.unescape(out.getvalue())

    said = re.findall(r"<Say[^>]*>(.*?)</Say>", voice)
    assert "Naša služba se trenutno ne može javiti" in said[0] and "cannot answer the call" in said[1]
    assert all(settings.EMERGENCY_NUMBERS["police"] in text for text in said)
    assert re.search(r"<Dial[^>]*>\+38761999000</Dial>", voice)


def failing_to_store(monkeypatch, sid: str) -> None:
    """Storing this one SMS or call raises, as a bug tied to its contents would, until the test puts it right."""
    store_sms, store_call = recovery.services.receive_sms, recovery.intake.record_incoming_call

    def sms_broken_for_one(**sms):
        if sms["message_sid"] == sid:
            raise RuntimeError("this one cannot be stored")
        return store_sms(**sms)

    def call_broken_for_one(**call):
        if call["call_sid"] == sid:
            raise RuntimeError("this one cannot be stored")
        return store_call(**call)

    monkeypatch.setattr(recovery.services, "receive_sms", sms_broken_for_one)
    monkeypatch.setattr(recovery.intake, "record_incoming_call", call_broken_for_one)


def test_an_sms_that_fails_to_store_waits_in_the_spool_keeps_no_other_back_and_is_answered_once_stored(
    sos_line, monkeypatch, client
):
    failing = sos_line.inbound("sms", from_="+38761555001", to=SOS_NUMBER, body="Prva poruka", ago_seconds=400)
    sos_line.inbound("sms", from_="+38761555002", to=SOS_NUMBER, body="Druga poruka", ago_seconds=300)
    with monkeypatch.context() as broken:
        failing_to_store(broken, failing["sid"])
        first = recovery.recover_missed_contacts()
        assert first is not None and first.stored_sms == 1  # the other one
        assert [contact.kind for contact in spool.pending()] == ["recovered_sms"]
        assert client.get("/healthz/").json()["progress"]["oldest_spooled_seconds"] is not None  # counted there
        assert spool.replay_spool().failed == 1  # the replay meets the same fault, and keeps it
        again = recovery.recover_missed_contacts()
        assert again is not None and again.stored_sms == 0  # known as waiting in the spool: not tried twice

    replayed = spool.replay_spool()

    assert replayed.stored == 1 and spool.pending() == []
    message = Message.objects.get(twilio_sid=failing["sid"])
    assert message.created_at == parsedate_to_datetime(failing["date_created"])  # dated when the citizen sent it
    receipt = Notification.objects.get(kind=NotificationKind.CITIZEN_REPLY, case=message.case)
    assert receipt.to_number == "+38761555001" and message.case.reference in receipt.body
    assert Case.objects.count() == 2
    assert recovery.recover_missed_contacts().stored_sms == 0 and spool.replay_spool().stored == 0
    assert Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY).count() == 2  # one receipt each


def test_an_sms_that_cannot_be_stored_for_more_than_a_day_is_still_kept_and_stored_once_it_can_be(
    sos_line, monkeypatch
):
    """Twilio's log is read at most a day back: a contact held back by the look alone was dropped after that."""
    with time_machine.travel(START, tick=False) as clock:
        failing = sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Sama sam, ne mogu ustati",
                                   ago_seconds=300)  # fmt: skip
        with monkeypatch.context() as broken:
            failing_to_store(broken, failing["sid"])
            recovery.recover_missed_contacts()
            for _ in range(26):  # a look each hour, for a day and more
                clock.shift(dt.timedelta(hours=1))
                recovery.recover_missed_contacts()
                spool.replay_spool()
        assert not Message.objects.filter(twilio_sid=failing["sid"]).exists()

        assert spool.replay_spool().stored == 1

    message = Message.objects.get(twilio_sid=failing["sid"])
    assert message.body == "Sama sam, ne mogu ustati"
    assert Notification.objects.filter(kind=NotificationKind.CITIZEN_REPLY, case=message.case).count() == 1


def test_a_call_that_fails_to_store_waits_in_the_spool_and_becomes_a_missed_call_to_call_back(sos_line, monkeypatch):
    call = sos_line.inbound("call", from_=CITIZEN, to=SOS_NUMBER, status="no-answer", ago_seconds=300)
    with monkeypatch.context() as broken:
        failing_to_store(broken, call["sid"])
        recovery.recover_missed_contacts()
    assert [contact.kind for contact in spool.pending()] == ["recovered_call"]

    assert spool.replay_spool().stored == 1

    case = Case.objects.get()
    assert case.needs_callback and case.messages.get().twilio_sid == call["sid"]


def test_when_the_spool_cannot_take_a_failed_contact_either_the_next_look_tries_it_again(sos_line, monkeypatch):
    failing = sos_line.inbound("sms", from_=CITIZEN, to=SOS_NUMBER, body="Pomozite, molim vas", ago_seconds=300)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as broken:
        failing_to_store(broken, failing["sid"])
        broken.setattr(spool, "spool_contact", disk_full)
        recovery.recover_missed_contacts()

    found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    assert Message.objects.filter(twilio_sid=failing["sid"]).exists()


def test_a_call_still_going_on_is_stored_once_it_has_ended_however_long_it_lasted(sos_line):
    with time_machine.travel(START, tick=False) as clock:
        call = sos_line.inbound("call", from_=CITIZEN, to=SOS_NUMBER, status="in-progress", ago_seconds=600)
        for _ in range(5):  # ten minutes of looks while the call goes on
            found = recovery.recover_missed_contacts()
            assert found is not None and found.stored_calls == 0
            clock.shift(dt.timedelta(minutes=1))
        with sos_line._lock:
            ended = next(listed for listed in sos_line.accepted if listed["sid"] == call["sid"])
            ended["status"], ended["end_time"] = "completed", format_datetime(START)
        clock.shift(dt.timedelta(minutes=3))

        found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_calls == 1
    assert Case.objects.get().needs_callback


@pytest.mark.usefixtures("provider")
def test_a_welfare_da_its_webhook_answered_is_not_stored_again_as_a_citizens_case(
    sos_line, settings, django_capture_on_commit_callbacks
):
    # "Da" to a welfare question is asked again ("1 or 2?") and stored nowhere under its SID; read from Twilio's log
    # after the person's "1" had settled the check, it became a citizen's case, and the old person got a receipt.
    from helpline.intake import services as intake_services
    from helpline.welfare import services as welfare_services
    from tests.test_welfare_campaign import register, run_ticks

    with time_machine.travel(START, tick=False) as clock:
        (person,) = register(1)
        welfare_services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
        run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
        for sid, body in (("SM" + "d" * 32, "Da"), ("SM" + "e" * 32, "1")):  # through the webhook, in time
            with django_capture_on_commit_callbacks(execute=True):  # its transaction commits
                intake_services.receive_sms(message_sid=sid, from_number=str(person.phone), body=body)
            sos_line.inbound("sms", from_=str(person.phone), to=SOS_NUMBER, body=body, sid=sid)
        settings.SMS_BACKEND = "twilio"
        sos_line.messaging_services[settings.WELFARE_MESSAGING_SERVICE_SID] = [WELFARE_NUMBER]
        clock.shift(dt.timedelta(minutes=3))

        found = recovery.recover_missed_contacts()

    assert found is not None and found.listed == 2 and found.stored_sms == 0
    assert not Case.objects.exists()


@pytest.mark.usefixtures("provider")
def test_a_welfare_answer_to_the_campaigns_messaging_service_no_webhook_received_is_recorded(sos_line, settings):
    from helpline.welfare import services as welfare_services
    from helpline.welfare.models import WelfareCheck
    from tests.test_welfare_campaign import register, run_ticks

    with time_machine.travel(START, tick=False) as clock:
        (person,) = register(1)
        welfare_services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
        run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
        assert WelfareCheck.objects.get(person=person).asked_at is not None
        # "2": they need help. It went to the pool's number that asked them, while our web was down.
        answer = sos_line.inbound("sms", from_=str(person.phone), to=WELFARE_NUMBER, body="2")
        settings.SMS_BACKEND = "twilio"
        sos_line.messaging_services[settings.WELFARE_MESSAGING_SERVICE_SID] = [WELFARE_NUMBER]
        clock.shift(dt.timedelta(minutes=3))

        found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    check = WelfareCheck.objects.get(person=person)
    assert check.reply_sid == answer["sid"] and check.answered_at is not None
    assert check.state == "needs_help"


@pytest.mark.usefixtures("provider")
def test_a_welfare_answer_whose_recovery_died_half_way_is_recorded_by_the_next_look(sos_line, settings, monkeypatch):
    # Remembered as answered while its transaction was rolled back, the "2" would be skipped by every later look.
    from helpline.welfare import services as welfare_services
    from helpline.welfare.models import WelfareCheck
    from tests.test_welfare_campaign import register, run_ticks

    with time_machine.travel(START, tick=False) as clock:
        (person,) = register(1)
        welfare_services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
        run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
        answer = sos_line.inbound("sms", from_=str(person.phone), to=SOS_NUMBER, body="2")
        settings.SMS_BACKEND = "twilio"
        sos_line.messaging_services[settings.WELFARE_MESSAGING_SERVICE_SID] = []
        clock.shift(dt.timedelta(minutes=3))
        dating = intake.date_contact_as_received

        def worker_killed(*args, **kwargs):
            raise SystemExit("killed")

        monkeypatch.setattr(intake, "date_contact_as_received", worker_killed)
        with pytest.raises(SystemExit):
            recovery.recover_missed_contacts()
        assert WelfareCheck.objects.get(person=person).reply_sid is None
        monkeypatch.setattr(intake, "date_contact_as_received", dating)

        found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_sms == 1
    assert WelfareCheck.objects.get(person=person).reply_sid == answer["sid"]


def test_a_long_call_keeps_neither_itself_nor_the_sms_sent_during_it_from_being_stored(sos_line):
    with time_machine.travel(START, tick=False) as clock:
        call = sos_line.inbound("call", from_=CITIZEN, to=SOS_NUMBER, status="in-progress")
        for _ in range(6):  # the looks of the call's first half hour
            clock.shift(dt.timedelta(minutes=5))
            recovery.recover_missed_contacts()
        clock.shift(dt.timedelta(minutes=5))
        sos_line.inbound("sms", from_="+38761555009", to=SOS_NUMBER, body="Muž mi prijeti nožem", ago_seconds=180)
        found = recovery.recover_missed_contacts()
        assert found is not None and found.stored_sms == 1  # at once, not after the call
        clock.shift(dt.timedelta(minutes=10))
        with sos_line._lock:  # the call ends after 45 minutes: answered by the fallback number, say
            listed = next(resource for resource in sos_line.accepted if resource["sid"] == call["sid"])
            listed["status"], listed["end_time"] = "completed", format_datetime(START + dt.timedelta(minutes=44))
        clock.shift(dt.timedelta(minutes=3))

        found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_calls == 1
    assert Case.objects.count() == 2


def test_a_call_nobody_answered_has_no_end_time_at_twilio_and_is_stored_all_the_same(sos_line):
    sos_line.inbound("call", from_=CITIZEN, to=SOS_NUMBER, status="canceled", ago_seconds=300)
    with sos_line._lock:  # as Twilio lists a call that did not complete: no end time
        sos_line.accepted[-1]["end_time"] = None

    found = recovery.recover_missed_contacts()

    assert found is not None and found.stored_calls == 1
    assert Case.objects.get().needs_callback
