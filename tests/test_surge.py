"""Surge mode: staff phones get one message a minute instead of one per case, critical cases keep their full
ladder, and off-duty staff can be called in by SMS."""
import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from helpline.cases.models import Case, CaseStatus
from helpline.cases.selectors import by_urgency
from helpline.casework import actions
from helpline.intake import services
from helpline.roster.models import Absence
from helpline.roster.selectors import on_duty as staff_on_duty
from notifications import ladder, surge
from notifications.models import CallOut, Notification, NotificationKind
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


def new_case(text: str) -> Case:
    case = CaseFactory()
    MessageFactory(case=case, body=text)
    return actions.do_triage_case(case.pk)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def supervisor():
    return on_duty(role="supervisor", phone="+38761200309")


def test_in_surge_mode_normal_cases_send_no_message_per_case_but_one_digest_a_minute(clock, supervisor):
    worker = on_duty(phone="+38761200301", max_open_cases=50)
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    cases = [new_case("treba nam pomoć oko ogrjeva") for _ in range(20)]
    assert {case.assigned_to for case in cases} == {worker.user}
    for minute in range(1, 40):
        clock.move_to(START + dt.timedelta(minutes=minute))
        ladder.run_due_escalations()
        surge.send_digests()
    per_case = Notification.objects.exclude(kind=NotificationKind.DIGEST)
    assert not per_case.exists()
    digests = Notification.objects.filter(kind=NotificationKind.DIGEST)
    assert digests.filter(recipient=supervisor.user).count() == 39  # one a minute, not 20 a minute
    assert digests.filter(recipient=worker.user).count() == 39
    assert "20" in digests.filter(recipient=supervisor.user).first().body


def test_each_digests_link_opens_for_the_person_it_was_sent_to(clock, supervisor, client, settings):
    settings.PUBLIC_BASE_URL = "https://sos.example.test"
    worker = on_duty(phone="+38761200301", max_open_cases=50)
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    new_case("treba nam pomoć oko ogrjeva")
    clock.move_to(START + dt.timedelta(minutes=1))
    surge.send_digests()
    for person in (supervisor, worker):
        body = Notification.objects.get(kind=NotificationKind.DIGEST, recipient=person.user).body
        path = body.split("https://sos.example.test", 1)[1].split()[0]
        client.force_login(person.user)
        assert client.get(path).status_code == 200, (person.role, path)


def test_in_surge_mode_a_critical_case_keeps_its_full_ladder(clock, supervisor):
    worker = on_duty(phone="+38761200301")
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    case = new_case("ubit će me, ima nož")
    assert Notification.objects.filter(kind=NotificationKind.ASSIGNMENT, recipient=worker.user).count() == 2
    clock.move_to(START + dt.timedelta(minutes=2))
    ladder.run_due_escalations()
    assert Notification.objects.filter(case=case, kind=NotificationKind.REMINDER).count() == 2


def test_in_surge_mode_a_reassign_step_is_skipped_when_nobody_has_room(clock, supervisor):
    first = on_duty(phone="+38761200301", max_open_cases=1)
    on_duty(phone="+38761200302", max_open_cases=0)
    supervisor.max_open_cases = 0
    supervisor.save()
    actions.do_start_surge(by=supervisor.user, name="Poplava")
    case = new_case("treba nam pomoć oko ogrjeva")
    clock.move_to(START + dt.timedelta(minutes=30))
    ladder.run_due_escalations()  # remind (digest), reassign: nobody has room, so skipped
    case.refresh_from_db()
    assert case.assigned_to == first.user
    assert not Notification.objects.exclude(kind=NotificationKind.DIGEST).exists()


