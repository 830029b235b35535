"""Social workers on home visits: a visit nobody checks out of is chased step by step until the worker checks out
or a supervisor takes it; the duress PIN looks like a check-out on the worker's phone and raises the alarm; SMS
commands count only from the worker's registered phone and with their PIN. Time is controlled, never slept."""
from __future__ import annotations

import datetime as dt
import html
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from helpline.cases import services as case_services
from helpline.cases.encryption import phone_index
from helpline.roster.selectors import staff_by_id, staff_ids_with_phone_index
from helpline.visits import services
from helpline.visits.models import StaffIncident, Visit, VisitEventKind, VisitStatus
from notifications import outbox
from notifications.models import DeliveryStatus, Notification, NotificationChannel, StaffSmsCommand
from tests.factories import CaseFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
WORKER_PHONE = "+38761300100"
SUPERVISOR_PHONE = "+38761300900"
OTHER_SUPERVISOR_PHONE = "+38761300901"
FALLBACK = "+38733999000"
PIN, DURESS = "2468", "1357"


@pytest.fixture
def clock(settings):
    settings.ESCALATION_FALLBACK_NUMBERS = [FALLBACK]
    settings.VISIT_ESCALATION_WAIT_MINUTES = 5
    settings.VISIT_ALARM_REPEAT_MINUTES = 3
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # PINs hashed, quickly in tests
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


@pytest.fixture
def team(clock):
    worker = on_duty(phone=WORKER_PHONE, user__first_name="Amra")
    services.set_pins(worker, checkout_pin=PIN, duress_pin=DURESS)
    supervisor = on_duty(role="supervisor", phone=SUPERVISOR_PHONE, user__first_name="Šefica")
    off_duty_supervisor = StaffFactory(role="supervisor", phone=OTHER_SUPERVISOR_PHONE)
    return worker, supervisor, off_duty_supervisor


def sms(from_number: str, body: str) -> str | None:
    """As intake will route it: a registered staff phone's SMS goes to the visit commands first."""
    staff_id = next(iter(staff_ids_with_phone_index(phone_index(from_number))), None)
    return None if staff_id is None else services.handle_visit_sms(staff_by_id(staff_id), body)


def tick_at(clock, minutes: float) -> None:
    clock.move_to(START + dt.timedelta(minutes=minutes))
    services.run_due_visit_escalations()


def sent_to(number: str, **filters):
    return Notification.objects.filter(to_number=number, **filters)


def test_a_visit_not_checked_out_escalates_step_by_step_until_the_worker_checks_out(clock, team):
    worker, *_ = team
    case = CaseFactory(assigned_to=worker.user)
    reply = sms(WORKER_PHONE, f"VISIT {case.reference} 60 Ulica Maršala Tita 5, Maglaj")
    assert reply == services.texts.visit_started(Visit.objects.get(worker=worker), has_pin=True)
    visit = Visit.objects.get(worker=worker)
    assert visit.case == case and visit.address == "Ulica Maršala Tita 5, Maglaj" and visit.status == "active"

    tick_at(clock, 59)  # inside the hour: nothing
    assert not Notification.objects.exists()

    tick_at(clock, 60)  # step 1: the worker is called (press 1 if safe) and texted
    visit.refresh_from_db()
    assert visit.status == VisitStatus.OVERDUE and visit.escalation_step == 1
    assert {n.channel for n in sent_to(WORKER_PHONE)} == {"sms", "voice"}
    assert not sent_to(SUPERVISOR_PHONE).exists()

    tick_at(clock, 65)  # step 2: the supervisor on duty, by voice and SMS, with the address
    to_supervisor = sent_to(SUPERVISOR_PHONE)
    assert {n.channel for n in to_supervisor} == {"sms", "voice"}
    assert "Maršala Tita 5" in to_supervisor.get(channel="sms").body
    assert not sent_to(OTHER_SUPERVISOR_PHONE).exists() and not sent_to(FALLBACK).exists()

    tick_at(clock, 70)  # step 3: every supervisor and the fallback numbers, with the address and the police
    police = sent_to(FALLBACK, channel="sms").get().body
    assert "Maršala Tita 5" in police and "122" in police
    assert "OK" not in police  # no reply from a fallback number takes the visit: it is not asked for one
    assert sent_to(OTHER_SUPERVISOR_PHONE, channel="voice").exists()

    tick_at(clock, 75)  # and again: it never goes quiet
    assert sent_to(FALLBACK, channel="sms").count() == 2

    assert sms(WORKER_PHONE, f"SAFE {PIN}") == services.texts.checked_out()
    visit.refresh_from_db()
    assert visit.status == VisitStatus.CHECKED_OUT and visit.escalation_due_at is None
    sends_before = Notification.objects.exclude(idempotency_key__contains=":clear:").count()
    for minute in range(76, 120):
        tick_at(clock, minute)
    assert Notification.objects.exclude(idempotency_key__contains=":clear:").count() == sends_before
    # Those already told hear the all-clear; the worker's own phone gets nothing more.
    assert sent_to(SUPERVISOR_PHONE, idempotency_key__contains=":clear:").exists()
    assert not sent_to(WORKER_PHONE, idempotency_key__contains=":clear:").exists()


