"""Staff alerts survive lost workers and Twilio outages: nothing goes out twice, nothing failed stays failed while
its case waits, and supervisors hear when alerts stop getting out."""
import datetime as dt

import pytest
import time_machine
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpline.cases import dispatch, services
from helpline.cases import services as case_services
from helpline.cases.models import Case, CaseStatus, Message
from helpline.cases.tasks import BEAT_HEARTBEAT, queue_heartbeat_name, worker_heartbeat_name
from helpline.casework import actions
from notifications import outbox
from notifications.backends import OutgoingMessage, TwilioBackend, is_same_text
from notifications.delivery_health import alert_supervisors_of_failing_delivery, delivery_health
from notifications.models import DeliveryStatus, Notification, NotificationKind
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


def assigned_case(text="treba nam pomoć oko ogrjeva"):
    case = CaseFactory()
    MessageFactory(case=case, body=text)
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    return case


def killed_inside_the_call(notification: Notification, *, twilio_got_it: bool) -> None:
    """What a worker SIGKILLed inside the Twilio call leaves behind: the row claimed as "sending" by `deliver`,
    and the message at Twilio or not, depending on when the kill came."""
    Notification.objects.filter(pk=notification.pk).update(
        status=DeliveryStatus.SENDING, attempts=1, claimed_at=START, next_attempt_at=START + outbox.SENDING_GRACE
    )
    if twilio_got_it:
        assert TwilioBackend().send(outbox._outgoing(notification)).ok


def fail_for_good_on_transient_errors(notification: Notification, clock, settings) -> None:
    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    for _ in range(2):
        outbox.deliver(notification.pk)
        clock.shift(dt.timedelta(seconds=15))
    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.FAILED


# --- A worker lost inside the Twilio call --------------------------------------------------------------------


def test_an_sms_a_killed_worker_had_handed_to_twilio_is_not_sent_again(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    killed_inside_the_call(sms, twilio_got_it=True)

    clock.shift(dt.timedelta(seconds=20))
    outbox.relay_queued()
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENDING  # within the grace the worker may still be inside the call
    clock.shift(dt.timedelta(seconds=11))
    outbox.relay_queued()
    outbox.deliver(sms.pk)

    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and sms.provider_sid == twilio_api.accepted_messages()[0]["sid"]
    assert len(twilio_api.messages) == 1


def test_an_interrupted_sms_is_found_at_twilio_behind_a_surge_of_later_alerts_to_the_same_person(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    killed_inside_the_call(sms, twilio_got_it=True)
    for n in range(130):  # Twilio lists the newest first: the interrupted alert is now on the third page
        later = OutgoingMessage(notification_id=10_000 + n, to=str(worker.phone), body=f"case {n}", channel="sms")
        assert TwilioBackend().send(later).ok

    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    outbox.deliver(sms.pk)

    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and sms.provider_sid == twilio_api.accepted_messages()[0]["sid"]
    assert len(twilio_api.messages) == 131


def test_an_sms_a_killed_worker_never_handed_to_twilio_goes_out_once_within_a_minute(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    killed_inside_the_call(sms, twilio_got_it=False)

    clock.shift(dt.timedelta(seconds=31))
    assert outbox.relay_queued() == 1
    outbox.deliver(sms.pk)
    outbox.deliver(sms.pk)  # the relay's doorbell and a late original arrive both

    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and len(twilio_api.messages) == 1


def interrupted_reply(body: str, *, to_number: str = "+38761200400") -> Notification:
    """A reply to a citizen whose worker was killed inside the Twilio call before Twilio had it."""
    reply = outbox.queue_notification(key="reply", to_number=to_number, body=body, kind="citizen_reply",
                                      case=CaseFactory(status="in_progress"))  # fmt: skip
    killed_inside_the_call(reply, twilio_got_it=False)
    return reply


@pytest.mark.parametrize(
    ("reply", "other_message_to_that_number"),
    [
        ("Помоћ стиже.", "Primili smo vašu poruku. Ref. HX-2026-0042."),  # Cyrillic: nothing left of it in ASCII
        ("Da", "Dakle, javite se kad budete mogli."),  # a short reply inside other words
    ],
)
def test_an_interrupted_reply_is_not_mistaken_for_another_message_to_the_same_number(
    clock, twilio_api, reply, other_message_to_that_number
):
    # The intake's automatic receipt goes to the same number and no notification records its SID.
    receipt = OutgoingMessage(notification_id=0, to="+38761200400", body=other_message_to_that_number, channel="sms")
    assert TwilioBackend().send(receipt).ok
    sms = interrupted_reply(reply)

    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    outbox.deliver(sms.pk)

    sms.refresh_from_db()
    assert [m["body"] for m in twilio_api.accepted_messages()] == [other_message_to_that_number, reply]
    assert sms.status == DeliveryStatus.SENT and sms.provider_sid == twilio_api.accepted_messages()[1]["sid"]


def test_an_interrupted_reply_in_cyrillic_that_twilio_had_is_found_and_not_sent_again(clock, twilio_api):
    sms = interrupted_reply("Помоћ стиже.")
    # A trial account prefixes every body; Twilio lists it so.
    trial = OutgoingMessage(sms.pk, "+38761200400", "Sent from your Twilio trial account - Помоћ стиже.", "sms")
    assert TwilioBackend().send(trial).ok

    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    outbox.deliver(sms.pk)

    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and len(twilio_api.messages) == 1
    assert sms.provider_sid == twilio_api.accepted_messages()[0]["sid"]


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda body: any(char.isalnum() for char in body)),
       st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=10))  # fmt: skip
def test_a_message_at_twilio_is_recognised_by_its_whole_text_in_any_script(body, word):
    assert is_same_text(body, body) and is_same_text(f"  {body.replace(' ', chr(0xA0))} ", body)
    assert is_same_text(f"Sent from your Twilio trial account - {body}", body)
    assert not is_same_text(f"{body} {word}", body) and not is_same_text(f"{word} {body}", body)


def test_a_message_with_no_text_is_never_recognised():
    assert not is_same_text("", "") and not is_same_text("Primili smo vašu poruku.", " \u0301 ")