def test_in_surge_mode_a_plain_ok_takes_the_workers_most_urgent_quiet_case(clock, supervisor, twilio):
    worker = on_duty(phone="+38761200301", max_open_cases=50)
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    calm = new_case("treba nam pomoć oko ogrjeva")
    # High, not critical: "voda joj ulazi u kuću, ne može izaći" is critical since the flood rule, with its ladder.
    urgent = new_case("baka je stara i sama, nema ko da joj donese lijekove")
    assert not Notification.objects.filter(recipient=worker.user).exists()  # given quietly: no message each

    most_urgent, other = by_urgency(Case.objects.filter(pk__in=[calm.pk, urgent.pk]))
    twilio.sms("OK", sid="SMok1", from_number="+38761200301")
    assert Case.objects.get(pk=most_urgent.pk).status == CaseStatus.ACKNOWLEDGED
    assert Case.objects.get(pk=other.pk).status != CaseStatus.ACKNOWLEDGED


def test_without_surge_mode_there_are_no_digests(clock, supervisor):
    on_duty(phone="+38761200301")
    new_case("treba nam pomoć oko ogrjeva")
    assert surge.send_digests() == 0
    assert Notification.objects.filter(kind=NotificationKind.ASSIGNMENT).count() == 1


def test_a_call_out_reply_puts_the_person_on_duty(clock, supervisor, twilio):
    off_duty = StaffFactory(phone="+38761200305")
    unwilling = StaffFactory(phone="+38761200306")
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    assert actions.do_call_out(by=supervisor.user) == 2
    assert actions.do_call_out(by=supervisor.user) == 0  # once per person per surge
    assert "Poplava Maglaj" in Notification.objects.get(recipient=off_duty.user).body

    reply = twilio.sms("1", sid="SMco1", from_number="+38761200305").content.decode()
    assert "10:00" in reply  # the shift starts now, in Sarajevo time
    assert off_duty in staff_on_duty(START + dt.timedelta(minutes=5))
    twilio.sms("2", sid="SMco2", from_number="+38761200306")
    assert CallOut.objects.get(staff=unwilling).is_coming is False
    assert unwilling not in staff_on_duty(START + dt.timedelta(minutes=5))
    assert not Case.objects.exists()  # staff answers are never citizen cases

    # The new person on duty gets the next case.
    case = new_case("treba nam pomoć oko ogrjeva")
    assert case.assigned_to == off_duty.user


@pytest.mark.parametrize("answer, starts", [
    ("1 u 18:30", "18:30"), ("1 at 18.30", "18:30"), ("1 1830", "18:30"), ("1 18h", "18:00"), ("Da", "10:00"),
    ("1.", "10:00"), ("ДА", "10:00"),
])  # fmt: skip
def test_a_call_out_answer_is_read_however_it_is_typed(clock, supervisor, twilio, answer, starts):
    StaffFactory(phone="+38761200305")
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    actions.do_call_out(by=supervisor.user)
    reply = twilio.sms(answer, sid="SMco1", from_number="+38761200305").content.decode()
    assert starts in reply and CallOut.objects.get().is_coming is True


@pytest.mark.parametrize("answer, at, starts, day", [
    ("1 u 7", "18:00", "19:00", 23),  # said at six in the evening, seven means seven in the evening
    ("1 u 6", "18:00", "18:00", 23),
    ("1 u 8", "21:00", "08:00", 24),  # past either way: tomorrow morning, and the reply says which day
])  # fmt: skip
def test_a_call_out_time_is_read_as_people_say_it_and_a_day_moved_is_said(
    clock, supervisor, twilio, answer, at, starts, day
):
    staff = StaffFactory(phone="+38761200305")
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    actions.do_call_out(by=supervisor.user)
    hour, minute = map(int, at.split(":"))
    clock.move_to(dt.datetime(2026, 11, 23, hour - 1, minute, tzinfo=dt.UTC))  # Sarajevo is UTC+1 in November
    reply = twilio.sms(answer, sid="SMco1", from_number="+38761200305").content.decode()
    shift_start = timezone.localtime(staff.shifts.get().starts_at)
    assert (shift_start.strftime("%H:%M"), shift_start.day) == (starts, day)
    assert starts in reply and (f"{day}.11." in reply) == (day == 24)