def test_a_second_overdue_after_an_extension_calls_the_worker_and_the_supervisor_again(clock, team):
    # The steps of a second run were once taken for copies of the first run's (same step numbers): the worker was
    # never called the second time, and the supervisor heard nothing for minutes.
    worker, *_ = team
    sms(WORKER_PHONE, "VISIT 30 Ulica Maršala Tita 5, Maglaj")
    tick_at(clock, 30)  # overdue: the worker is called
    tick_at(clock, 35)  # then the supervisor on duty
    assert sms(WORKER_PHONE, f"EXTEND 30 {PIN}") is not None
    called_before = sent_to(WORKER_PHONE, channel="voice").count()
    told_before = sent_to(SUPERVISOR_PHONE, channel="voice").count()

    tick_at(clock, 65)  # overdue again
    assert sent_to(WORKER_PHONE, channel="voice").count() == called_before + 1
    tick_at(clock, 70)
    assert sent_to(SUPERVISOR_PHONE, channel="voice").count() > told_before
    steps = Visit.objects.get(worker=worker).events.filter(kind=VisitEventKind.ESCALATED).order_by("pk")
    assert all(step.details["reached"] for step in steps)


def test_the_same_extend_delivered_twice_extends_the_visit_once(clock, team, twilio):
    worker, *_ = team
    sms(WORKER_PHONE, "VISIT 30 Ulica Maršala Tita 5, Maglaj")
    end = Visit.objects.get(worker=worker).expected_end_at
    twilio.sms("EXTEND 30", sid="SMextend", from_number=WORKER_PHONE)
    twilio.sms("EXTEND 30", sid="SMextend", from_number=WORKER_PHONE)  # Twilio's retry of the same message
    assert Visit.objects.get(worker=worker).expected_end_at == end + dt.timedelta(minutes=30)


def test_the_supervisors_call_about_a_visit_is_in_the_centres_language_whatever_ran_it(clock, team):
    # Spoken with the centre's voice: rendered in a request or task running in English, it was English.
    from django.utils import translation

    worker, *_ = team
    sms(WORKER_PHONE, "VISIT 30 Ulica Maršala Tita 5, Maglaj")
    visit = Visit.objects.get(worker=worker)
    with translation.override("bs"):
        in_bosnian = services.texts.call_to_supervisor(visit)
    with translation.override("en"):
        assert services.texts.call_to_supervisor(visit) == in_bosnian


def test_an_overdue_visit_is_extended_only_with_the_pin_and_the_duress_pin_raises_the_alarm(clock, team):
    # "EXTEND 720" from the worker's phone, in anyone's hands, silenced an overdue visit for twelve hours and told
    # the supervisors the worker was safe.
    worker, *_ = team
    sms(WORKER_PHONE, "VISIT 30 Ulica Maršala Tita 5, Maglaj")
    assert sms(WORKER_PHONE, "EXTEND 720") == services.texts.extend_needs_pin(services.EXTEND_WITHOUT_PIN_MAX_MINUTES)
    assert sms(WORKER_PHONE, "EXTEND 15") == services.texts.visit_extended(Visit.objects.get(worker=worker))
    tick_at(clock, 45)
    tick_at(clock, 50)  # overdue: the worker, then the supervisor on duty
    end = Visit.objects.get(worker=worker).expected_end_at
    assert sms(WORKER_PHONE, "EXTEND 30") == services.texts.extend_needs_pin(services.EXTEND_WITHOUT_PIN_MAX_MINUTES)
    assert Visit.objects.get(worker=worker).expected_end_at == end  # still overdue, still chased
    assert not sent_to(SUPERVISOR_PHONE, idempotency_key__contains=":clear:").exists()

    reply = sms(WORKER_PHONE, f"EXTEND 30 {DURESS}")
    assert reply.startswith(services.texts.visit_extended(Visit.objects.get(worker=worker)).split(":")[0])  # as if
    assert Visit.objects.get(worker=worker).status == VisitStatus.ALARM


def test_a_supervisor_taking_the_overdue_visit_stops_the_ladder_and_what_was_still_queued(clock, team):
    worker, supervisor, _ = team
    services.start_visit(worker, minutes=30, address="Doboj, Kralja Tvrtka 2", via="console")
    tick_at(clock, 30)
    tick_at(clock, 35)
    code = sent_to(SUPERVISOR_PHONE, channel="sms").get().ack_code
    queued_call = sent_to(SUPERVISOR_PHONE, channel="voice").get()

    reply = sms(SUPERVISOR_PHONE, f"OK {code}")
    assert "Kralja Tvrtka 2" in reply
    visit = Visit.objects.get(worker=worker)
    assert visit.acknowledged_by == supervisor.user and visit.escalation_due_at is None
    queued_call.refresh_from_db()
    assert queued_call.status == DeliveryStatus.CANCELLED
    count = Notification.objects.count()
    for minute in range(36, 90, 3):
        tick_at(clock, minute)
    assert Notification.objects.count() == count
    assert visit.events.filter(kind=VisitEventKind.ACKNOWLEDGED, details__via="SMS").exists()


