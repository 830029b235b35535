"""No case stays unanswered: the assignee is told, must take the case in time, or the ladder climbs."""
import datetime as dt
import time

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from notifications import acknowledgement, ladder, outbox, texts
from notifications.backends import TwilioBackend
from notifications.models import DeliveryStatus, Notification, NotificationKind
from tests.concurrency import run_at_once
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from tests.tokens import api_token

pytestmark = pytest.mark.django_db
requires_postgres = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"], reason="needs concurrent transactions"
)
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


def assigned_case(text="treba nam pomoć oko ogrjeva", **fields):
    case = CaseFactory(**fields)
    MessageFactory(case=case, body=text)
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    return case


def send_all_queued():
    for notification_id in Notification.objects.filter(status="queued").values_list("pk", flat=True):
        outbox.deliver(notification_id)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_assignment_notifies_the_worker_by_sms_through_twilio(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    case = assigned_case()
    send_all_queued()

    assert len(twilio_api.messages) == 1
    sent = twilio_api.messages[0]
    assert sent.form["To"] == "+38761200300" and sent.form["From"] == "+38733000111"
    assert case.reference in sent.form["Body"] and "OK" in sent.form["Body"]
    notification = Notification.objects.get()
    assert sent.form["StatusCallback"] == f"https://sos.example.test/webhooks/twilio/message-status/?n={notification.pk}"
    assert (notification.status, notification.recipient) == (DeliveryStatus.SENT, worker.user)
    assert notification.provider_sid.startswith("SM")
    assert case.acknowledge_by == START + dt.timedelta(minutes=15)


def test_a_critical_assignment_also_calls_the_worker(clock, twilio_api):
    on_duty(phone="+38761200300")
    assigned_case("ubit će me, ima nož")
    send_all_queued()
    assert len(twilio_api.messages) == 1 and len(twilio_api.calls) == 1
    assert "staff-call/?notification=" in twilio_api.calls[0].form["Url"]


def test_alerts_go_to_twilio_over_the_connection_the_last_one_used(clock, twilio_api):
    """A new connection per alert was a TLS handshake with api.twilio.com before every critical SMS and call."""
    on_duty(phone="+38761200300")
    assigned_case("ubit će me, ima nož")
    assigned_case("ubit će me, ima nož")
    send_all_queued()
    assert len(twilio_api.messages) == 2 and len(twilio_api.calls) == 2
    assert twilio_api.connections == 1


def test_alerts_reach_twilio_through_the_proxy_the_environment_names(clock, twilio_api, settings, monkeypatch):
    """A centre's network may let the workers out only through a proxy (HTTPS_PROXY, as for any requests client)."""
    monkeypatch.setenv("HTTP_PROXY", twilio_api.url)  # the stub plays the proxy: it sees the request's full address
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings.TWILIO_API_BASE_URL = "http://api.twilio.example"
    on_duty(phone="+38761200300")
    assigned_case()
    send_all_queued()
    assert [sms.path.split("/2010-04-01/")[0] for sms in twilio_api.messages] == ["http://api.twilio.example"]
    assert Notification.objects.get().status == DeliveryStatus.SENT


def test_a_server_error_is_retried_with_backoff_then_succeeds(clock, twilio_api):
    on_duty()
    assigned_case()
    twilio_api.error(500, 20500, "Internal Server Error")
    notification = Notification.objects.get()

    first = outbox.deliver(notification.pk)
    notification.refresh_from_db()
    assert first.status == "queued" and 4 <= first.retry_in <= 6
    assert notification.last_error_code == "20500" and notification.attempts == 1
    assert outbox.deliver(notification.pk) is None  # not due yet: no second try early

    clock.shift(dt.timedelta(seconds=7))
    assert outbox.deliver(notification.pk).status == "sent"
    notification.refresh_from_db()
    assert notification.attempts == 2 and len(twilio_api.messages) == 2
    assert list(notification.delivery_attempts.values_list("result", flat=True)) == ["retry", "sent"]


def test_an_invalid_number_fails_at_once_and_the_ladder_goes_on(clock, twilio_api):
    on_duty()
    case = assigned_case()
    twilio_api.error(400, 21211, "The 'To' number is not a valid phone number.")
    assert outbox.deliver(Notification.objects.get().pk).status == "failed"
    assert len(twilio_api.messages) == 1

    clock.shift(dt.timedelta(minutes=16))
    assert ladder.run_due_escalations() == 1
    case.refresh_from_db()
    assert case.escalation_step == 1


def test_status_callbacks_move_forward_only_even_out_of_order(clock, twilio_api, twilio):
    on_duty()
    assigned_case()
    send_all_queued()
    notification = Notification.objects.get()
    for status in ["delivered", "sent", "sending"]:
        response = twilio.post(
            "/webhooks/twilio/message-status/", {"MessageSid": notification.provider_sid, "MessageStatus": status}
        )
        assert response.status_code == 204
    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.DELIVERED


def test_a_status_callback_twilio_repeats_is_logged_once_and_a_failure_keeps_its_error_code(clock, twilio_api, twilio):
    on_duty()
    assigned_case()
    send_all_queued()
    notification = Notification.objects.get()
    undelivered = {"MessageSid": notification.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    for _ in range(2):
        assert twilio.post("/webhooks/twilio/message-status/", undelivered).status_code == 204
    notification.refresh_from_db()
    assert (notification.status, notification.last_error_code) == (DeliveryStatus.UNDELIVERED, "30003")
    callbacks = notification.delivery_attempts.filter(result__startswith="callback")
    assert list(callbacks.values_list("result", "error_code")) == [("callback undelivered", "30003")]


def test_a_forged_status_callback_changes_nothing(clock, twilio_api, twilio):
    on_duty()
    assigned_case()
    send_all_queued()
    notification = Notification.objects.get()
    response = twilio.post(
        "/webhooks/twilio/message-status/",
        {"MessageSid": notification.provider_sid, "MessageStatus": "failed"},
        signature="forged",
    )
    assert response.status_code == 403
    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.SENT


def test_acknowledging_by_api_stops_the_ladder_and_cancels_reminders(clock, client):
    worker = on_duty()
    case = assigned_case()
    token = api_token(worker.user)

    response = client.post(f"/api/v1/cases/{case.pk}/acknowledge/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and response.json()["status"] == "acknowledged"
    case.refresh_from_db()
    assert case.escalation_due_at is None and case.acknowledged_at == START
    assert Notification.objects.get().status == DeliveryStatus.CANCELLED
    clock.shift(dt.timedelta(hours=2))
    assert ladder.run_due_escalations() == 0
    assert case.timeline.get(kind=EventKind.ACKNOWLEDGED).details["via"] == "API"


def test_another_workers_case_cannot_be_acknowledged_and_looks_absent(clock, client):
    on_duty()
    other = StaffFactory()
    case = assigned_case()
    token = api_token(other.user)
    response = client.post(f"/api/v1/cases/{case.pk}/acknowledge/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 404


def test_acknowledging_needs_a_login(client):
    case = CaseFactory()
    assert client.post(f"/api/v1/cases/{case.pk}/acknowledge/").status_code in (401, 403)


@pytest.mark.parametrize("reply", ["OK", "ok {code}", "1", "Ok, {code}", "ДА {code}"])
def test_acknowledging_by_sms_reply_from_the_workers_phone(clock, twilio, reply):
    worker = on_duty(phone="+38761200300")
    case = assigned_case()
    code = Notification.objects.get(recipient=worker.user).ack_code
    assert len(code) == 4 and code in Notification.objects.get().body
    response = twilio.sms(reply.format(code=code), sid="SMack", from_number="+38761200300")

    assert response.status_code == 200 and case.reference in response.content.decode()
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED and case.assigned_to == worker.user
    assert Case.objects.count() == 1  # a staff SMS is a command, never a citizen case


def test_an_unknown_staff_command_gets_a_short_help_reply(clock, twilio):
    on_duty(phone="+38761200300")
    response = twilio.sms("what now?", sid="SMhelp", from_number="+38761200300")
    assert "OK" in response.content.decode()
    assert not Case.objects.exists()


def test_acknowledging_by_key_press_on_the_critical_call(clock, twilio):
    on_duty(phone="+38761200300")
    case = assigned_case("ubit će me, ima nož")
    call = Notification.objects.get(channel="voice")
    twiml = twilio.post(f"/webhooks/twilio/voice/staff-call/?notification={call.pk}", {"CallSid": "CAw"}).content
    assert b"<Gather" in twiml and b"Pritisnite 1" in twiml and "kritično".encode() in twiml  # its priority, said
    twilio.post(f"/webhooks/twilio/voice/staff-call/accept/?notification={call.pk}", {"CallSid": "CAw", "Digits": "1"})
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED


def test_a_key_press_on_a_case_given_to_someone_else_meanwhile_says_so(clock, twilio):
    """The ladder gave the case to a colleague while this phone rang: pressing 1 takes nothing, and they hear
    whose it is, not silence they could take for 'yours'."""
    first = on_duty(phone="+38761200300")
    case = assigned_case("ubit će me, ima nož")
    call = Notification.objects.get(channel="voice", recipient=first.user)
    colleague = on_duty(phone="+38761200301", user__first_name="Dario", user__last_name="K")
    Case.objects.filter(pk=case.pk).update(assigned_to=colleague.user)  # as the ladder's reassign step leaves it

    heard = twilio.post(f"/webhooks/twilio/voice/staff-call/accept/?notification={call.pk}",
                        {"CallSid": "CAw", "Digits": "1"}).content.decode()  # fmt: skip
    case.refresh_from_db()
    assert case.assigned_to == colleague.user and case.status != CaseStatus.ACKNOWLEDGED
    assert "<Say" in heard and "Dario K" in heard


def test_a_busy_worker_phone_is_called_once_more_before_the_ladder_moves(clock, twilio_api, twilio):
    on_duty(phone="+38761200300")
    assigned_case("ubit će me, ima nož")
    send_all_queued()
    call = Notification.objects.get(channel="voice")
    twilio.post("/webhooks/twilio/voice/staff-call/status/", {"CallSid": call.provider_sid, "CallStatus": "busy"})
    call.refresh_from_db()
    assert call.status == DeliveryStatus.QUEUED and call.next_attempt_at == START + dt.timedelta(seconds=60)
    clock.shift(dt.timedelta(seconds=61))
    outbox.deliver(call.pk)
    call.refresh_from_db()
    twilio.post("/webhooks/twilio/voice/staff-call/status/", {"CallSid": call.provider_sid, "CallStatus": "busy"})
    call.refresh_from_db()
    assert len(twilio_api.calls) == 2 and call.status == DeliveryStatus.SENT  # no third call


def test_the_full_ladder_with_its_timings_for_a_critical_case(clock, twilio_api):
    first = on_duty(phone="+38761200301", skills=["domestic_violence"])
    second = on_duty(phone="+38761200302")
    supervisor = on_duty(role="supervisor", phone="+38761200309")
    off_duty_supervisor = StaffFactory(role="supervisor", phone="+38761200310")
    case = assigned_case("ubit će me, ima nož")
    assert case.assigned_to == first.user and case.acknowledge_by == START + dt.timedelta(minutes=2)

    def step_at(minutes_after_start: float) -> Case:
        clock.move_to(START + dt.timedelta(minutes=minutes_after_start))
        ladder.run_due_escalations()
        case.refresh_from_db()
        return case

    assert step_at(1.9).escalation_step == 0 and not case.is_escalated  # not yet due
    assert step_at(2).escalation_step == 1 and case.is_escalated  # reminder; escalated from the first step on
    assert Notification.objects.filter(kind=NotificationKind.REMINDER, recipient=first.user).count() == 2  # SMS+call
    assert step_at(3).escalation_step == 2  # reassigned to the next worker on duty
    assert case.assigned_to == second.user
    assert step_at(5).escalation_step == 3  # the supervisor on duty, called too for a critical case
    assert Notification.objects.filter(kind=NotificationKind.ESCALATION, recipient=supervisor.user).count() == 2
    assert step_at(7).escalation_step == 4  # all supervisors
    assert Notification.objects.filter(kind=NotificationKind.ESCALATION, recipient=off_duty_supervisor.user).exists()
    assert case.escalation_due_at == START + dt.timedelta(minutes=12)  # the ladder never goes quiet
    steps = case.timeline.filter(kind=EventKind.ESCALATED).order_by("id")
    assert [e.details["action"] for e in steps] == [
        "remind_assignee", "reassign", "notify_supervisor_on_duty", "notify_all_supervisors",
    ]  # fmt: skip
    assert all(e.details.get("lateness_seconds") in (None, 0.0) for e in steps)


def test_acknowledgement_in_the_middle_of_the_ladder_stops_it_at_once(clock):
    worker = on_duty(phone="+38761200301")
    on_duty(phone="+38761200302")
    case = assigned_case("ubit će me, ima nož")
    clock.move_to(START + dt.timedelta(minutes=2))
    ladder.run_due_escalations()
    acknowledgement.acknowledge_case(case, by=worker.user, via="API")
    clock.move_to(START + dt.timedelta(minutes=30))
    assert ladder.run_due_escalations() == 0
    assert Notification.objects.filter(status="queued").count() == 0


def test_a_case_nobody_on_duty_can_take_goes_straight_to_the_supervisors(clock):
    supervisor = StaffFactory(role="supervisor", phone="+38761200309")  # not on duty
    case = CaseFactory()
    MessageFactory(case=case, body="treba nam pomoć")
    actions.do_triage_case(case.pk)
    assert ladder.run_due_escalations() == 1
    case.refresh_from_db()
    assert case.is_escalated
    assert Notification.objects.get(kind=NotificationKind.ESCALATION).recipient == supervisor.user


def test_a_reminder_for_a_case_taken_meanwhile_is_not_sent(clock, twilio_api):
    worker = on_duty()
    case = assigned_case()
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.ACKNOWLEDGED)  # taken by another path
    outbox.deliver(Notification.objects.get(recipient=worker.user).pk)
    assert twilio_api.messages == []
    assert Notification.objects.get().status == DeliveryStatus.CANCELLED


def test_a_reply_to_a_citizen_who_said_sms_is_unsafe_is_never_sent(clock, twilio_api):
    case = CaseFactory(safe_to_text=False)
    notification = outbox.queue_notification(
        key="reply:1", to_number="+38761999000", body="Zovemo vas sutra.", kind=NotificationKind.CITIZEN_REPLY,
        case=case,
    )  # fmt: skip
    outbox.deliver(notification.pk)
    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.CANCELLED and "not safe" in notification.last_error
    assert twilio_api.messages == []


def test_a_critical_cases_call_to_its_worker_does_not_wait_for_the_sms_slot(clock, twilio_api, settings):
    """Twilio limits SMS a second and calls a second apart: the SMS and the call about a critical case both go out
    at once, where with one budget the call waited a second behind the SMS. A second SMS in that second still waits.
    """
    settings.SMS_PER_SECOND = settings.CALLS_PER_SECOND = 1
    case = CaseFactory(priority="critical")
    for key, channel in [("s", "sms"), ("v", "voice"), ("s2", "sms")]:
        outbox.queue_notification(key=key, to_number="+38761999000", body="x", kind="assignment", case=case,
                                  channel=channel)  # fmt: skip
    outcomes = [outbox.deliver(pk) for pk in Notification.objects.order_by("pk").values_list("pk", flat=True)]
    assert [outcome.status for outcome in outcomes] == ["sent", "sent", "queued"]
    assert 0 < outcomes[2].retry_in <= 1.01 and outcomes[2].queue == "alerts"  # as the next second starts
    assert (len(twilio_api.messages), len(twilio_api.calls)) == (1, 1)


def test_the_same_notification_key_is_written_once(clock):
    case = CaseFactory()
    first = outbox.queue_notification(key="k", to_number="+38761999000", body="x", kind="reminder", case=case)
    second = outbox.queue_notification(key="k", to_number="+38761999000", body="x", kind="reminder", case=case)
    assert first is not None and second is None
    assert Notification.objects.count() == 1


def test_sending_keeps_to_the_numbers_rate(clock, twilio_api, settings):
    settings.SMS_PER_SECOND = 1
    case = CaseFactory()
    for n in range(2):
        outbox.queue_notification(key=f"r{n}", to_number="+38761999000", body="x", kind="reminder", case=case)
    outcomes = [outbox.deliver(pk) for pk in Notification.objects.order_by("pk").values_list("pk", flat=True)]
    assert outcomes[0].status == "sent" and outcomes[1].retry_in == 1
    assert outcomes[1].queue == "notifications"
    assert len(twilio_api.messages) == 1


def test_a_critical_cases_sms_takes_the_numbers_next_second_ahead_of_a_crisis_broadcast(clock, twilio_api, settings):
    """A long code sends about one SMS a second, and a broadcast to a flood's citizens queues hundreds. Every one of
    them retried each second for the same slot as the critical alert, which so went out after most of them. Now
    an alert that finds the second taken holds the next ones for itself: messages about other cases wait."""
    settings.SMS_PER_SECOND = 1
    citizens = [
        outbox.queue_notification(
            key=f"broadcast:{n}", to_number=f"+3876130000{n}", body="Poplava: ...",
            kind=NotificationKind.CRISIS_BROADCAST, case=CaseFactory(),
        )
        for n in range(3)
    ]  # fmt: skip
    alert = outbox.queue_notification(key="alert", to_number="+38761999000", body="x", kind="assignment",
                                      case=CaseFactory(priority="critical"))  # fmt: skip

    assert outbox.deliver(citizens[0].pk).status == "sent"  # this second's SMS
    outcome = outbox.deliver(alert.pk)
    assert outcome.status == "queued" and outcome.retry_in <= 1.01  # the second is taken: asks again in the next
    clock.shift(outcome.retry_in)
    assert outbox.deliver(citizens[1].pk).status == "queued"  # first to ask in the new second, and it waits
    assert outbox.deliver(alert.pk).status == "sent"
    clock.shift(3)
    assert outbox.deliver(citizens[1].pk).status == "sent"  # no alert waiting: the broadcast goes on
    assert [message.form["To"] for message in twilio_api.messages] == ["+38761300000", "+38761999000", "+38761300001"]


def broadcast_sms(n: int, **case_fields) -> Notification:
    return outbox.queue_notification(
        key=f"broadcast:{n}", to_number=f"+3876130000{n}", body="Poplava: ...",
        kind=NotificationKind.CRISIS_BROADCAST, case=CaseFactory(**case_fields),
    )  # fmt: skip


def alerts_about_a_critical_case(count: int) -> list[Notification]:
    case = CaseFactory(priority="critical")
    return [
        outbox.queue_notification(key=f"alert:{n}", to_number="+38761999000", body="x", kind="assignment", case=case)
        for n in range(count)
    ]


def test_a_broadcast_to_the_citizen_of_a_critical_case_is_no_alert_and_waits_like_the_rest(clock, twilio_api, settings):
    settings.SMS_PER_SECOND = 1
    to_critical_citizen = broadcast_sms(0, priority="critical")
    alert = outbox.queue_notification(key="alert", to_number="+38761999000", body="x", kind="assignment",
                                      case=CaseFactory(priority="critical"))  # fmt: skip
    assert not outbox.is_alert(to_critical_citizen) and outbox.queue_of(to_critical_citizen) == "notifications"
    clock.shift(1)  # a second that is not open to all
    assert outbox.deliver(broadcast_sms(1).pk).status == "sent"
    outcome = outbox.deliver(alert.pk)
    clock.shift(outcome.retry_in)
    assert outbox.deliver(to_critical_citizen.pk).status == "queued"
    assert outbox.deliver(alert.pk).status == "sent"


def test_a_home_visits_alarm_holds_the_line_like_an_alert_about_a_critical_case(clock, twilio_api, settings):
    settings.SMS_PER_SECOND = 1
    alarm = outbox.queue_notification(key="visit-alarm", to_number="+38761999000", body="POMOC",
                                      kind=NotificationKind.ESCALATION, queue="alerts")  # fmt: skip
    assert outbox.is_alert(alarm) and outbox.queue_of(alarm) == "alerts"
    clock.shift(1)
    assert outbox.deliver(broadcast_sms(0).pk).status == "sent"
    outcome = outbox.deliver(alarm.pk)
    assert outcome.status == "queued" and outcome.queue == "alerts"
    clock.shift(outcome.retry_in)
    assert outbox.deliver(broadcast_sms(1).pk).status == "queued"
    assert outbox.deliver(alarm.pk).status == "sent"


def test_while_alerts_outnumber_the_numbers_rate_for_long_one_second_in_five_is_left_to_the_other_messages(
    clock, twilio_api, settings
):
    """Otherwise a surge's ladders at one SMS a second held the line for ever: no call-out, digest or answer."""
    settings.SMS_PER_SECOND = 1
    alerts = alerts_about_a_critical_case(12)
    waiting = broadcast_sms(0)
    went_at = None
    for second in range(1, 15):
        clock.move_to(START + dt.timedelta(seconds=second, milliseconds=10))
        for alert in alerts:  # the alerts ask first, as the second starts: one gets through, the others hold on
            outbox.deliver(alert.pk)
        if outbox.deliver(waiting.pk) is not None and Notification.objects.get(pk=waiting.pk).sent_at:
            went_at = second
            break
    # Held from second 1; at 5 not yet for 5 s; 10 is the first second that belongs to the rest.
    assert went_at == 10
    assert Notification.objects.filter(kind="assignment", sent_at__isnull=False).count() == 9  # one a second before


def test_when_nothing_else_waits_the_alerts_keep_every_second(clock, twilio_api, settings):
    settings.SMS_PER_SECOND = 1
    alerts = alerts_about_a_critical_case(14)
    for second in range(1, 13):
        clock.move_to(START + dt.timedelta(seconds=second, milliseconds=10))
        for alert in alerts:
            outbox.deliver(alert.pk)
    assert len(twilio_api.messages) == 12  # one a second, the fifth seconds too


def test_a_workers_reply_to_the_citizen_of_a_critical_case_is_an_alert_and_goes_from_the_sos_number(settings):
    settings.STAFF_ALERT_SENDER = "+38733000222"
    reply = outbox.queue_notification(
        key="reply", to_number="+38761999000", body="Policija dolazi.", kind=NotificationKind.CITIZEN_REPLY,
        case=CaseFactory(priority="critical"),
    )
    assert outbox.is_alert(reply) and outbox.queue_of(reply) == "alerts"
    assert outbox._sender(reply) == ""  # the citizen knows the SOS number, and answers it


def test_while_the_line_is_held_a_faster_sender_keeps_one_slot_a_second_for_alerts(clock, twilio_api, settings):
    settings.SMS_PER_SECOND = 5
    alerts = alerts_about_a_critical_case(6)
    clock.shift(1)
    assert [outbox.deliver(alert.pk).status for alert in alerts] == ["sent"] * 5 + ["queued"]  # held from now
    clock.shift(1.01)  # when the waiting alert asks again
    others = [outbox.deliver(broadcast_sms(n).pk).status for n in range(6)]
    assert others == ["sent"] * 4 + ["queued"] * 2  # the fifth slot is the alert's
    assert outbox.deliver(alerts[5].pk).status == "sent"


def test_a_drills_messages_take_none_of_the_numbers_rate(clock, twilio_api, settings):
    settings.SMS_PER_SECOND = 1
    drill = outbox.queue_notification(key="drill", to_number="+38761999000", body="x", kind="assignment",
                                      case=CaseFactory(priority="critical", is_drill=True))  # fmt: skip
    real = outbox.queue_notification(key="real", to_number="+38761999001", body="x", kind="citizen_reply",
                                     case=CaseFactory())  # fmt: skip
    assert outbox.deliver(drill.pk).status == "sent"
    assert outbox.deliver(real.pk).status == "sent"  # the same second: the drill took no slot


def test_a_sender_twilio_refuses_gives_way_to_the_sos_number_and_nobodys_phone_is_blamed(clock, twilio_api, settings):
    settings.STAFF_ALERT_SENDER = "+38733000999"  # a number the account does not have
    worker = on_duty(phone="+38761200300")
    twilio_api.error(400, 21606, "The 'From' phone number provided is not a valid message-capable Twilio number")
    assigned_case("ubit će me, ima nož")
    send_all_queued()
    sms = Notification.objects.get(channel="sms")
    assert sms.status == DeliveryStatus.SENT
    assert [message.form["From"] for message in twilio_api.messages] == ["+38733000999", "+38733000111"]
    worker.refresh_from_db()
    assert worker.phone_failing_since is None
    assert len(twilio_api.calls) == 1  # the call, placed from the SOS number, was not placed twice
    # Meanwhile the next staff SMS goes from the SOS number at once, in its rate and line.
    outbox.queue_notification(key="reminder", to_number="+38761200300", body="x", kind=NotificationKind.REMINDER,
                              case=sms.case, recipient=worker.user)  # fmt: skip
    send_all_queued()
    assert [message.form["From"] for message in twilio_api.messages][2:] == ["+38733000111"]


def test_a_staff_sms_resent_from_the_sos_number_after_a_slow_refusal_goes_out_once(
    clock, twilio_api, settings, monkeypatch
):
    # Twilio took 25 s to refuse the staff sender; the second request, from the SOS number, outlived the 30 s
    # claim, so the relay took the worker for lost and another worker sent the SMS as well.
    settings.STAFF_ALERT_SENDER = "+38733000999"
    on_duty(phone="+38761200300")
    case = CaseFactory()
    reminder = outbox.queue_notification(key="reminder", to_number="+38761200300", body="x", kind="reminder",
                                         case=case)  # fmt: skip
    twilio_api.error(400, 21606, "The 'From' phone number provided is not a valid message-capable Twilio number")
    real_send, requests = TwilioBackend.send, []

    def slow_twilio(backend, message):
        requests.append(message.sender)
        if len(requests) == 1:
            clock.shift(dt.timedelta(seconds=25))  # the refusal takes its time
        elif len(requests) == 2:
            clock.shift(dt.timedelta(seconds=10))  # the second request is still on its way when
            outbox.relay_queued()  # the relay looks for lost workers,
            outbox.deliver(reminder.pk)  # and another worker answers a doorbell, if one was rung
        return real_send(backend, message)

    monkeypatch.setattr(TwilioBackend, "send", slow_twilio)
    outcome = outbox.deliver(reminder.pk)
    clock.shift(dt.timedelta(minutes=1))
    outbox.relay_queued()
    outbox.deliver(reminder.pk)
    assert [m["from"] for m in twilio_api.accepted_messages()] == ["+38733000111"]
    assert outcome.status == DeliveryStatus.SENT


def test_a_staff_phone_is_not_blamed_when_the_sos_number_is_refused_as_a_sender_too(clock, twilio_api, settings):
    settings.STAFF_ALERT_SENDER = "+38733000999"
    worker = on_duty(phone="+38761200300")
    case = CaseFactory()
    outbox.queue_notification(key="reminder", to_number="+38761200300", body="x", kind=NotificationKind.REMINDER,
                              case=case, recipient=worker.user)  # fmt: skip
    for _ in range(2):
        twilio_api.error(400, 21606, "The 'From' phone number provided is not a valid message-capable Twilio number")
    send_all_queued()
    assert Notification.objects.get(idempotency_key="reminder").status == DeliveryStatus.FAILED
    worker.refresh_from_db()
    assert worker.phone_failing_since is None  # the sender's fault, not this phone's


def test_the_fallback_numbers_standing_in_for_staff_are_texted_from_the_staff_sender(clock, twilio_api, settings):
    settings.STAFF_ALERT_SENDER = "+38733000222"
    # No recipient: the head of the centre, the ladder's last rung.
    outbox.queue_notification(key="fallback", to_number="+38761555000", body="x", kind=NotificationKind.ESCALATION,
                              case=CaseFactory(priority="critical"))  # fmt: skip
    send_all_queued()
    assert twilio_api.messages[-1].form["From"] == "+38733000222"


def test_staff_alerts_go_from_their_own_sender_and_answers_to_citizens_from_the_sos_number(
    clock, twilio_api, settings
):
    """Twilio queues what a number sends beyond its rate: on the SOS number, a staff alert waited behind every
    answer to the citizens queued before it."""
    settings.STAFF_ALERT_SENDER = "+38733000222"
    on_duty(phone="+38761200300")
    case = assigned_case("ubit će me, ima nož")
    outbox.queue_notification(key="reply", to_number="+38761999000", body="Zovemo vas.",
                              kind=NotificationKind.CITIZEN_REPLY, case=case)  # fmt: skip
    send_all_queued()
    sent_from = {message.form["To"]: message.form.get("From") for message in twilio_api.messages}
    assert sent_from == {"+38761200300": "+38733000222", "+38761999000": "+38733000111"}

    settings.STAFF_ALERT_SENDER = "MG" + "2" * 32  # a Messaging Service: its own pool of numbers
    outbox.queue_notification(key="reminder", to_number="+38761200300", body="x", kind=NotificationKind.REMINDER,
                              case=case, recipient=case.assigned_to)  # fmt: skip
    send_all_queued()
    assert twilio_api.messages[-1].form["MessagingServiceSid"] == "MG" + "2" * 32


def test_with_a_sender_of_their_own_staff_alerts_never_wait_for_the_sos_numbers_rate(clock, twilio_api, settings):
    settings.SMS_PER_SECOND = 1
    settings.STAFF_ALERT_SENDER = "+38733000222"
    case = CaseFactory()
    to_citizen = outbox.queue_notification(key="broadcast", to_number="+38761300000", body="Poplava: ...",
                                           kind=NotificationKind.CRISIS_BROADCAST, case=case)  # fmt: skip
    to_staff = outbox.queue_notification(key="reminder", to_number="+38761200300", body="x",
                                         kind=NotificationKind.REMINDER, case=case,
                                         recipient=StaffFactory().user)  # fmt: skip
    assert outbox.deliver(to_citizen.pk).status == "sent"  # the SOS number's second
    assert outbox.deliver(to_staff.pk).status == "sent"  # the same second, from the other number


def test_a_retry_about_a_critical_case_stays_on_the_alerts_queue(clock, twilio_api):
    on_duty()
    assigned_case("ubit će me, ima nož")
    twilio_api.error(503, 20503, "Service Unavailable")
    sms = Notification.objects.get(channel="sms")
    outcome = outbox.deliver(sms.pk)
    assert (outcome.status, outcome.queue) == ("queued", "alerts")


@pytest.mark.skipif(
    not django_settings.CELERY_BROKER_URL.startswith("redis"), reason="the embedded broker takes messages in order"
)
def test_a_new_critical_cases_first_alerts_are_taken_before_reminders_already_waiting(
    clock, queues, django_capture_on_commit_callbacks
):
    on_duty(phone="+38761200301")
    with django_capture_on_commit_callbacks(execute=True):
        waiting = assigned_case("ubit će me, ima nož")
    queues.purge("alerts")  # its first SMS and call went out
    clock.move_to(START + dt.timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        ladder.run_due_escalations()  # nobody took it: a reminder SMS and call to the same person
        new = assigned_case("ubit će me, ima nož")  # meanwhile another critical case comes in

    taken = [Notification.objects.get(pk=pk) for (pk,) in queues.taken_in_order("alerts")]

    assert [(n.case_id, n.kind) for n in taken] == [
        (new.pk, NotificationKind.ASSIGNMENT), (new.pk, NotificationKind.ASSIGNMENT),
        (waiting.pk, NotificationKind.REMINDER), (waiting.pk, NotificationKind.REMINDER),
    ]  # fmt: skip


def test_a_notification_written_while_the_broker_is_down_stays_queued_for_the_relay(
    clock, unreachable_broker, django_capture_on_commit_callbacks
):
    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=True):
        outbox.queue_notification(key="outage", to_number="+38761999000", body="x", kind="reminder", case=case)
    notification = Notification.objects.get()
    assert notification.status == DeliveryStatus.QUEUED  # the doorbell was lost, the row was not


def test_the_relay_rings_again_for_queued_notifications_and_sending_happens_once(clock, twilio_api, queues):
    case = CaseFactory()
    notification = outbox.queue_notification(
        key="lost", to_number="+38761999000", body="x", kind="reminder", case=case
    )
    assert outbox.relay_queued() == 0  # too fresh: the task may still be on its way
    clock.shift(dt.timedelta(seconds=11))
    assert outbox.relay_queued() == 1
    assert queues.size("notifications") == 1
    outbox.deliver(notification.pk)
    outbox.deliver(notification.pk)  # the original doorbell arrives late
    assert len(twilio_api.messages) == 1


def test_the_relay_does_not_pile_copies_on_a_long_queue_while_a_notification_waits_in_it(clock, queues):
    notification = outbox.queue_notification(
        key="waiting", to_number="+38761999000", body="x", kind="reminder", case=CaseFactory()
    )
    clock.shift(dt.timedelta(seconds=11))
    assert outbox.relay_queued() == 1
    for _ in range(5):  # the relay's ticks while the doorbell waits behind a backlog
        clock.shift(dt.timedelta(seconds=10))
        outbox.relay_queued()
    assert queues.size("notifications") == 1  # not six copies
    clock.shift(dt.timedelta(seconds=15))  # a minute after its last ring it may really be lost: ring once more
    assert outbox.relay_queued() == 1
    assert queues.size("notifications") == 2
    Notification.objects.filter(pk=notification.pk).update(attempts=1)  # a new attempt rings at once
    assert outbox.relay_queued() == 1


def test_the_gap_report_goes_to_every_supervisor_once_a_day(clock):
    StaffFactory(role="supervisor", phone="+38761200309")
    StaffFactory(role="supervisor", phone="+38761200310")
    assert outbox.send_roster_gap_report() == 2
    assert outbox.send_roster_gap_report() == 0
    body = Notification.objects.filter(kind=NotificationKind.ROSTER_GAPS).first().body
    assert "nema dezurnog socijalnog radnika" in body  # one GSM-7 segment per 160 characters


def test_a_staff_sms_fits_one_segment_without_diacritics_and_the_call_keeps_them(clock):
    # "slučaj ... kritično" made every staff SMS UCS-2: two or three segments where one does, in a surge's queue.
    worker = StaffFactory(phone="+38761200300")
    case = CaseFactory(priority="critical", category="domestic_violence")
    notifications = outbox.notify_staff(
        worker, case, kind=NotificationKind.ESCALATION, key="x", body=texts.escalation, call_too=True
    )  # fmt: skip
    sms = next(n for n in notifications if n.channel == "sms")
    call = next(n for n in notifications if n.channel == "voice")
    assert "slucaj" in sms.body and "kriticno" in sms.body and len(sms.body) <= 160
    assert "slučaj" in call.body  # spoken: the voice reads the letters as they are
    assert texts.for_staff_sms("Ђорђе: slučaj") == "Ђорђе: slučaj"  # not GSM-7 either way: left as it is


def test_a_gap_over_several_days_reads_as_such_with_the_days_named_in_the_centres_language():
    # It read "Fri 27.11. 16:00-08:00": English day names inside a Bosnian SMS, and a weekend like one night.
    from helpline.roster.services import Gap

    friday = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)  # 16:00 in Sarajevo
    gaps = [Gap(friday, friday + dt.timedelta(days=2, hours=16), "nema dežurnog supervizora")]
    line = texts.roster_gaps(gaps).splitlines()[1]
    assert line.startswith("pet. 27.11. 16:00 - pon. 30.11. 08:00"), line


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_sweeps_run_each_step_once():
    now = timezone.now()
    on_duty_staff = [StaffFactory(phone=f"+3876130000{n}") for n in range(2)]
    for staff in on_duty_staff:
        ShiftFactory(staff=staff, starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=8))
    cases = []
    for _ in range(5):
        case = CaseFactory()
        MessageFactory(case=case, body="treba nam pomoć oko ogrjeva")
        actions.do_triage_case(case.pk)
        cases.append(case)
    Case.objects.update(escalation_due_at=now - dt.timedelta(seconds=1))
    counts, errors = run_at_once(ladder.run_due_escalations, [(), ()])
    assert errors == [] and sum(counts) == 5
    for case in cases:
        assert case.timeline.filter(kind=EventKind.ESCALATED).count() == 1
        assert Case.objects.get(pk=case.pk).escalation_step == 1


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_alerts_sent_by_threads_at_once_each_reach_twilio_once_and_wait_for_it_side_by_side(twilio_api):
    """The alerts worker sends in threads (deploy/supervisord.conf). Every alert of three critical cases rings twice
    (a doorbell rung again by the relay), all at once, while Twilio takes a while to answer: each SMS and call goes
    out once and is recorded once, and the sends overlap instead of waiting one behind the other."""
    from triage.services import install_default_rules

    install_default_rules()  # a transactional test before may have flushed them
    now = timezone.now()
    ShiftFactory(staff=StaffFactory(phone="+38761300100"), starts_at=now - dt.timedelta(hours=1),
                 ends_at=now + dt.timedelta(hours=8))  # fmt: skip
    cases = [assigned_case("ubit će me, ima nož") for _ in range(3)]
    alerts = list(Notification.objects.filter(case__in=cases).values_list("pk", flat=True))
    assert len(alerts) == 6  # an SMS and a call for each
    twilio_api.delay_seconds = 0.3

    _results, errors = run_at_once(outbox.deliver, [(pk,) for pk in alerts * 2])

    assert errors == []
    assert (len(twilio_api.messages), len(twilio_api.calls)) == (3, 3)
    assert set(Notification.objects.filter(pk__in=alerts).values_list("status", "attempts")) == {("sent", 1)}
    assert twilio_api.most_in_flight > 1
    for case in cases:
        assert case.timeline.filter(kind=EventKind.MESSAGE_SENT).count() == 2


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_sms_result_is_recorded_while_a_colleague_holds_the_case(twilio_api):
    """Recording that an alert went out writes the case's timeline while holding the alert's row; a colleague's
    change holds the case's row and then reaches for its alerts. Neither waits for the other: both finish, and
    the alert is recorded as sent once (with plain FOR UPDATE on the case the two deadlocked)."""
    now = timezone.now()
    worker = StaffFactory(phone="+38761300100")
    ShiftFactory(staff=worker, starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=8))
    case = CaseFactory()
    MessageFactory(case=case, body="treba nam pomoć oko ogrjeva")
    actions.do_triage_case(case.pk)
    alert = Notification.objects.get(case=case)

    def colleague_changes_the_case() -> str:
        with transaction.atomic():
            Case.objects.for_change().get(pk=case.pk)
            time.sleep(1.0)  # the alert's result arrives meanwhile
            return Notification.objects.for_change().get(pk=alert.pk).status

    def alert_is_sent() -> str:
        time.sleep(0.2)
        return outbox.deliver(alert.pk).status

    results, errors = run_at_once(lambda step: step(), [(colleague_changes_the_case,), (alert_is_sent,)])

    assert errors == []
    assert sorted(results) == [DeliveryStatus.SENT, DeliveryStatus.SENT]
    assert len(twilio_api.messages) == 1
    sent_events = case.timeline.filter(kind=EventKind.MESSAGE_SENT)
    assert [event.details["notification_id"] for event in sent_events] == [alert.pk]