def test_a_call_out_is_answered_hours_later_while_the_surge_lasts(clock, supervisor, twilio):
    # After three hours a "1" was read as a plain OK: "no case is waiting for you", no shift, and never asked again.
    coming = StaffFactory(phone="+38761200305")
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    actions.do_call_out(by=supervisor.user)
    clock.shift(dt.timedelta(hours=5))
    twilio.sms("1", sid="SMco1", from_number="+38761200305")
    assert CallOut.objects.get().is_coming is True
    assert coming in staff_on_duty(START + dt.timedelta(hours=5, minutes=5))


def test_someone_on_leave_who_answers_1_is_on_duty_as_they_were_told(clock, supervisor, twilio):
    # The leave took precedence over the new shift: told "you are on duty", they were not, and no case came.
    on_leave = StaffFactory(phone="+38761200305")
    Absence.objects.create(staff=on_leave, starts_at=START - dt.timedelta(days=2), ends_at=START + dt.timedelta(days=5))
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    actions.do_call_out(by=supervisor.user)
    twilio.sms("1", sid="SMco1", from_number="+38761200305")
    assert on_leave in staff_on_duty(START + dt.timedelta(minutes=5))
    shift = on_leave.shifts.get()
    assert on_leave not in staff_on_duty(shift.ends_at + dt.timedelta(minutes=5))  # the leave resumes after it
    assert new_case("treba nam pomoć oko ogrjeva").assigned_to == on_leave.user


def test_the_board_proposes_surge_mode_and_a_supervisor_switches_it(client, clock, supervisor, settings):
    settings.SURGE_CASES_PER_PERSON = 3
    for _ in range(7):
        CaseFactory()  # nobody has taken them: 7 waiting for 2 people on duty
    on_duty(phone="+38761200301")
    client.force_login(supervisor.user)
    board = client.get("/console/board/").content.decode()
    assert "surge" in board and surge.surge_pressure(START).calls_for_surge_mode
    client.post("/console/board/surge/", {"do": "start", "name": "Poplava Maglaj"})
    assert surge.current_surge().name == "Poplava Maglaj"
    client.post("/console/board/surge/", {"do": "end"})
    assert surge.current_surge() is None


def test_a_citizen_who_writes_in_english_gets_the_english_notice_when_the_supervisor_gave_one(
    clock, supervisor, twilio, client
):
    client.force_login(supervisor.user)
    client.post("/console/board/surge/", {
        "do": "start", "name": "Poplava Maglaj", "notice": "Kasnimo zbog poplave.",
        "notice_english": "Answers are slow because of the flood.",
    })  # fmt: skip
    client.logout()
    english = twilio.sms("Water is coming into our house, please help", sid="SMsurgeEn", from_number="+38761200780")
    assert "Answers are slow because of the flood." in english.content.decode()
    assert "Kasnimo" not in english.content.decode()
    bosnian = client.post("/api/v1/inquiries/", {"message": "Voda nam ulazi u kuću"}, content_type="application/json")
    assert bosnian.json()["notice"] == "Kasnimo zbog poplave."
    assert services.surge_notice("cyrillic", "en") == "Answers are slow because of the flood."  # never Cyrillic
    assert services.surge_notice("cyrillic", "bs") == "Каснимо због поплаве."


def test_a_worker_cannot_switch_surge_mode(client, clock):
    worker = on_duty(phone="+38761200301")
    client.force_login(worker.user)
    assert client.post("/console/board/surge/", {"do": "start", "name": "x"}).status_code == 403
    assert surge.current_surge() is None