def test_an_overdue_alarm_that_failed_in_a_twilio_outage_is_not_sent_after_the_worker_checked_out_safe(
    clock, team, twilio_api, settings
):
    # Requeued once Twilio was back, the supervisor got the overdue SMS and call after the all-clear had told them
    # the worker was safe. While a visit stays overdue its ladder repeats every few minutes anyway.
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    worker, *_ = team
    services.start_visit(worker, minutes=30, address="Doboj, Kralja Tvrtka 2", via="console")
    tick_at(clock, 30)
    tick_at(clock, 35)  # the supervisor on duty, by SMS and a call
    twilio_api.outage()
    alarms = list(sent_to(SUPERVISOR_PHONE))
    for alarm in alarms:
        outbox.deliver(alarm.pk)
    assert {alarm.status for alarm in Notification.objects.filter(pk__in=[a.pk for a in alarms])} == {"failed"}

    assert sms(WORKER_PHONE, f"SAFE {PIN}") == services.texts.checked_out()
    twilio_api.recover()
    for minute in (36, 37, 40, 45):
        clock.move_to(START + dt.timedelta(minutes=minute))
        outbox.relay_queued()
        for queued in Notification.objects.filter(status=DeliveryStatus.QUEUED):
            outbox.deliver(queued.pk)

    assert [m["body"] for m in twilio_api.accepted_messages() if m["to"] == SUPERVISOR_PHONE] == [
        sent_to(SUPERVISOR_PHONE, idempotency_key__contains=":clear:").get().body
    ]  # the all-clear, and nothing after it
    assert not [c for c in twilio_api.accepted_calls() if c["to"] == SUPERVISOR_PHONE]


def test_a_finished_visits_code_is_left_to_the_case_commands(clock, team):
    """Codes are four digits: a supervisor's OK with the code of a case must not be taken by an old visit alert
    that happened to carry the same digits."""
    worker, *_ = team
    services.start_visit(worker, minutes=30, address="Doboj, Kralja Tvrtka 2", via="console")
    tick_at(clock, 30)
    tick_at(clock, 35)
    code = sent_to(SUPERVISOR_PHONE, channel="sms").get().ack_code
    assert sms(WORKER_PHONE, f"SAFE {PIN}") == services.texts.checked_out()

    assert sms(SUPERVISOR_PHONE, f"OK {code}") is None  # not "You have taken the home visit ..."


def test_a_second_supervisor_is_told_who_took_the_visit_not_that_they_did(clock, team):
    worker, *_ = team
    services.start_visit(worker, minutes=30, address="Doboj, Kralja Tvrtka 2", via="console")
    for minute in (30, 35, 70):  # the worker, the supervisor on duty, every supervisor
        tick_at(clock, minute)
    first = sent_to(SUPERVISOR_PHONE, channel="sms").order_by("-pk").first().ack_code
    second = sent_to(OTHER_SUPERVISOR_PHONE, channel="sms").get().ack_code
    assert "Kralja Tvrtka 2" in sms(SUPERVISOR_PHONE, f"OK {first}")

    reply = sms(OTHER_SUPERVISOR_PHONE, f"OK {second}")
    assert reply == services.texts.taken_by_someone_else(Visit.objects.get(worker=worker))
    assert "Šefica" in reply


def test_fencing_a_step_already_run_does_not_run_twice(clock, team):
    worker, *_ = team
    visit = services.start_visit(worker, minutes=10, address="Olovo", via="console")
    clock.move_to(START + dt.timedelta(minutes=10))
    assert services.run_visit_escalation_step(visit, expected_step=1, now=START + dt.timedelta(minutes=10))
    assert not services.run_visit_escalation_step(visit, expected_step=1, now=START + dt.timedelta(minutes=10))
    assert sent_to(WORKER_PHONE).count() == 2  # one SMS and one call, once


def test_a_duress_check_out_answers_like_a_check_out_and_raises_the_alarm_at_once(clock, team):
    worker, supervisor, _ = team
    sms(WORKER_PHONE, "V 45 Šamac, Bosanska 12")
    normal_answer = services.texts.checked_out()

    assert sms(WORKER_PHONE, f"SAFE {DURESS}") == normal_answer  # word for word what a check-out gets
    visit = Visit.objects.get(worker=worker)
    assert visit.status == VisitStatus.ALARM and visit.is_duress
    # At once, not at the next tick: every supervisor and the fallback number, with the address and the police.
    for number in (SUPERVISOR_PHONE, OTHER_SUPERVISOR_PHONE, FALLBACK):
        text = sent_to(number, channel="sms").get().body
        assert "Bosanska 12" in text and "122" in text
        assert ("OK" in text) == (number != FALLBACK)  # a supervisor takes it by replying; the fallback cannot
    # The worker's phone hears nothing about it, now or later.
    for minute in range(1, 30):
        tick_at(clock, minute)
    assert not sent_to(WORKER_PHONE).exists()
    assert sent_to(FALLBACK, channel="sms").count() >= 5  # repeated until someone takes it

    # The worker's own screens show a check-out; the supervisor's show the alarm.
    worker_api, supervisor_api = APIClient(), APIClient()
    worker_api.force_authenticate(worker.user)
    supervisor_api.force_authenticate(supervisor.user)
    as_worker_sees_it = worker_api.get(f"/api/v1/visits/{visit.pk}/").json()
    assert as_worker_sees_it["status"] == "checked_out" and as_worker_sees_it["escalation_step"] == 0
    assert as_worker_sees_it["ended_at"] is not None
    assert supervisor_api.get(f"/api/v1/visits/{visit.pk}/").json()["status"] == "alarm"
    # Whoever holds the phone may even start another visit, and is answered as usual; the alarm keeps sounding.
    assert sms(WORKER_PHONE, "V 30 Šamac") == services.texts.visit_started(
        Visit.objects.get(worker=worker, is_duress=False), has_pin=True
    )
    visit.refresh_from_db()
    assert visit.status == VisitStatus.ALARM and visit.escalation_due_at is not None


@pytest.mark.parametrize("extend, check_out", [("Produži 30", "sigurna"), ("продужи 30", "СИГУРАН"),
                                                ("PRODUZI 30", "Safe")])  # fmt: skip