def test_a_priority_whose_policy_was_deleted_still_escalates_by_the_built_in_ladder(clock):
    from notifications.models import EscalationPolicy

    EscalationPolicy.objects.all().delete()
    on_duty()
    case = assigned_case()
    assert case.acknowledge_by == START + dt.timedelta(minutes=15)
    clock.shift(dt.timedelta(minutes=15))
    assert ladder.run_due_escalations() == 1


def test_a_notification_about_a_critical_case_rides_the_alerts_queue_beside_critical_triage(
    queues, django_capture_on_commit_callbacks
):
    """Never in the critical queue, where a critical triage once waited behind a ladder's thousands of alerts."""
    critical, normal = CaseFactory(priority="critical"), CaseFactory(priority="normal")
    with django_capture_on_commit_callbacks(execute=True):
        outbox.queue_notification(key="c", to_number="+38761999000", body="x", kind="assignment", case=critical)
        outbox.queue_notification(key="n", to_number="+38761999000", body="x", kind="assignment", case=normal)
    assert (queues.size("alerts"), queues.size("notifications"), queues.size("critical")) == (1, 1, 0)


def test_a_notification_queued_twice_is_written_once_and_the_work_around_it_goes_on():
    """A retried step queues the same message again: the second is refused without breaking the transaction it is
    in, so the rest of that step (its timeline, the next notification) is still written."""
    case = CaseFactory()
    with transaction.atomic():
        first = outbox.queue_notification(key="step:1", to_number="+38761300100", body="a", kind="reminder", case=case)
        again = outbox.queue_notification(key="step:1", to_number="+38761300100", body="b", kind="reminder", case=case)
        after = outbox.queue_notification(key="step:2", to_number="+38761300100", body="c", kind="reminder", case=case)
    assert first is not None and again is None and after is not None
    assert list(Notification.objects.filter(case=case).order_by("pk").values_list("pk", "body")) == [
        (first.pk, "a"), (after.pk, "c")
    ]  # fmt: skip
    assert first.created_at is not None and str(first.to_number) == "+38761300100"