def test_while_surge_mode_lasts_every_citizen_answer_carries_the_supervisors_notice(clock, supervisor, twilio, client):
    notice = "Kasnimo zbog poplave. Punkt pomoći: OŠ Maglaj."
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj", citizen_notice=notice)

    sms = twilio.sms("Voda nam ulazi u kuću", sid="SMsurge1", from_number="+38761200777").content.decode()
    assert notice in sms
    cyrillic = twilio.sms("Вода нам улази у кућу", sid="SMsurge2", from_number="+38761200778").content.decode()
    assert "Каснимо због поплаве" in cyrillic
    api = client.post("/api/v1/inquiries/", {"message": "Trebamo pomoć"}, content_type="application/json").json()
    assert api["notice"] == notice
    page = client.get("/inquiry/")
    form = {"message": "Trebamo vodu", "idempotency_key": page.context["form"].initial["idempotency_key"]}
    assert notice in client.post("/inquiry/", form, follow=True).content.decode()

    surge.end_surge(by=supervisor.user)
    later = twilio.sms("Hvala", sid="SMsurge3", from_number="+38761200779").content.decode()
    assert notice not in later
    after = client.post("/api/v1/inquiries/", {"message": "Pitanje"}, content_type="application/json").json()
    assert after["notice"] == ""


def test_an_old_used_code_that_reads_as_a_time_is_a_call_out_time(clock, supervisor, twilio):
    # Any code ever sent counted: "1 1830" from someone once sent 1830 was taken for a spent code, and they were
    # not put on duty.
    worker = StaffFactory(phone="+38761200305")
    old = CaseFactory(assigned_to=worker.user, status=CaseStatus.RESOLVED)
    Notification.objects.create(recipient=worker.user, case=old, to_number="+38761200305", body="x", ack_code="1830",
                                channel="sms", kind=NotificationKind.ASSIGNMENT,
                                idempotency_key="old-1830", ack_code_used_at=START)  # fmt: skip
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    actions.do_call_out(by=supervisor.user)
    reply = twilio.sms("1 1830", sid="SMco1", from_number="+38761200305").content.decode()
    assert "18:30" in reply and CallOut.objects.get(staff=worker).is_coming is True


@pytest.mark.parametrize("code", ["4821", "1830"], ids=["not a time", "a time of day"])
def test_someone_called_in_who_takes_a_case_by_its_code_is_not_put_on_duty_at_a_made_up_hour(
    clock, supervisor, twilio, code
):
    # "DA 4821" was read as "coming at 48:21": a shift from 00:21 for someone asleep, and the case not taken.
    worker = StaffFactory(phone="+38761200305")
    ShiftFactory(staff=worker, starts_at=START - dt.timedelta(hours=8), ends_at=START + dt.timedelta(minutes=30))
    case = new_case("treba nam pomoć oko ogrjeva")
    assert case.assigned_to == worker.user
    Notification.objects.filter(recipient=worker.user, case=case).update(ack_code=code)
    clock.shift(dt.timedelta(hours=1))  # their shift is over; a surge calls them in
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    assert actions.do_call_out(by=supervisor.user) == 1

    twilio.sms(f"DA {code}", sid="SMack1", from_number="+38761200305")
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED
    assert worker.shifts.count() == 1  # no shift made up from the code
    assert CallOut.objects.get(staff=worker).answered_at is None  # the call-out still waits for its answer
    twilio.sms("1", sid="SMco1", from_number="+38761200305")
    assert worker in staff_on_duty(START + dt.timedelta(hours=1, minutes=5))