def test_visit_commands_are_read_however_the_worker_spells_them(clock, team, extend, check_out):
    worker, *_ = team
    services.start_visit(worker, minutes=30, address="Bijeljina, Njegoševa 3", via="console")
    assert sms(WORKER_PHONE, extend) == services.texts.visit_extended(Visit.objects.get(worker=worker))
    assert sms(WORKER_PHONE, f"{check_out} {PIN}") == services.texts.checked_out()


def test_the_alarm_keyword_raises_a_silent_alarm_without_answering(clock, team):
    worker, *_ = team
    services.start_visit(worker, minutes=60, address="Bijeljina, Njegoševa 3", via="console")
    assert sms(WORKER_PHONE, "POMOC") == ""  # nothing is sent back to a phone someone else may hold
    visit = Visit.objects.get(worker=worker)
    assert visit.status == VisitStatus.ALARM and not visit.is_duress
    assert sent_to(SUPERVISOR_PHONE, channel="voice").exists()
    assert not sent_to(WORKER_PHONE).exists()


@pytest.mark.parametrize("typed", ["POMOĆ!", "Pomoć.", "SOS!!", "pomoc napada me muž klijentice, zovite policiju"])
def test_the_alarm_is_raised_however_it_is_typed_in_a_hurry(clock, team, typed):
    # Punctuation made "POMOĆ!" no alarm, and so did more than three words after it: the phone got the command
    # help back instead, for whoever held it to read.
    worker, *_ = team
    services.start_visit(worker, minutes=60, address="Bijeljina, Njegoševa 3", via="console")
    assert sms(WORKER_PHONE, typed) == ""
    assert Visit.objects.get(worker=worker).status == VisitStatus.ALARM
    assert sent_to(SUPERVISOR_PHONE, channel="voice").exists()


def test_a_check_out_with_a_full_stop_after_the_pin_is_a_check_out(clock, team):
    worker, *_ = team
    services.start_visit(worker, minutes=30, address="Bijeljina, Njegoševa 3", via="console")
    assert sms(WORKER_PHONE, f"SAFE {PIN}.") == services.texts.checked_out()


def test_visit_commands_count_only_from_the_workers_phone_and_with_their_pin(clock, team):
    worker, *_ = team
    colleague = on_duty(phone="+38761300200")
    sms(WORKER_PHONE, "V 60 Maglaj")
    visit = Visit.objects.get(worker=worker)

    assert sms("+38761999999", f"SAFE {PIN}") is None  # an unknown number is a citizen, never a command
    assert sms(colleague.phone.as_e164, f"SAFE {PIN}") == services.texts.no_pin_set()  # only their own visit
    assert sms(WORKER_PHONE, "SAFE 9999") == services.texts.wrong_pin()
    assert sms(WORKER_PHONE, "SAFE") == services.texts.wrong_pin()
    visit.refresh_from_db()
    assert visit.status == VisitStatus.ACTIVE
    assert visit.events.filter(kind=VisitEventKind.REFUSED).count() == 1
    assert sms(WORKER_PHONE, "OK") is None  # not a visit command: the case commands answer it
    assert sms(WORKER_PHONE, "EXTEND 30") == services.texts.visit_extended(Visit.objects.get(pk=visit.pk))
    visit.refresh_from_db()
    assert visit.expected_end_at == START + dt.timedelta(minutes=90)


def test_a_case_not_the_workers_is_not_linked_to_their_visit(clock, team):
    worker, *_ = team
    someone_elses = CaseFactory()
    reply = sms(WORKER_PHONE, f"VISIT {someone_elses.reference} 30")
    assert someone_elses.reference in reply
    visit = Visit.objects.get(worker=worker)
    assert visit.case is None and visit.status == VisitStatus.ACTIVE  # safety first: the visit is timed anyway


def test_one_open_visit_per_worker(clock, team):
    worker, *_ = team
    sms(WORKER_PHONE, "V 60 Maglaj")
    assert sms(WORKER_PHONE, "V 30 Doboj") == services.texts.already_open(Visit.objects.get(worker=worker))
    assert Visit.objects.filter(worker=worker).count() == 1


def test_the_pin_on_the_overdue_call_gives_the_worker_more_time_and_a_1_does_not(clock, team, twilio):
    # A 1 was all anyone holding the worker's phone needed to call off the supervisors.
    worker, *_ = team
    services.start_visit(worker, minutes=20, address="Maglaj", via="console")
    tick_at(clock, 20)
    call = sent_to(WORKER_PHONE, channel="voice").get()
    path = f"/webhooks/twilio/voice/staff-call/?notification={call.pk}"
    spoken = html.unescape(twilio.call(path, sid="CA-visit-1").content.decode())
    assert "/webhooks/twilio/visits/call/answer/" in spoken and 'finishOnKey="#"' in spoken
    answer = f"/webhooks/twilio/visits/call/answer/?notification={call.pk}"
    twilio.call(answer, sid="CA-visit-1", Digits="1")
    assert Visit.objects.get(worker=worker).status == VisitStatus.OVERDUE
    twilio.call(answer, sid="CA-visit-1", Digits=PIN)
    visit = Visit.objects.get(worker=worker)
    assert visit.status == VisitStatus.ACTIVE and visit.escalation_step == 0
    assert visit.expected_end_at == START + dt.timedelta(minutes=35)