def test_a_batchs_notifications_are_written_together_each_once_and_each_new_one_sent(
    queues, django_assert_num_queries, django_capture_on_commit_callbacks
):
    """A batch of assignments writes its SMS in one INSERT. A message whose key an earlier run wrote is neither
    written nor sent again, nor is one the batch queued twice; every other one is written and sent once, about a
    critical case by the alerts queue."""
    critical, normal = CaseFactory(priority="critical"), CaseFactory(priority="normal")
    outbox.queue_notification(key="k:1", to_number="+38761300100", body="earlier", kind="assignment", case=normal)
    queued = [("k:1", "again", normal), ("k:2", "new", normal), ("k:2", "twice", normal), ("k:3", "alert", critical)]
    with (
        django_capture_on_commit_callbacks(execute=True),
        transaction.atomic(),
        django_assert_num_queries(1),
        outbox.notifications_written_together(),
    ):
        for key, body, case in queued:
            outbox.queue_notification(key=key, to_number="+38761300100", body=body, kind="assignment", case=case)
    assert list(Notification.objects.order_by("pk").values_list("idempotency_key", "body")) == [
        ("k:1", "earlier"), ("k:2", "new"), ("k:3", "alert")
    ]  # fmt: skip
    assert (queues.size("notifications"), queues.size("alerts")) == (1, 1)


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_notification_queued_by_two_workers_at_once_is_written_once():
    case = CaseFactory()

    def queue(body: str) -> int | None:
        with transaction.atomic():
            notification = outbox.queue_notification(
                key=f"step:{case.pk}:1", to_number="+38761300100", body=body, kind="reminder", case=case
            )
            time.sleep(0.2)  # the other worker's INSERT waits for this one to commit
            return notification.pk if notification else None

    results, errors = run_at_once(queue, [("a",), ("b",)])

    assert errors == []
    assert sorted(pk is not None for pk in results) == [False, True]  # one wrote it, the other was told so
    assert Notification.objects.filter(case=case).count() == 1


def test_a_failed_alert_and_each_escalation_step_are_logged_with_the_case_kind_and_a_plain_reason(
    clock, twilio_api, caplog
):
    # The night's log read "notification 2 failed for good: 21211" and "messages to a staff member's phone (user 1)
    # are not arriving": no case, no kind, no meaning; and no line at all when a case climbed its ladder.
    staff = on_duty()
    case = assigned_case()
    twilio_api.error(400, 21211, "The 'To' number is not a valid phone number.")
    with caplog.at_level("INFO"):
        outbox.deliver(Notification.objects.get().pk)
        clock.shift(dt.timedelta(minutes=16))
        ladder.run_due_escalations()
    lines = [record.getMessage() for record in caplog.records]
    failed = next(line for line in lines if "failed for good" in line)
    assert case.reference in failed and "assignment" in failed and "invalid number" in failed
    phone = next(line for line in lines if "not arriving" in line)
    assert case.reference in phone and "invalid number" in phone
    step = next(line for line in lines if "escalation step 1" in line)
    assert case.reference in step
    assert not any(str(staff.phone) in line or str(staff.phone)[-6:] in line for line in lines)