def test_an_sms_whose_twilio_call_outlived_the_claim_still_counts_as_sent_and_is_not_sent_again(
    clock, twilio_api, monkeypatch
):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    real_send = TwilioBackend.send

    def slow_send(backend, outgoing):
        # While Twilio takes its time, the row is claimed again (the relay took this worker for lost).
        Notification.objects.filter(pk=sms.pk).update(attempts=2, next_attempt_at=START + outbox.SENDING_GRACE)
        return real_send(backend, outgoing)

    monkeypatch.setattr(TwilioBackend, "send", slow_send)
    assert outbox.deliver(sms.pk).status == DeliveryStatus.SENT

    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and sms.provider_sid == twilio_api.accepted[0]["sid"]
    monkeypatch.setattr(TwilioBackend, "send", real_send)
    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    outbox.deliver(sms.pk)
    assert len(twilio_api.messages) == 1


def test_a_call_a_killed_worker_had_placed_is_not_placed_again(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case("ubit će me, ima nož")
    call = Notification.objects.get(recipient=worker.user, channel="voice")
    outbox.deliver(Notification.objects.get(recipient=worker.user, channel="sms").pk)  # an earlier call, recorded
    killed_inside_the_call(call, twilio_got_it=True)

    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    outbox.deliver(call.pk)

    call.refresh_from_db()
    assert call.status == DeliveryStatus.SENT and len(twilio_api.calls) == 1
    assert call.provider_sid == twilio_api.accepted_calls()[0]["sid"]


def test_a_call_a_killed_worker_had_placed_is_not_placed_again_after_twilio_could_not_be_asked_at_first(
    clock, twilio_api
):
    worker = on_duty(phone="+38761200300")
    assigned_case("ubit će me, ima nož")
    call = Notification.objects.get(recipient=worker.user, channel="voice")
    killed_inside_the_call(call, twilio_got_it=True)
    twilio_api.lookups_unavailable = True
    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()  # the relay waits, and asks again later

    twilio_api.lookups_unavailable = False
    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    outbox.deliver(call.pk)

    call.refresh_from_db()
    assert len(twilio_api.calls) == 1 and call.status == DeliveryStatus.SENT
    assert call.provider_sid == twilio_api.accepted_calls()[0]["sid"]


def test_a_citizens_call_forwarded_to_the_worker_is_not_taken_for_the_interrupted_alert_call(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case("ubit će me, ima nož")
    call = Notification.objects.get(recipient=worker.user, channel="voice")
    killed_inside_the_call(call, twilio_got_it=False)
    clock.shift(dt.timedelta(seconds=5))
    # Meanwhile a citizen's live call is put through to the worker: Twilio dials it from the SOS number.
    forwarded = twilio_api.dialled_leg(to="+38761200300", caller_id="+38733000111")

    clock.shift(dt.timedelta(seconds=26))
    outbox.relay_queued()
    outbox.deliver(call.pk)

    call.refresh_from_db()
    placed = [c["sid"] for c in twilio_api.accepted_calls() if c["sid"] != forwarded["sid"]]
    assert len(placed) == 1  # the alert's call was placed, once
    assert call.status == DeliveryStatus.SENT and call.provider_sid == placed[0]


def test_an_interrupted_send_waits_while_twilio_cannot_be_asked(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    killed_inside_the_call(sms, twilio_got_it=True)
    twilio_api.outage()

    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENDING and len(twilio_api.messages) == 1  # no blind second send

    twilio_api.recover()
    clock.shift(dt.timedelta(seconds=31))
    outbox.relay_queued()
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and len(twilio_api.messages) == 1


def test_a_call_status_callback_settles_a_call_whose_sid_the_lost_worker_never_wrote(clock, twilio_api, twilio):
    worker = on_duty(phone="+38761200300")
    assigned_case("ubit će me, ima nož")
    call = Notification.objects.get(recipient=worker.user, channel="voice")
    killed_inside_the_call(call, twilio_got_it=True)
    callback = twilio_api.calls[0].form["StatusCallback"]
    assert callback.endswith(f"/webhooks/twilio/voice/staff-call/status/?n={call.pk}")

    path = callback.removeprefix("https://sos.example.test")
    response = twilio.post(path, {"CallSid": "CAfromtwilio", "CallStatus": "ringing"})
    assert response.status_code == 204
    call.refresh_from_db()
    assert (call.status, call.provider_sid) == (DeliveryStatus.SENT, "CAfromtwilio")
    clock.shift(dt.timedelta(minutes=5))
    outbox.relay_queued()
    assert len(twilio_api.calls) == 1


def test_a_busy_callback_that_overtakes_the_worker_keeps_the_second_call(
    clock, twilio_api, twilio, monkeypatch, settings
):
    # Twilio's "busy" reached the web before the sending worker recorded the call: the worker then marked it sent
    # over the retry the callback had queued, so the worker was never called again, and the timeline said "sent"
    # twice.
    worker = on_duty(phone="+38761200300")
    case = assigned_case("ubit će me, ima nož")
    call = Notification.objects.get(recipient=worker.user, channel="voice")
    record_as_the_worker_does = outbox._record_send_result

    def callback_comes_first(notification, result, *, claimed_attempt):
        path = twilio_api.calls[-1].form["StatusCallback"].removeprefix("https://sos.example.test")
        assert twilio.post(path, {"CallSid": result.provider_sid, "CallStatus": "busy"}).status_code == 204
        return record_as_the_worker_does(notification, result, claimed_attempt=claimed_attempt)

    monkeypatch.setattr(outbox, "_record_send_result", callback_comes_first)
    outbox.deliver(call.pk)
    monkeypatch.undo()
    call.refresh_from_db()
    assert call.status == DeliveryStatus.QUEUED and call.next_attempt_at is not None

    clock.shift(dt.timedelta(seconds=settings.STAFF_CALL_RETRY_SECONDS + 1))
    outbox.deliver(call.pk)
    assert len(twilio_api.calls) == 2  # called once more
    sent_events = case.timeline.filter(kind="message_sent", details__notification_id=call.pk)
    assert sent_events.count() == 2  # one for each call placed, not two for the first


def test_an_sms_status_callback_settles_a_message_whose_sid_the_lost_worker_never_wrote(clock, twilio_api, twilio):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    killed_inside_the_call(sms, twilio_got_it=True)
    callback = twilio_api.messages[0].form["StatusCallback"]
    assert callback.endswith(f"/webhooks/twilio/message-status/?n={sms.pk}")

    path = callback.removeprefix("https://sos.example.test")
    response = twilio.post(path, {"MessageSid": "SMfromtwilio", "MessageStatus": "delivered"})
    assert response.status_code == 204
    sms.refresh_from_db()
    assert (sms.status, sms.provider_sid) == (DeliveryStatus.DELIVERED, "SMfromtwilio")
    clock.shift(dt.timedelta(minutes=5))
    outbox.relay_queued()
    assert len(twilio_api.messages) == 1  # not sent again


def test_a_callback_naming_another_notification_changes_nothing(clock, twilio_api, twilio):
    """The token only finds a notification still being sent with no SID: one already settled is not taken over
    by a callback about some other message."""
    on_duty(phone="+38761200300")
    assigned_case()
    outbox.deliver(Notification.objects.get().pk)
    sms = Notification.objects.get()
    response = twilio.post(f"/webhooks/twilio/message-status/?n={sms.pk}",
                           {"MessageSid": "SMsomeoneelse", "MessageStatus": "failed"})  # fmt: skip
    assert response.status_code == 204
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and sms.provider_sid != "SMsomeoneelse"


# --- A Twilio outage ---------------------------------------------------------------------------------------


def test_a_staff_alert_that_failed_during_an_outage_is_sent_once_twilio_takes_messages_again(
    clock, twilio_api, settings
):
    worker = on_duty(phone="+38761200300")
    case = assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    twilio_api.outage()
    fail_for_good_on_transient_errors(sms, clock, settings)

    outbox.relay_queued()
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.FAILED  # no sign of recovery and no probe due yet

    twilio_api.recover()
    other = outbox.queue_notification(key="other", to_number="+38761999000", body="x", kind="reminder",
                                      case=CaseFactory(status="assigned"))  # fmt: skip
    assert outbox.deliver(other.pk).status == "sent"  # Twilio takes messages again
    clock.shift(dt.timedelta(seconds=1))
    outbox.relay_queued()
    outbox.deliver(sms.pk)

    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT
    delivered_to_worker = [m for m in twilio_api.accepted_messages() if m["to"] == "+38761200300"]
    assert len(delivered_to_worker) == 1 and case.reference in delivered_to_worker[0]["body"]


@pytest.mark.parametrize(
    ("status", "code", "refusal"),
    [
        (401, 20003, "Authenticate"),  # a rotated auth token
        (403, 20005, "Account not active"),  # a suspended account
        (404, 20404, "The requested resource was not found"),  # a mistyped account SID
    ],
)
def test_twilio_refusing_our_account_is_an_outage_not_the_workers_phone(
    clock, twilio_api, settings, caplog, status, code, refusal
):
    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    worker = on_duty(phone="+38761200300")
    case = assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    twilio_api.outage(status, code, refusal)
    assert outbox.deliver(sms.pk).status == DeliveryStatus.QUEUED  # tried again, not failed on the first try
    assert any(r.levelname == "ERROR" and "TWILIO_AUTH_TOKEN" in r.getMessage() for r in caplog.records)
    clock.shift(dt.timedelta(seconds=15))
    outbox.deliver(sms.pk)
    sms.refresh_from_db()
    worker.refresh_from_db()
    assert sms.status == DeliveryStatus.FAILED and worker.phone_failing_since is None  # not passed over for it

    clock.shift(dt.timedelta(seconds=15))
    twilio_api.recover()  # someone fixed the credentials
    other = outbox.queue_notification(key="other", to_number="+38761999000", body="x", kind="reminder",
                                      case=CaseFactory(status="assigned"))  # fmt: skip
    assert outbox.deliver(other.pk).status == "sent"
    clock.shift(dt.timedelta(seconds=1))
    outbox.relay_queued()
    outbox.deliver(sms.pk)

    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT
    assert [m["to"] for m in twilio_api.accepted_messages() if case.reference in m["body"]] == ["+38761200300"]


def twilio_recovers_and_the_relay_runs(notification: Notification, clock, twilio_api) -> None:
    """Twilio takes another message, the relay runs, and the notification's sender is rung."""
    twilio_api.recover()
    other = outbox.queue_notification(key="other", to_number="+38761999000", body="x", kind="reminder",
                                      case=CaseFactory(status="assigned"))  # fmt: skip
    assert outbox.deliver(other.pk).status == "sent"
    clock.shift(dt.timedelta(seconds=1))
    outbox.relay_queued()
    outbox.deliver(notification.pk)
    notification.refresh_from_db()


def reply_to_a_citizen(**case) -> Notification:
    return outbox.queue_notification(key="reply", to_number="+38761200400", body="Ekipa dolazi.",
                                     kind="citizen_reply", case=CaseFactory(status="in_progress", **case))  # fmt: skip


def follow_up_to_its_worker() -> Notification:
    worker = on_duty(phone="+38761200300")
    case = CaseFactory(status="in_progress", assigned_to=worker.user, priority="critical")
    return outbox.queue_notification(key="follow-up", to_number="+38761200300", body="Javio se ponovo.",
                                     kind="follow_up", case=case, recipient=worker.user)  # fmt: skip


@pytest.mark.parametrize("failed", [reply_to_a_citizen, follow_up_to_its_worker])
def test_a_reply_or_follow_up_that_failed_during_an_outage_goes_out_once_twilio_is_back(
    clock, twilio_api, settings, failed
):
    notification = failed()
    twilio_api.outage()
    fail_for_good_on_transient_errors(notification, clock, settings)
    twilio_recovers_and_the_relay_runs(notification, clock, twilio_api)
    assert notification.status == DeliveryStatus.SENT
    assert [m["body"] for m in twilio_api.accepted_messages()].count(notification.body) == 1


def test_a_staff_alerts_are_failing_alert_lost_in_the_outage_is_not_sent_once_it_is_over(clock, twilio_api, settings):
    # Requeued after recovery, supervisors read that staff alerts were failing when they worked again: the
    # all-clear tells them it is over, and a new outage writes a new alert.
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    supervisor = StaffFactory(role="supervisor", phone="+38761300001")
    twilio_api.outage()
    fail_staff_alerts(6)
    assert alert_supervisors_of_failing_delivery() == 1
    alert = Notification.objects.get(idempotency_key__startswith="delivery-alert:")
    outbox.deliver(alert.pk)
    alert.refresh_from_db()
    assert alert.status == DeliveryStatus.FAILED

    clock.shift(dt.timedelta(minutes=6))
    twilio_recovers_and_the_relay_runs(alert, clock, twilio_api)
    clock.shift(dt.timedelta(minutes=2))
    outbox.relay_queued()
    outbox.deliver(alert.pk)
    alert.refresh_from_db()
    assert alert.status == DeliveryStatus.FAILED
    assert alert.body not in [m["body"] for m in twilio_api.accepted_messages() if m["to"] == str(supervisor.phone)]


def worker_reply_lost_in_an_outage(text: str, clock, twilio_api, settings) -> tuple[Message, Notification]:
    """A worker's reply to the citizen of their case, whose SMS failed for good while Twilio was out (and still is)."""
    worker = on_duty(phone="+38761200300")
    case = CaseFactory(status="in_progress", assigned_to=worker.user)
    twilio_api.outage()
    reply = outbox.reply_to_citizen(case, text, by=worker.user)
    sms = Notification.objects.get(message=reply)
    fail_for_good_on_transient_errors(sms, clock, settings)
    return reply, sms


def test_a_reply_lost_in_an_outage_is_not_sent_after_the_workers_newer_reply(clock, twilio_api, settings):
    # The citizen got "do NOT go to the station" and then, requeued, the older "go to the station now".
    first, _sms = worker_reply_lost_in_an_outage("Idite odmah u policijsku stanicu.", clock, twilio_api, settings)
    case, worker = first.case, first.case.assigned_to

    twilio_api.recover()
    clock.shift(dt.timedelta(minutes=2))
    newer = outbox.reply_to_citizen(case, "NE idite u stanicu, ekipa dolazi k vama.", by=worker)
    assert outbox.deliver(Notification.objects.get(message=newer).pk).status == DeliveryStatus.SENT
    for _ in range(3):
        clock.shift(dt.timedelta(minutes=1))
        outbox.relay_queued()
        for queued in Notification.objects.filter(status=DeliveryStatus.QUEUED):
            outbox.deliver(queued.pk)

    assert [m["body"] for m in twilio_api.accepted_messages()] == [newer.body]
    first.refresh_from_db()
    assert first.delivery_status == DeliveryStatus.FAILED  # the worker sees it never went out


def test_a_reply_lost_in_an_outage_still_goes_out_after_a_crisis_broadcast_on_the_case(clock, twilio_api, settings):
    # The flood's broadcast counted as the worker's newer reply: "Ne izlazite, ekipa dolazi" was never sent.
    from notifications.models import NotificationKind

    reply, sms = worker_reply_lost_in_an_outage("Ne izlazite, ekipa dolazi k vama.", clock, twilio_api, settings)
    case = reply.case
    clock.shift(dt.timedelta(minutes=2))
    broadcast = case_services.record_reply(case, "Evakuacija u 18 h.", by=None, channel="sms")
    outbox.queue_notification(key="crisis-broadcast:1:test", to_number=str(case.caller.phone), body=broadcast.body,
                              kind=NotificationKind.CRISIS_BROADCAST, case=case, message=broadcast)  # fmt: skip
    twilio_recovers_and_the_relay_runs(sms, clock, twilio_api)
    assert sms.status == DeliveryStatus.SENT and reply.body in [m["body"] for m in twilio_api.accepted_messages()]


def test_a_citizen_wrote_again_sms_lost_in_an_outage_is_not_sent_once_the_worker_has_replied(
    clock, twilio_api, settings
):
    follow_up = follow_up_to_its_worker()
    twilio_api.outage()
    fail_for_good_on_transient_errors(follow_up, clock, settings)
    twilio_api.recover()
    clock.shift(dt.timedelta(minutes=1))
    outbox.reply_to_citizen(follow_up.case, "Vidio sam, zovem vas.", by=follow_up.recipient)  # seen and answered
    twilio_recovers_and_the_relay_runs(follow_up, clock, twilio_api)
    assert follow_up.status == DeliveryStatus.FAILED
    assert follow_up.body not in [m["body"] for m in twilio_api.accepted_messages()]


def test_a_reply_queued_again_after_an_outage_shows_as_queued_then_sent(clock, twilio_api, settings):
    reply, sms = worker_reply_lost_in_an_outage("Ekipa dolazi.", clock, twilio_api, settings)
    reply.refresh_from_db()
    assert reply.delivery_status == DeliveryStatus.FAILED

    twilio_api.recover()
    other = outbox.queue_notification(key="other", to_number="+38761999000", body="x", kind="reminder",
                                      case=CaseFactory(status="assigned"))  # fmt: skip
    assert outbox.deliver(other.pk).status == DeliveryStatus.SENT
    clock.shift(dt.timedelta(seconds=1))
    outbox.relay_queued()
    reply.refresh_from_db()
    assert reply.delivery_status == DeliveryStatus.QUEUED  # not "failed" while it is on its way again
    outbox.deliver(sms.pk)
    reply.refresh_from_db()
    assert reply.delivery_status == DeliveryStatus.SENT


def test_a_reply_that_failed_during_an_outage_is_not_sent_once_the_citizen_said_sms_is_not_safe(
    clock, twilio_api, settings
):
    reply = reply_to_a_citizen()
    twilio_api.outage()
    fail_for_good_on_transient_errors(reply, clock, settings)
    Case.objects.filter(pk=reply.case_id).update(safe_to_text=False)
    twilio_recovers_and_the_relay_runs(reply, clock, twilio_api)
    assert reply.status == DeliveryStatus.FAILED and "Ekipa dolazi." not in [
        m["body"] for m in twilio_api.accepted_messages()
    ]


def test_a_reply_that_failed_during_an_outage_a_day_ago_is_not_sent_now(clock, twilio_api, settings):
    reply = reply_to_a_citizen()
    twilio_api.outage()
    fail_for_good_on_transient_errors(reply, clock, settings)
    clock.shift(dt.timedelta(days=1))
    twilio_recovers_and_the_relay_runs(reply, clock, twilio_api)
    assert reply.status == DeliveryStatus.FAILED and len(twilio_api.accepted_messages()) == 1  # the other only


def test_during_a_long_outage_one_failed_alert_at_a_time_probes_twilio(clock, twilio_api, settings):
    on_duty(phone="+38761200300")
    for _ in range(3):
        assigned_case()
    twilio_api.outage()
    for sms in Notification.objects.all():
        fail_for_good_on_transient_errors(sms, clock, settings)
    tries_before = len(twilio_api.messages)

    clock.shift(dt.timedelta(seconds=61))
    outbox.relay_queued()
    for notification_id in Notification.objects.filter(status="queued").values_list("pk", flat=True):
        outbox.deliver(notification_id)
    assert len(twilio_api.messages) == tries_before + 1  # one probe, not a flood

    twilio_api.recover()
    clock.shift(dt.timedelta(seconds=61))
    outbox.relay_queued()  # the probe
    for notification_id in Notification.objects.filter(status="queued").values_list("pk", flat=True):
        outbox.deliver(notification_id)
    clock.shift(dt.timedelta(seconds=10))
    outbox.relay_queued()  # the probe got through: the rest follow
    for notification_id in Notification.objects.filter(status="queued").values_list("pk", flat=True):
        outbox.deliver(notification_id)
    assert Notification.objects.filter(status=DeliveryStatus.SENT).count() == 3
    assert len(twilio_api.accepted_messages()) == 3


def test_a_failed_alert_is_never_sent_after_its_case_was_taken(clock, twilio_api, settings):
    worker = on_duty(phone="+38761200300")
    case = assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    twilio_api.outage()
    fail_for_good_on_transient_errors(sms, clock, settings)
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.ACKNOWLEDGED)

    twilio_api.recover()
    clock.shift(dt.timedelta(minutes=5))
    outbox.relay_queued()
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.FAILED and twilio_api.accepted_messages() == []


def test_an_alert_refused_for_an_invalid_number_is_never_sent_again(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    twilio_api.error(400, 21211, "The 'To' number is not a valid phone number.")
    assert outbox.deliver(sms.pk).status == "failed"
    other = outbox.queue_notification(key="other", to_number="+38761999000", body="x", kind="reminder",
                                      case=CaseFactory(status="assigned"))  # fmt: skip
    outbox.deliver(other.pk)

    clock.shift(dt.timedelta(minutes=5))
    outbox.relay_queued()
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.FAILED and len(twilio_api.messages) == 2


# --- Telling supervisors -----------------------------------------------------------------------------------


def test_delivery_health_counts_the_last_five_minutes_of_sends(clock, twilio_api, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    cases = [CaseFactory() for _ in range(6)]
    queued = [
        outbox.queue_notification(key=f"n{n}", to_number="+38761999000", body="x", kind="reminder", case=case)
        for n, case in enumerate(cases)
    ]
    for notification in queued[:2]:
        outbox.deliver(notification.pk)
    twilio_api.outage()
    for notification in queued[2:]:
        outbox.deliver(notification.pk)

    health = delivery_health()
    assert (health.sends, health.failures, health.is_failing) == (6, 4, True)
    assert health.rate == pytest.approx(4 / 6) and health.last_success_at == START
    clock.shift(dt.timedelta(minutes=6))
    assert delivery_health().sends == 0 and not delivery_health().is_failing


def test_sms_to_citizens_that_fail_never_sound_the_staff_alerts_alarm(clock, twilio_api, settings):
    # A crisis broadcast to voice callers' landlines failed six times of seven: "staff alerts are failing" went to
    # every supervisor while every staff alert got through.
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    staff_alert = outbox.queue_notification(key="s", to_number="+38761999000", body="x", kind="reminder",
                                            case=CaseFactory(status="assigned"))  # fmt: skip
    outbox.deliver(staff_alert.pk)
    twilio_api.outage()
    for n in range(6):
        broadcast = outbox.queue_notification(
            key=f"b{n}", to_number="+38733555000", body="Ekipe stižu.", kind="crisis_broadcast", case=CaseFactory()
        )  # fmt: skip
        outbox.deliver(broadcast.pk)
    health = delivery_health()
    assert (health.sends, health.failures, health.is_failing) == (1, 0, False)


def test_staff_sms_twilio_took_but_the_carrier_never_delivered_sound_the_alarm(clock, twilio_api, twilio):
    # A carrier blocking the SOS number: Twilio takes every SMS, then reports each undelivered (30007). They all
    # counted as sent: "30 sends, 0 failures", /healthz/ ok, nobody told.
    for n in range(6):
        sent_then_undelivered(twilio, "30007", key=f"n{n}", to_number="+38761999000", kind="reminder",
                              case=CaseFactory())  # fmt: skip
    health = delivery_health()
    assert (health.sends, health.failures, health.is_failing) == (6, 6, True)


def test_phones_switched_off_for_the_night_do_not_sound_the_staff_alerts_alarm(clock, twilio_api, twilio):
    # A call-out at night to off-duty phones comes back 30003 (handset off or out of reach): that is each
    # person's phone, not the line, and every supervisor was told "staff alerts are failing".
    for n in range(6):
        sent_then_undelivered(twilio, "30003", key=f"off{n}", to_number=f"+3876199900{n}", kind="call_out",
                              recipient=StaffFactory().user)  # fmt: skip
    assert not delivery_health().is_failing


def sent_then_undelivered(twilio, error_code: str, **notification) -> None:
    """An SMS Twilio takes, then reports undelivered in its status callback."""
    queued = outbox.queue_notification(body="x", **notification)
    outbox.deliver(queued.pk)
    queued.refresh_from_db()
    twilio.post("/webhooks/twilio/message-status/", {
        "MessageSid": queued.provider_sid, "MessageStatus": "undelivered", "ErrorCode": error_code,
    })  # fmt: skip


def test_a_few_failures_in_a_quiet_hour_are_not_an_outage(clock, twilio_api, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    twilio_api.outage()
    for n in range(2):
        notification = outbox.queue_notification(key=f"n{n}", to_number="+38761999000", body="x", kind="reminder",
                                                 case=CaseFactory(status="assigned"))  # fmt: skip
        outbox.deliver(notification.pk)
    assert delivery_health().failures == 2 and not delivery_health().is_failing


def test_an_outage_right_after_a_busy_spell_is_told_to_supervisors_within_a_minute(clock, twilio_api, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    supervisor = StaffFactory(role="supervisor", phone="+38761300001")
    for n in range(20):  # a busy spell: twenty staff alerts got out
        sent = outbox.queue_notification(key=f"ok{n}", to_number="+38761999000", body="x", kind="reminder",
                                         case=CaseFactory(status="assigned"))  # fmt: skip
        outbox.deliver(sent.pk)
    clock.shift(dt.timedelta(minutes=2))
    twilio_api.outage()
    fail_staff_alerts(6)

    health = delivery_health()
    assert health.is_failing and (health.failures, health.sends, health.window_seconds) == (6, 6, 60)
    assert alert_supervisors_of_failing_delivery() == 1
    alert = Notification.objects.get(idempotency_key__startswith="delivery-alert:")
    assert alert.recipient == supervisor.user and "6 od 6 u zadnjih 1 min" in alert.body


def test_supervisors_are_told_once_per_outage_and_again_when_it_is_over(clock, twilio_api, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    settings.DELIVERY_ALERT_SENDER = "MG" + "1" * 32
    supervisors = [StaffFactory(role="supervisor", phone=f"+3876130000{n}") for n in range(2)]
    twilio_api.outage()
    for n in range(6):
        notification = outbox.queue_notification(key=f"n{n}", to_number="+38761999000", body="x", kind="reminder",
                                                 case=CaseFactory(status="assigned"))  # fmt: skip
        outbox.deliver(notification.pk)

    assert alert_supervisors_of_failing_delivery() == 2
    clock.shift(dt.timedelta(seconds=30))
    assert alert_supervisors_of_failing_delivery() == 0  # the same outage: told once
    alerts = Notification.objects.filter(idempotency_key__startswith="delivery-alert:")
    assert {a.recipient for a in alerts} == {s.user for s in supervisors}
    assert all(a.kind == NotificationKind.ESCALATION and "6 od 6" in a.body for a in alerts)

    twilio_api.recover()
    for alert in alerts:
        outbox.deliver(alert.pk)
    sent = [r.form for r in twilio_api.messages if r.form.get("To") == supervisors[0].phone]
    assert sent[-1].get("MessagingServiceSid") == "MG" + "1" * 32 and "From" not in sent[-1]  # another path
    clock.shift(dt.timedelta(minutes=6))
    assert alert_supervisors_of_failing_delivery() == 0  # quiet is not recovery: nothing got through yet
    ok = outbox.queue_notification(
        key="ok", to_number="+38761999000", body="x", kind="reminder", case=CaseFactory(status="assigned")
    )
    outbox.deliver(ok.pk)
    clock.shift(dt.timedelta(seconds=30))
    assert alert_supervisors_of_failing_delivery() == 2
    assert Notification.objects.filter(idempotency_key__startswith="delivery-recovered:").count() == 2
    assert alert_supervisors_of_failing_delivery() == 0


def test_supervisors_are_told_of_each_outage_in_which_the_carrier_stops_delivering(clock, twilio_api, twilio):
    # Twilio took every SMS and the carrier reported them undelivered (30007): the outage had no refused send to
    # be named after, was named "None", and the second one wrote nothing: supervisors were never told again.
    supervisor = StaffFactory(role="supervisor", phone="+38761300001")
    for outage in range(2):
        for n in range(6):
            sent_then_undelivered(twilio, "30007", key=f"o{outage}-{n}", to_number="+38761999000", kind="reminder",
                                  case=CaseFactory())  # fmt: skip
        assert alert_supervisors_of_failing_delivery() == 1, f"outage {outage + 1} was not told"
        clock.shift(dt.timedelta(minutes=6))
        ok = outbox.queue_notification(key=f"ok{outage}", to_number="+38761999000", body="x", kind="reminder",
                                       case=CaseFactory(status="assigned"))  # fmt: skip
        outbox.deliver(ok.pk)
        assert alert_supervisors_of_failing_delivery() == 1  # the all-clear
        clock.shift(dt.timedelta(minutes=1))

    alerts = Notification.objects.filter(idempotency_key__startswith="delivery-alert:", recipient=supervisor.user)
    assert alerts.count() == 2 and not any("None" in alert.idempotency_key for alert in alerts)


def fail_staff_alerts(count: int) -> None:
    for n in range(count):
        notification = outbox.queue_notification(key=f"out{n}", to_number="+38761999000", body="x", kind="reminder",
                                                 case=CaseFactory(status="assigned"))  # fmt: skip
        outbox.deliver(notification.pk)


def everything_beats() -> None:
    services.record_heartbeat(BEAT_HEARTBEAT)
    services.record_heartbeat(worker_heartbeat_name("worker@centre"))
    for queue in dispatch.QUEUES:
        services.record_heartbeat(queue_heartbeat_name(queue))


def test_a_twilio_outage_makes_healthz_degraded_until_staff_alerts_get_out_again(client, clock, twilio_api, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    everything_beats()
    assert client.get("/healthz/").json()["status"] == "ok"

    twilio_api.outage()
    fail_staff_alerts(6)
    everything_beats()
    response = client.get("/healthz/")

    assert response.status_code == 200  # intake works: warn, do not page as for a dead database
    body = response.json()
    assert body["status"] == "degraded"
    assert body["problems"] == ["staff alerts failing: 6 of 6 sends in 5 min"]
    assert body["staff_alerts"]["is_failing"] and body["staff_alerts"]["failure_rate"] == 1.0

    twilio_api.recover()
    clock.shift(dt.timedelta(minutes=6))  # the failures age out of the window, and new alerts get out
    ok = outbox.queue_notification(
        key="ok", to_number="+38761999000", body="x", kind="reminder", case=CaseFactory(status="assigned")
    )
    outbox.deliver(ok.pk)
    everything_beats()
    body = client.get("/healthz/").json()
    assert body["status"] == "ok", body["problems"]
    assert body["staff_alerts"]["failures"] == 0 and body["staff_alerts"]["last_success_at"]


def test_a_twilio_outage_shows_at_the_top_of_the_supervisors_board(client, clock, twilio_api, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    supervisor = StaffFactory(role="supervisor", phone="+38761300009")
    client.force_login(supervisor.user)
    assert 'id="staff-alerts-failing"' not in client.get("/console/board/").content.decode()

    twilio_api.outage()
    fail_staff_alerts(6)
    assert "Obavijesti osoblju ne prolaze: 6 od 6 poruka" in client.get("/console/board/").content.decode()
    client.post("/i18n/setlang/", {"language": "en", "next": "/console/board/"})
    page = client.get("/console/board/").content.decode()
    live = client.get("/console/board/live/").content.decode()  # what the open board polls

    for html in (page, live):
        assert 'id="staff-alerts-failing"' in html
        assert "Staff alerts are failing: 6 of 6 messages to staff in the last 5 minutes were not delivered." in html
    assert page.index('id="staff-alerts-failing"') < page.index('id="waiting-title"')  # above everything


def test_a_send_whose_answer_was_lost_is_looked_up_before_it_is_tried_again(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    twilio_api.hang_up_after_accepting = 1
    first = outbox.deliver(sms.pk)
    sms.refresh_from_db()
    assert first.status == "queued" and sms.last_error_code == "network"

    clock.shift(dt.timedelta(seconds=first.retry_in + 1))
    assert outbox.deliver(sms.pk).status == "sent"
    sms.refresh_from_db()
    assert len(twilio_api.accepted_messages()) == 1 and len(twilio_api.messages) == 1  # looked up, not re-sent
    assert sms.provider_sid == twilio_api.accepted_messages()[0]["sid"]


def test_a_send_whose_answer_was_lost_waits_while_twilio_cannot_be_asked_and_is_never_sent_twice(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    twilio_api.hang_up_after_accepting = 1  # Twilio took it; the answer never arrived
    first = outbox.deliver(sms.pk)
    twilio_api.lookups_unavailable = True

    clock.shift(dt.timedelta(seconds=first.retry_in + 1))
    waiting = outbox.deliver(sms.pk)
    sms.refresh_from_db()
    assert waiting.status == sms.status == DeliveryStatus.QUEUED and len(twilio_api.messages) == 1  # not blindly

    twilio_api.lookups_unavailable = False
    clock.shift(dt.timedelta(seconds=waiting.retry_in + 1))
    assert outbox.deliver(sms.pk).status == DeliveryStatus.SENT
    sms.refresh_from_db()
    assert len(twilio_api.messages) == 1 and sms.provider_sid == twilio_api.accepted_messages()[0]["sid"]


def lost_answer_while_twilio_cannot_be_asked(twilio_api, notification: Notification) -> outbox.DeliveryOutcome:
    """Twilio took the message, the answer never arrived, and its list of messages cannot be read."""
    twilio_api.hang_up_after_accepting = 1
    outcome = outbox.deliver(notification.pk)
    twilio_api.lookups_unavailable = True
    return outcome


def test_an_alert_whose_answer_was_lost_goes_out_again_after_about_90_s_while_twilio_cannot_be_asked(
    clock, twilio_api, caplog
):
    # It waited 30 s at a time for as long as Twilio's list could not be read: a worker never told of a critical
    # case. A duplicate alert is better than none.
    worker = on_duty(phone="+38761200300")
    case = CaseFactory(status="assigned", priority="critical", assigned_to=worker.user)
    alert = outbox.queue_notification(key="alert", to_number="+38761200300", body=f"HITNO {case.reference}",
                                      kind="assignment", case=case, recipient=worker.user)  # fmt: skip
    assert outbox.is_alert(alert)
    outcome = lost_answer_while_twilio_cannot_be_asked(twilio_api, alert)
    for _ in range(10):
        clock.shift(dt.timedelta(seconds=outcome.retry_in + 1))
        outcome = outbox.deliver(alert.pk)
        if outcome.status != DeliveryStatus.QUEUED:
            break

    assert outcome.status == DeliveryStatus.SENT
    assert alert.delivery_attempts.filter(result="wait").count() == 3
    assert dt.timedelta(seconds=90) < dt.datetime.now(dt.UTC) - START < dt.timedelta(minutes=2)
    assert len(twilio_api.accepted_messages()) == 2  # the lost one and this one
    assert any("a duplicate is better than none" in r.getMessage() for r in caplog.records)


def test_an_alert_left_sending_by_a_killed_worker_goes_out_two_minutes_on_while_twilio_cannot_be_asked(
    clock, twilio_api, client
):
    # The relay waited 30 s at a time for Twilio's list, for ever, and /healthz/ counted only queued alerts.
    worker = on_duty(phone="+38761200300")
    case = CaseFactory(status="assigned", priority="critical", assigned_to=worker.user)
    alert = outbox.queue_notification(key="alert", to_number="+38761200300", body=f"HITNO {case.reference}",
                                      kind="assignment", case=case, recipient=worker.user)  # fmt: skip
    killed_inside_the_call(alert, twilio_got_it=False)
    twilio_api.lookups_unavailable = True
    clock.move_to(START + dt.timedelta(seconds=125))  # nothing has looked at it yet: /healthz/ sees it all the same
    assert "a staff alert written 125 s ago" in " ".join(client.get("/healthz/").json()["problems"])
    for seconds in range(130, 301, 10):
        clock.move_to(START + dt.timedelta(seconds=seconds))
        outbox.relay_queued()
        for queued in Notification.objects.filter(pk=alert.pk, status=DeliveryStatus.QUEUED):
            outbox.deliver(queued.pk)
    alert.refresh_from_db()
    assert alert.status == DeliveryStatus.SENT and len(twilio_api.accepted_messages()) == 1


def test_a_reply_whose_answer_was_lost_fails_after_its_attempts_and_goes_out_once_when_twilio_can_be_asked(
    clock, twilio_api, settings
):
    settings.NOTIFICATION_MAX_ATTEMPTS = 4
    reply = reply_to_a_citizen()
    assert not outbox.is_alert(reply)
    outcome = lost_answer_while_twilio_cannot_be_asked(twilio_api, reply)
    for _ in range(10):
        clock.shift(dt.timedelta(seconds=outcome.retry_in + 1))
        outcome = outbox.deliver(reply.pk)
        if outcome.status != DeliveryStatus.QUEUED:
            break
    reply.refresh_from_db()
    assert reply.status == DeliveryStatus.FAILED and reply.attempts == 4
    assert len(twilio_api.messages) == 1  # never sent blindly

    clock.shift(dt.timedelta(seconds=10))
    twilio_api.lookups_unavailable = False
    twilio_recovers_and_the_relay_runs(reply, clock, twilio_api)  # requeued after the outage, looked up first
    assert reply.status == DeliveryStatus.SENT
    assert [m["body"] for m in twilio_api.accepted_messages()].count(reply.body) == 1


def test_a_staff_alert_stuck_waiting_for_twilio_to_be_asked_makes_healthz_degraded(
    client, clock, twilio_api, settings
):
    # Each wait moved its due time on, and /healthz/ measured from it: the alert never looked older than 30 s.
    worker = on_duty(phone="+38761200300")
    case = CaseFactory(status="assigned", assigned_to=worker.user)
    settings.NOTIFICATION_MAX_ATTEMPTS = 10  # still waiting when the monitor looks
    reminder = outbox.queue_notification(key="reminder", to_number="+38761200300", body=f"Podsjetnik {case.reference}",
                                         kind="reminder", case=case, recipient=worker.user)  # fmt: skip
    outcome = lost_answer_while_twilio_cannot_be_asked(twilio_api, reminder)
    while dt.datetime.now(dt.UTC) - START < dt.timedelta(seconds=150):
        clock.shift(dt.timedelta(seconds=outcome.retry_in + 1))
        outcome = outbox.deliver(reminder.pk)
        assert outcome.status == DeliveryStatus.QUEUED
    clock.shift(dt.timedelta(seconds=5))  # between two tries, as a monitor usually finds it

    everything_beats()
    body = client.get("/healthz/").json()
    assert body["status"] == "degraded"
    assert body["progress"]["oldest_queued_staff_alert_seconds"] >= 150
    assert any("staff alert" in problem for problem in body["problems"])


def test_a_send_after_a_slow_lookup_is_not_taken_for_a_lost_worker_and_goes_out_once(clock, twilio_api, monkeypatch):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    # The last try lost its connection before Twilio had the message: this one looks it up first.
    Notification.objects.filter(pk=sms.pk).update(attempts=1, last_error_code="network")
    real_find_sent, real_send = TwilioBackend.find_sent, TwilioBackend.send
    lookups, sends = [], []

    def slow_lookup(backend, message, **kwargs):
        lookups.append(message)
        if len(lookups) == 1:
            clock.shift(dt.timedelta(seconds=25))  # many pages of a surge to read
        return real_find_sent(backend, message, **kwargs)

    def send_while_the_relay_runs(backend, message):
        sends.append(message)
        if len(sends) == 1:
            clock.shift(dt.timedelta(seconds=10))  # the send is still on its way when
            outbox.relay_queued()  # the relay looks for lost workers,
            outbox.deliver(sms.pk)  # and another worker answers a doorbell, if one was rung
        return real_send(backend, message)

    monkeypatch.setattr(TwilioBackend, "find_sent", slow_lookup)
    monkeypatch.setattr(TwilioBackend, "send", send_while_the_relay_runs)
    outcome = outbox.deliver(sms.pk)
    clock.shift(dt.timedelta(minutes=1))
    outbox.relay_queued()
    outbox.deliver(sms.pk)

    sms.refresh_from_db()
    assert len(twilio_api.accepted_messages()) == 1 and sms.provider_sid == twilio_api.accepted_messages()[0]["sid"]
    assert outcome.status == DeliveryStatus.SENT


def test_failures_of_a_notification_that_got_through_later_no_longer_count(clock, twilio_api):
    worker = on_duty(phone="+38761200300")
    assigned_case()
    sms = Notification.objects.get(recipient=worker.user)
    for _ in range(2):
        twilio_api.error(503, 20503, "Service Unavailable")
        outbox.deliver(sms.pk)
        clock.shift(dt.timedelta(seconds=30))
    assert (delivery_health().sends, delivery_health().failures) == (2, 2)  # the retries count while it fails
    outbox.deliver(sms.pk)
    health = delivery_health()
    assert (health.sends, health.failures, health.rate) == (3, 0, 0.0)  # delivered: its failures drop out


def test_a_worker_whose_phone_does_not_receive_is_passed_over_and_shown_until_it_does(clock, twilio_api, twilio,
                                                                                       client):
    # Their cases were moved on by the ladder, so they had the fewest and got every new case first: each critical
    # case sat out its deadline with someone who never heard of it. Nobody was told.
    unreachable = on_duty(phone="+38761200300")
    colleague = on_duty(phone="+38761200301")
    CaseFactory(assigned_to=colleague.user, status=CaseStatus.IN_PROGRESS)  # busier than the unreachable one
    first = assigned_case("ubit će me, ima nož")
    assert first.assigned_to == unreachable.user
    sms = Notification.objects.get(recipient=unreachable.user, channel="sms")
    outbox.deliver(sms.pk)
    sms.refresh_from_db()
    twilio.post("/webhooks/twilio/message-status/", {
        "MessageSid": sms.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30003",
    })  # fmt: skip

    Case.objects.filter(pk=first.pk).update(assigned_to=colleague.user)  # as the ladder moves it on
    assert assigned_case("ubit će me, ima nož").assigned_to == colleague.user  # though they have more cases
    supervisor = on_duty(role="supervisor", phone="+38761200309")
    client.force_login(supervisor.user)
    assert "nije stigla u" in client.get("/console/board/").content.decode()  # the board says so, in Bosnian

    twilio.sms("OK", sid="SMback", from_number="+38761200300")  # the phone is heard from: it works again
    unreachable.refresh_from_db()
    assert unreachable.phone_failing_since is None