def test_the_duress_pin_on_the_overdue_call_sounds_as_confirmed_and_raises_the_alarm(clock, team, twilio):
    worker, *_ = team
    services.start_visit(worker, minutes=20, address="Maglaj", via="console")
    tick_at(clock, 20)
    call = sent_to(WORKER_PHONE, channel="voice").get()
    answer = f"/webhooks/twilio/visits/call/answer/?notification={call.pk}"
    said = html.unescape(twilio.call(answer, sid="CA-visit-2", Digits=DURESS).content.decode())
    assert services.texts.safe_confirmed() in said
    assert Visit.objects.get(worker=worker).status == VisitStatus.ALARM


def test_a_supervisor_pressing_1_takes_the_alarm(clock, team, twilio):
    worker, supervisor, _ = team
    services.raise_alarm(worker, via="SMS")
    call = sent_to(SUPERVISOR_PHONE, channel=NotificationChannel.VOICE).get()
    twilio.call(f"/webhooks/twilio/visits/call/answer/?notification={call.pk}", sid="CA-visit-2", Digits="1")
    visit = Visit.objects.get(worker=worker)
    assert visit.acknowledged_by == supervisor.user and visit.escalation_due_at is None


def test_the_worker_starts_and_checks_out_in_the_console_with_the_pin(clock, team, client):
    worker, *_ = team
    client.force_login(worker.user)
    response = client.post(reverse("console:visit-start"), {"minutes": 45, "address": "Olovo, Rudarska 1"})
    assert response.status_code == 302
    visit = Visit.objects.get(worker=worker)
    page = client.get(reverse("console:visits")).content.decode()
    assert "Olovo, Rudarska 1" in page
    client.post(reverse("console:visit-check-out", args=[visit.pk]), {"pin": DURESS})
    visit.refresh_from_db()
    assert visit.status == VisitStatus.ALARM
    page = client.get(reverse("console:visits")).content.decode()
    assert "Olovo, Rudarska 1" not in page.split('id="pins-title"')[0]  # no open visit shown: looks checked out


def test_addresses_are_visible_only_to_the_worker_and_supervisors(clock, team):
    worker, supervisor, _ = team
    services.start_visit(worker, minutes=45, address="Olovo, Rudarska 1", via="api")
    other = on_duty()
    api = APIClient()
    api.force_authenticate(other.user)
    assert api.get("/api/v1/visits/").json() == []  # a colleague sees nobody else's visits
    api.force_authenticate(worker.user)
    assert api.get("/api/v1/visits/").json()[0]["address"] == "Olovo, Rudarska 1"
    api.force_authenticate(supervisor.user)
    assert api.get("/api/v1/visits/").json()[0]["address"] == "Olovo, Rudarska 1"
    client = Client()
    client.force_login(other.user)
    assert client.get(reverse("console:visits-board-live")).status_code == 403


def test_the_board_panel_reads_every_open_visit_in_a_few_queries(clock, team, client, django_assert_max_num_queries):
    worker, supervisor, _ = team
    for number in range(6):
        staff = on_duty()
        visit = services.start_visit(staff, minutes=10 + number, address=f"Maglaj {number}", via="api")
    services.raise_alarm(worker, via="SMS")
    tick_at(clock, 30)
    client.force_login(supervisor.user)
    with django_assert_max_num_queries(20):
        page = client.get(reverse("console:visits-board-live")).content.decode()
    assert page.count('class="case-row visit-row') == 7
    assert f'id="visit-{visit.pk}"' in page and "Maglaj 5" in page
    assert page.index(f'id="visit-{Visit.objects.get(worker=worker).pk}"') < page.index(f'id="visit-{visit.pk}"')


def test_an_ended_visits_address_is_purged_after_the_retention_period(clock, team, settings):
    settings.VISIT_ADDRESS_RETENTION_DAYS = 30
    worker, *_ = team
    visit = services.start_visit(worker, minutes=45, address="Olovo, Rudarska 1", via="api")
    services.check_out(visit, by=worker.user, via="api")
    clock.move_to(START + dt.timedelta(days=29))
    assert services.purge_visit_addresses() == 0
    clock.move_to(START + dt.timedelta(days=31))
    assert services.purge_visit_addresses() == 1
    visit.refresh_from_db()
    assert visit.address == "" and visit.address_purged_at is not None


def test_the_purge_also_empties_the_alarm_messages_and_the_command_answers_that_carried_the_address(
    clock, team, settings, twilio
):
    # The address was removed from the visit, but stayed in clear in the alarm SMS and in the answer to the
    # supervisor's "OK" kept against Twilio's retries.
    settings.VISIT_ADDRESS_RETENTION_DAYS = 30
    worker, *_ = team
    sms(WORKER_PHONE, "VISIT 30 Rudarska 12, stan 3, Olovo")
    twilio.sms("POMOC", sid="SMalarm", from_number=WORKER_PHONE)
    code = Notification.objects.filter(to_number=SUPERVISOR_PHONE).exclude(ack_code="").first().ack_code
    twilio.sms(f"OK {code}", sid="SMtake", from_number=SUPERVISOR_PHONE)
    services.end_visit(Visit.objects.get(worker=worker), by=team[1].user, note="u redu")
    assert Notification.objects.filter(body__contains="Rudarska 12").exists()
    assert StaffSmsCommand.objects.filter(reply__contains="Rudarska 12").exists()

    clock.move_to(START + dt.timedelta(days=31))
    assert services.purge_visit_addresses() == 1
    assert not Notification.objects.filter(body__contains="Rudarska 12").exists()
    assert not StaffSmsCommand.objects.filter(reply__contains="Rudarska 12").exists()