def test_in_surge_mode_a_case_whose_worker_went_off_duty_goes_to_someone_who_came_in_with_room(clock):
    # The ladder repeats without its reassign step, and digests go to people on duty: the case sat with someone
    # who had gone home until the surge ended.
    supervisor = StaffFactory(role="supervisor", phone="+38761200309")  # at home; the surge is declared remotely
    leaving = StaffFactory(phone="+38761200301", max_open_cases=50)
    ShiftFactory(staff=leaving, starts_at=START - dt.timedelta(hours=8), ends_at=START + dt.timedelta(minutes=20))
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    case = new_case("treba nam pomoć oko ogrjeva")
    assert case.assigned_to == leaving.user and case.priority != "critical"
    came_in = StaffFactory(phone="+38761200302", max_open_cases=50)
    ShiftFactory(staff=came_in, starts_at=START + dt.timedelta(minutes=45), ends_at=START + dt.timedelta(hours=8))

    for minute in range(1, 180):
        clock.move_to(START + dt.timedelta(minutes=minute))
        ladder.run_due_escalations()

    case.refresh_from_db()
    assert case.assigned_to == came_in.user


# --- Ending surge mode -------------------------------------------------------------------------------------------


def test_ending_surge_mode_restarts_the_quiet_cases_ladders_and_tells_each_holder_once(clock, supervisor, settings):
    # Each quiet case had counted its steps as done: when the surge ended, 30 cases paged the supervisor and the
    # head of the centre once each, and the worker heard nothing.
    settings.ESCALATION_FALLBACK_NUMBERS = ["+38761999000"]
    supervisor.max_open_cases = 0  # the quiet reassign steps leave the cases with the worker
    supervisor.save()
    worker = on_duty(phone="+38761200301", max_open_cases=50)
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    cases = [new_case("treba nam pomoć oko ogrjeva") for _ in range(3)]
    assert {case.assigned_to for case in cases} == {worker.user}
    for minute in range(1, 181):
        clock.move_to(START + dt.timedelta(minutes=minute))
        ladder.run_due_escalations()
    Notification.objects.all().delete()

    actions.do_end_surge(by=supervisor.user)
    summary = Notification.objects.get(recipient=worker.user)
    assert "3" in summary.body
    assert not Notification.objects.exclude(pk=summary.pk).exists()
    for minute in range(1, 12):  # inside the normal case's first deadline (15 minutes) nobody else is told
        clock.move_to(START + dt.timedelta(hours=3, minutes=minute))
        ladder.run_due_escalations()
    assert not Notification.objects.exclude(pk=summary.pk).exists()
    clock.move_to(START + dt.timedelta(hours=3, minutes=16))
    ladder.run_due_escalations()  # the first step again: a reminder to the worker, not the head of the centre
    assert set(Notification.objects.exclude(pk=summary.pk).values_list("kind", "recipient")) == {
        (NotificationKind.REMINDER, worker.user.pk)
    }


def test_ending_surge_mode_leaves_a_critical_cases_ladder_where_it_is(clock, supervisor):
    on_duty(phone="+38761200301")
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    case = new_case("ubit će me, ima nož")
    clock.move_to(START + dt.timedelta(minutes=4))
    ladder.run_due_escalations()
    case.refresh_from_db()
    step, due = case.escalation_step, case.escalation_due_at
    assert step >= 1
    actions.do_end_surge(by=supervisor.user)
    case.refresh_from_db()
    assert (case.escalation_step, case.escalation_due_at) == (step, due)


# --- Call-out answers as people write them --------------------------------------------------------------------


def called_out(supervisor, phone="+38761200305"):
    staff = StaffFactory(phone=phone)
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    actions.do_call_out(by=supervisor.user)
    return staff


@pytest.mark.parametrize("answer, starts", [
    ("Da, dolazim", "10:00"), ("da mogu", "10:00"), ("Dolazim", "10:00"), ("Може", "10:00"), ("1, u 22h", "22:00"),
    ("1 oko 22h", "22:00"), ("1 za pola sata", "10:30"), ("1 u 22 sata", "22:00"), ("1 у 22ч", "22:00"),
    ("1 sutra u 7", "07:00"), ("1 u 22h30", "22:30"),
])  # fmt: skip
def test_an_ordinary_call_out_answer_puts_the_person_on_duty(clock, supervisor, twilio, answer, starts):
    staff = called_out(supervisor)
    reply = twilio.sms(answer, sid="SMco1", from_number="+38761200305").content.decode()
    assert CallOut.objects.get().is_coming is True, reply
    assert timezone.localtime(staff.shifts.get().starts_at).strftime("%H:%M") == starts