def test_the_monthly_incident_report_counts_the_months_incidents(clock, team, tmp_path):
    worker, supervisor, _ = team
    case = CaseFactory()
    for day, kind in ((3, "threat"), (10, "physical"), (12, "threat")):
        services.record_incident(
            staff_affected=worker, kind=kind, occurred_at=dt.datetime(2026, 11, day, 10, tzinfo=dt.UTC),
            place="client's home, Maglaj", description="prijetnje", perpetrator="client's partner",
            reported_by=worker.user, case=case, police_informed=kind == "physical",
        )  # fmt: skip
    services.record_incident(
        staff_affected=worker, kind="verbal", occurred_at=dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC),
        place="office", description="-", perpetrator="-", reported_by=supervisor.user,
    )  # fmt: skip
    out, target = StringIO(), tmp_path / "incidents.csv"
    call_command("incident_report", "--month", "2026-11", "--csv", str(target), stdout=out)
    assert "2026-11: 3" in out.getvalue() and "police informed: 1" in out.getvalue()
    rows = target.read_text().splitlines()
    assert len(rows) == 4 and case.reference in rows[1]
    assert StaffIncident.objects.count() == 4


def test_the_api_starts_extends_and_checks_out_a_visit_with_the_pin(clock, team):
    worker, *_ = team
    case = CaseFactory(assigned_to=worker.user)
    api = APIClient()
    api.force_authenticate(worker.user)
    started = api.post("/api/v1/visits/", {"minutes": 40, "address": "Maglaj, Prva 1", "case_reference":
                                           case.reference}, format="json")  # fmt: skip
    assert started.status_code == 201 and started.json()["case_reference"] == case.reference
    visit_id = started.json()["id"]
    assert api.post(f"/api/v1/visits/{visit_id}/extend/", {"minutes": 20}, format="json").json()["expected_end_at"]
    wrong = api.post(f"/api/v1/visits/{visit_id}/check-out/", {"pin": "0000"}, format="json")
    assert wrong.status_code == 400 and "pin" in wrong.json()
    done = api.post(f"/api/v1/visits/{visit_id}/check-out/", {"pin": PIN}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "checked_out"
    assert api.post(f"/api/v1/visits/{visit_id}/acknowledge/").status_code == 403  # workers do not take alarms

    anonymous = APIClient()
    assert anonymous.get("/api/v1/visits/").status_code in (401, 403)
    reported = api.post("/api/v1/staff-incidents/", {
        "kind": "threat", "occurred_at": "2026-11-23T08:30:00Z", "place": "client's home, Maglaj",
        "description": "prijetio nožem", "perpetrator": "client's partner", "case_reference": case.reference,
    }, format="json")  # fmt: skip
    assert reported.status_code == 201
    assert StaffIncident.objects.get().case == case


def test_an_incident_is_linked_only_to_a_case_of_the_reporters_own(clock, team, client):
    # Any reference was taken: a worker's incident landed in the supervisors' report under a colleague's case.
    worker, _supervisor, _ = team
    colleagues = CaseFactory(assigned_to=StaffFactory().user)
    theirs = CaseFactory(assigned_to=worker.user)
    api = APIClient()
    api.force_authenticate(worker.user)
    incident = {"kind": "threat", "occurred_at": "2026-11-23T08:30:00Z", "place": "Maglaj", "description": "prijetio",
                "perpetrator": "partner"}  # fmt: skip
    refused = api.post("/api/v1/staff-incidents/", {**incident, "case_reference": colleagues.reference}, format="json")
    assert refused.status_code == 400 and "case_reference" in refused.json()
    client.force_login(worker.user)
    page = client.post("/console/visits/incidents/", {**incident, "occurred_at": "", "case_reference":
                                                      colleagues.reference})  # fmt: skip
    assert page.status_code == 400 and not StaffIncident.objects.exists()
    prefix, year, serial = theirs.reference.lower().split("-")
    typed = f"{prefix}-{year}-{serial.replace('0', 'O')}"  # typed loosely, as a reference is read everywhere else
    assert api.post("/api/v1/staff-incidents/", {**incident, "case_reference": typed}, format="json").status_code == 201
    assert StaffIncident.objects.get().case == theirs
    theirs_before = case_services.assign_case(CaseFactory(), worker.user, explanation="triage")
    case_services.assign_case(theirs_before, StaffFactory().user, explanation="given to a colleague")
    moved_on = api.post("/api/v1/staff-incidents/", {**incident, "case_reference": theirs_before.reference},
                        format="json")  # fmt: skip
    assert moved_on.status_code == 201  # threatened on the visit, then the case moved on: still theirs to report


def test_the_boards_visits_include_shows_supervisors_the_panel_and_nobody_else(clock, team, rf):
    from django.template.loader import render_to_string

    worker, supervisor, _ = team
    services.start_visit(worker, minutes=30, address="Doboj, Kralja Tvrtka 2", via="console")
    for user, shown in ((supervisor.user, True), (worker.user, False)):
        request = rf.get("/console/board/")
        request.user = user
        html_out = render_to_string("console/_visits_board.html", {}, request=request)
        assert ("Kralja Tvrtka 2" in html_out) is shown


def extend_through_api(visit: Visit, user, **data) -> tuple[bool, object]:
    api = APIClient()
    api.force_authenticate(user)
    response = api.post(f"/api/v1/visits/{visit.pk}/extend/", data, format="json")
    return response.status_code == 200, response.json()


def extend_through_console(visit: Visit, user, **data) -> tuple[bool, object]:
    console = Client()
    console.force_login(user)
    response = console.post(reverse("console:visit-extend", args=[visit.pk]), data, follow=True)
    said = [str(message) for message in response.context["messages"]]
    return said == [str(services.gettext("Visit extended."))], said


@pytest.mark.parametrize("extend", [extend_through_api, extend_through_console])
def test_an_overdue_visit_is_extended_in_the_api_and_the_console_only_with_the_pin(clock, team, extend):
    # Whoever held the worker's phone, signed in, stopped the ladder and sent the supervisors the all-clear.
    worker, *_ = team
    visit = services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")
    tick_at(clock, 30)
    tick_at(clock, 35)  # overdue: the worker, then the supervisor on duty
    end = Visit.objects.get(pk=visit.pk).expected_end_at

    for refused in ({"minutes": 30}, {"minutes": 30, "pin": "0000"}):
        assert extend(visit, worker.user, **refused)[0] is False
        visit.refresh_from_db()
        assert (visit.status, visit.expected_end_at) == (VisitStatus.OVERDUE, end)  # still chased
    assert not sent_to(SUPERVISOR_PHONE, idempotency_key__contains=":clear:").exists()
    assert visit.events.filter(kind=VisitEventKind.REFUSED).count() == 2

    assert extend(visit, worker.user, minutes=30, pin=PIN)[0] is True
    visit.refresh_from_db()
    assert visit.status == VisitStatus.ACTIVE and visit.expected_end_at == START + dt.timedelta(minutes=65)
    assert sent_to(SUPERVISOR_PHONE, idempotency_key__contains=":clear:").exists()


@pytest.mark.parametrize("extend", [extend_through_api, extend_through_console])
def test_a_long_extension_needs_the_pin_before_the_visit_is_overdue_too(clock, team, extend):
    worker, *_ = team
    visit = services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")

    assert extend(visit, worker.user, minutes=services.EXTEND_WITHOUT_PIN_MAX_MINUTES + 1)[0] is False
    assert extend(visit, worker.user, minutes=services.EXTEND_WITHOUT_PIN_MAX_MINUTES)[0] is True
    assert extend(visit, worker.user, minutes=120, pin=PIN)[0] is True
    visit.refresh_from_db()
    assert visit.expected_end_at == START + dt.timedelta(minutes=30 + 60 + 120)


@pytest.mark.parametrize("extend", [extend_through_api, extend_through_console])
def test_the_duress_pin_answers_an_extension_as_done_and_raises_the_alarm(clock, team, extend):
    worker, *_ = team
    visit = services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")
    tick_at(clock, 30)

    accepted, answer = extend(visit, worker.user, minutes=30, pin=DURESS)

    assert accepted is True  # for anyone watching, the visit was extended
    if extend is extend_through_api:
        assert answer["status"] == "active"
        assert dt.datetime.fromisoformat(answer["expected_end_at"]) == START + dt.timedelta(minutes=60)
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.ALARM
    assert sent_to(SUPERVISOR_PHONE, channel="voice").exists() and sent_to(FALLBACK, channel="sms").exists()


@pytest.mark.parametrize("extend", [extend_through_api, extend_through_console])
def test_after_the_duress_pin_extended_a_visit_the_workers_screens_keep_showing_it_extended(clock, team, extend):
    # A reload of the page showed the visit over, a minute after it was "extended", to whoever stood behind them.
    worker, supervisor, _ = team
    visit = services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")
    tick_at(clock, 30)
    extend(visit, worker.user, minutes=30, pin=DURESS)

    def as_seen_by(user) -> tuple[dict, str]:
        api, console = APIClient(), Client()
        api.force_authenticate(user)
        console.force_login(user)
        return api.get(f"/api/v1/visits/{visit.pk}/").json(), console.get(reverse("console:visits")).content.decode()

    seen, page = as_seen_by(worker.user)
    assert seen["status"] == "active" and seen["ended_at"] is None
    assert dt.datetime.fromisoformat(seen["expected_end_at"]) == START + dt.timedelta(minutes=60)
    assert 'data-visit-status="active"' in page and "Maglaj, Prva 1" in page
    assert as_seen_by(supervisor.user)[0]["status"] == "alarm"

    # Made to extend again, even with the real PIN: the screen moves on, the alarm does not stop.
    assert extend(visit, worker.user, minutes=20, pin=PIN)[0] is True
    seen, _page = as_seen_by(worker.user)
    assert dt.datetime.fromisoformat(seen["expected_end_at"]) == START + dt.timedelta(minutes=80)
    # A check-out, even with the real PIN, ends the pretence on the worker's screen only.
    assert services.check_out_with_pin(worker, PIN, via="SMS").reply == services.texts.checked_out()
    assert as_seen_by(worker.user)[0]["status"] == "checked_out"
    visit.refresh_from_db()
    assert visit.status == VisitStatus.ALARM and visit.acknowledged_at is None
    assert not sent_to(SUPERVISOR_PHONE, idempotency_key__contains=":clear:").exists()


def test_a_supervisor_extends_a_workers_overdue_visit_without_the_workers_pin(clock, team):
    worker, supervisor, _ = team
    visit = services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")
    tick_at(clock, 30)
    assert extend_through_api(visit, supervisor.user, minutes=30)[0] is True
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.ACTIVE


def test_the_console_asks_a_worker_with_pins_for_their_pin_to_extend(clock, team, client):
    worker, *_ = team
    services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")
    client.force_login(worker.user)
    page = client.get(reverse("console:visits")).content.decode()
    extend_form = page.split('id="visit-extend-button"')[0].rsplit("<form", 1)[1]
    assert 'name="pin"' in extend_form and 'type="password"' in extend_form


def test_a_nul_character_in_the_supervisors_note_ending_a_visit_is_refused_and_the_visit_stays_open(
    clock, team, client
):
    worker, supervisor, _ = team
    visit = services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")
    client.force_login(supervisor.user)

    response = client.post(reverse("console:visit-end", args=[visit.pk]), {"note": "telefon izgubljen\x00"})

    assert response.status_code == 400 and "Znak NUL nije dozvoljen." in response.content.decode()
    visit.refresh_from_db()
    assert visit.status == VisitStatus.ACTIVE and not visit.events.filter(kind=VisitEventKind.ENDED).exists()
    client.post(reverse("console:visit-end", args=[visit.pk]), {"note": "telefon izgubljen"})
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.ENDED


def test_a_busy_call_about_a_visit_already_checked_out_does_not_ring_the_supervisor_again(clock, team):
    # The supervisor's phone was busy on the overdue call; by the time Twilio said so the worker had checked out
    # and the all-clear had gone. The busy call was queued again and rang the supervisor about a safe worker.
    worker, *_ = team
    services.start_visit(worker, minutes=30, address="Maglaj, Prva 1", via="console")
    tick_at(clock, 30)
    tick_at(clock, 35)
    call = sent_to(SUPERVISOR_PHONE, channel="voice").get()
    Notification.objects.filter(pk=call.pk).update(status=DeliveryStatus.SENT, provider_sid="CAbusy1", attempts=1)
    assert services.check_out_with_pin(worker, PIN, via="SMS").accepted

    outbox.record_staff_call_outcome(provider_sid="CAbusy1", call_status="busy")

    call.refresh_from_db()
    assert call.status != DeliveryStatus.QUEUED


def test_a_duress_alarm_opens_the_supervisor_board_above_the_waiting_cases_marked_critical_with_its_time(
    clock, team, client
):
    # With eighteen cases waiting the alarm was 9,000 px down the page, grey like a visit in progress, showing the
    # visit's expected end instead of when the alarm was raised, and the board's beep never sounded for it.
    worker, supervisor, _ = team
    for _ in range(3):
        CaseFactory(priority="critical")
    services.start_visit(worker, minutes=30, address="Maglaj, Rudarska 12", via="console")
    services.check_out_with_pin(worker, DURESS, via="SMS")
    visit = Visit.objects.get(worker=worker)
    client.force_login(supervisor.user)

    page = client.get(reverse("console:board")).content.decode()

    alarms = page.index('id="visit-alarms"')
    assert alarms < page.index('id="waiting-title"')
    row = page[page.rindex("<li", 0, page.index(f'id="visit-{visit.pk}"', alarms)):].split("</li>")[0]
    assert f'data-critical="visit-{visit.pk}"' in row and "visit-critical" in row
    assert "Uzbuna od 10:00" in row and "Rok" not in row
    # the same visit is not listed twice on the page
    assert page.count(f'id="visit-{visit.pk}"') == 1


def test_an_untaken_alarm_offers_no_end_button_and_cannot_be_ended(clock, team, client):
    worker, supervisor, _ = team
    services.start_visit(worker, minutes=30, address="Maglaj, Rudarska 12", via="console")
    services.check_out_with_pin(worker, DURESS, via="SMS")
    visit = Visit.objects.get(worker=worker)
    client.force_login(supervisor.user)

    page = client.get(reverse("console:board")).content.decode()
    assert "visit-end" not in page and "visit-acknowledge" in page
    response = client.post(reverse("console:visit-end", args=[visit.pk]), {"note": "sve u redu"})
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.ALARM
    assert response.status_code == 400

    services.acknowledge_visit(visit, by=supervisor.user, via="console")
    page = client.get(reverse("console:board")).content.decode()
    end_form = page.split('class="visit-end')[0].rsplit("<form", 1)[1]
    assert 'name="note"' in end_form and "required" in end_form
    response = client.post(reverse("console:visit-end", args=[visit.pk]), {"note": ""})
    assert response.status_code == 400 and Visit.objects.get(pk=visit.pk).status == VisitStatus.ALARM
    client.post(reverse("console:visit-end", args=[visit.pk]), {"note": "razgovarala s njom, sigurna je"})
    assert Visit.objects.get(pk=visit.pk).status == VisitStatus.ENDED


def test_ending_a_duress_alarm_tells_everyone_who_heard_of_it_but_not_the_phones_in_that_home(clock, team):
    # The fallback numbers and the supervisors had "alarm, call the police, address ..." and never learnt it was
    # over. The worker's phone, and the colleague's beside them, may be in other hands: they hear nothing.
    worker, supervisor, _ = team
    colleague = on_duty(role="supervisor", phone="+38761300555")
    services.start_visit(worker, minutes=30, address="Maglaj, Rudarska 12", via="console", colleague=colleague)
    services.check_out_with_pin(worker, DURESS, via="SMS")
    visit = Visit.objects.get(worker=worker)
    assert sent_to(FALLBACK).exists() and sent_to(OTHER_SUPERVISOR_PHONE).exists()
    services.acknowledge_visit(visit, by=supervisor.user, via="console")

    services.end_visit(visit, by=supervisor.user, note="razgovarala s njom")

    clear = Notification.objects.filter(idempotency_key__contains=":clear:")
    assert set(clear.values_list("to_number", flat=True)) == {SUPERVISOR_PHONE, OTHER_SUPERVISOR_PHONE, FALLBACK}
    assert not sent_to(WORKER_PHONE).exists()
    assert not clear.filter(to_number="+38761300555").exists()