@pytest.mark.parametrize("answer", ["2 ne mogu", "Ne mogu", "ne", "2"])
def test_an_ordinary_no_is_recorded_as_a_no(clock, supervisor, twilio, answer):
    staff = called_out(supervisor)
    twilio.sms(answer, sid="SMco1", from_number="+38761200305")
    assert CallOut.objects.get().is_coming is False
    assert not staff.shifts.exists()


def test_a_call_out_answer_not_understood_gets_the_call_out_help_not_the_case_help(clock, supervisor, twilio):
    staff = called_out(supervisor)
    reply = twilio.sms("1 kad stignem autobusom", sid="SMco1", from_number="+38761200305").content.decode()
    assert "1 18:30" in reply
    assert CallOut.objects.get().answered_at is None and not staff.shifts.exists()


# --- Call-out times across midnight and the clock change ------------------------------------------------------


@pytest.mark.parametrize("answer, sent_at, starts", [
    ("1 u 12", "2026-11-23 20:00", "2026-11-24 00:00"),  # noon has passed: twelve is midnight
    ("1 u 12", "2026-11-23 23:30", "2026-11-24 00:00"),
    ("1 u 12", "2026-11-23 10:00", "2026-11-23 12:00"),
    ("1 u 11", "2026-11-23 23:20", "2026-11-24 11:00"),  # not 23:00, twenty minutes ago
    ("1 u 23", "2026-11-23 23:20", "2026-11-23 23:00"),  # what they wrote, a moment ago: now-ish
    ("1 u 1", "2026-11-23 23:20", "2026-11-24 01:00"),
    ("1 u 7", "2026-11-23 18:00", "2026-11-23 19:00"),
])  # fmt: skip
def test_a_call_out_time_is_the_next_time_that_matches_what_was_written(clock, supervisor, twilio, answer, sent_at,
                                                                        starts):
    staff = called_out(supervisor)
    clock.move_to(dt.datetime.fromisoformat(sent_at).replace(tzinfo=timezone.get_current_timezone()))
    twilio.sms(answer, sid="SMco1", from_number="+38761200305")
    assert timezone.localtime(staff.shifts.get().starts_at).strftime("%Y-%m-%d %H:%M") == starts


@pytest.mark.parametrize("sent_at", ["2026-03-28 21:00", "2026-10-24 21:00"], ids=["spring", "autumn"])
def test_a_call_out_shift_across_the_clock_change_lasts_eight_real_hours(clock, supervisor, twilio, sent_at):
    staff = called_out(supervisor)
    clock.move_to(dt.datetime.fromisoformat(sent_at).replace(tzinfo=timezone.get_current_timezone()))
    twilio.sms("1 u 22", sid="SMco1", from_number="+38761200305")
    shift = staff.shifts.get()
    assert shift.ends_at - shift.starts_at == dt.timedelta(hours=8)


# --- Changing a call-out answer -------------------------------------------------------------------------------


def test_a_yes_changed_to_no_takes_the_person_off_duty(clock, supervisor, twilio):
    staff = called_out(supervisor)
    twilio.sms("1", sid="SMco1", from_number="+38761200305")
    assert staff in staff_on_duty(START + dt.timedelta(minutes=5))
    clock.shift(dt.timedelta(minutes=10))
    reply = twilio.sms("2", sid="SMco2", from_number="+38761200305").content.decode()
    assert CallOut.objects.get().is_coming is False
    assert staff not in staff_on_duty(START + dt.timedelta(minutes=15))
    assert "OK" not in reply


def test_a_no_changed_to_yes_puts_the_person_on_duty(clock, supervisor, twilio):
    staff = called_out(supervisor)
    twilio.sms("2", sid="SMco1", from_number="+38761200305")
    twilio.sms("1 u 11", sid="SMco2", from_number="+38761200305")
    assert CallOut.objects.get().is_coming is True
    assert staff in staff_on_duty(START + dt.timedelta(hours=1, minutes=5))  # 11:00 in Sarajevo


def test_a_yes_to_a_call_out_of_a_surge_ended_and_started_again_counts(clock, supervisor, twilio):
    staff = called_out(supervisor)
    actions.do_end_surge(by=supervisor.user)
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    twilio.sms("1", sid="SMco1", from_number="+38761200305")
    assert staff in staff_on_duty(START + dt.timedelta(minutes=5))


def test_a_reply_to_a_call_out_that_has_ended_is_thanked(clock, supervisor, twilio):
    staff = called_out(supervisor)
    actions.do_end_surge(by=supervisor.user)
    reply = twilio.sms("1 u 18", sid="SMco1", from_number="+38761200305").content.decode()
    assert "poziv je završen" in reply  # "the call-out is over", in the staff's language
    assert not staff.shifts.exists()


# --- When the backlog clears ----------------------------------------------------------------------------------


def test_with_nothing_waiting_no_digest_goes_out_and_after_a_while_the_supervisor_is_told_once_to_end_it(
    clock, supervisor, client, settings
):
    # "SURGE: 0 waiting, 0 critical" went out every minute for as long as surge mode was left on.
    settings.SURGE_CLEARED_MINUTES = 30
    on_duty(phone="+38761200301")
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    for minute in range(1, 90):
        clock.move_to(START + dt.timedelta(minutes=minute))
        surge.send_digests()
        if minute == 20:
            assert not surge.surge_can_end(surge.current_surge(), START + dt.timedelta(minutes=minute))
    told = Notification.objects.filter(recipient=supervisor.user)
    assert told.count() == 1
    assert "Poplava Maglaj" in told.get().body and told.get().kind != NotificationKind.DIGEST
    assert not Notification.objects.filter(kind=NotificationKind.DIGEST).exists()
    client.force_login(supervisor.user)
    assert "surge-can-end" in client.get("/console/board/").content.decode()


def test_a_backlog_that_comes_back_starts_the_quiet_time_again(clock, supervisor, settings):
    settings.SURGE_CLEARED_MINUTES = 30
    on_duty(phone="+38761200301", max_open_cases=50)
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    clock.move_to(START + dt.timedelta(minutes=20))
    surge.send_digests()
    case = new_case("treba nam pomoć oko ogrjeva")
    clock.move_to(START + dt.timedelta(minutes=21))
    surge.send_digests()
    actions.do_acknowledge(case, by=case.assigned_to, via="console")
    for minute in range(22, 50):  # 28 minutes clear since the case was taken
        clock.move_to(START + dt.timedelta(minutes=minute))
        surge.send_digests()
    assert not Notification.objects.exclude(kind=NotificationKind.DIGEST).filter(recipient=supervisor.user).exists()


def test_a_supervisor_given_cases_quietly_is_told_how_many_wait_for_them(clock, supervisor):
    # Normal cases went to the supervisor on duty with room, with no SMS; the personal count went to workers only.
    supervisor.max_open_cases = 50
    supervisor.save()
    actions.do_start_surge(by=supervisor.user, name="Poplava Maglaj")
    cases = [new_case("treba nam pomoć oko ogrjeva") for _ in range(2)]
    assert {case.assigned_to for case in cases} == {supervisor.user}
    clock.move_to(START + dt.timedelta(minutes=1))
    surge.send_digests()
    bodies = list(Notification.objects.filter(recipient=supervisor.user).values_list("body", flat=True))
    assert len(bodies) == 1 and "vas ceka" in bodies[0]  # "... of them are waiting for you"
