"""A critical case is chased until a person takes it: the ladder never goes quiet, a step that can reach nobody
gives way to the next at once, and acknowledgement at any point stops every further send."""
import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.utils import translation
from rest_framework.test import APIClient

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions, selectors
from helpline.roster.models import StaffProfile
from notifications import acknowledgement, ladder, texts
from notifications.models import EscalationPolicy, Notification, NotificationChannel, NotificationKind, StepAction
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
FALLBACK = "+38733999000"


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


def critical_case():
    case = CaseFactory()
    MessageFactory(case=case, body="ubit će me, ima nož")
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    return case


@pytest.fixture
def clock(settings):
    settings.ESCALATION_FALLBACK_NUMBERS = [FALLBACK]
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def tick_at(clock, minutes: float) -> None:
    clock.move_to(START + dt.timedelta(minutes=minutes))
    ladder.run_due_escalations()


def escalations_to(**recipient) -> int:
    return Notification.objects.filter(kind=NotificationKind.ESCALATION, **recipient).count()


def test_a_critical_case_nobody_takes_is_chased_for_an_hour_and_more(clock):
    worker = on_duty(phone="+38761200301")
    supervisor = StaffFactory(role="supervisor", phone="+38761200309")  # not on duty tonight
    case = critical_case()
    assert case.assigned_to == worker.user

    tick_at(clock, 2)  # the deadline: a reminder, by SMS and a call
    assert Notification.objects.filter(kind=NotificationKind.REMINDER, recipient=worker.user).count() == 2

    tick_at(clock, 3)  # reassign: nobody else on duty, so the next steps run at once, in the same minute
    case.refresh_from_db()
    steps = case.timeline.filter(kind=EventKind.ESCALATED)
    actions_run = list(steps.values_list("details__action", "details__reached"))
    assert actions_run[1:] == [
        ("reassign", False), ("notify_supervisor_on_duty", False), ("notify_all_supervisors", True),
    ]  # fmt: skip
    # The off-duty supervisor is called and texted: a critical case wakes someone.
    assert {n.channel for n in Notification.objects.filter(recipient=supervisor.user)} == {"sms", "voice"}

    tick_at(clock, 8)  # the centre's fallback numbers, by voice and SMS
    assert Notification.objects.filter(to_number=FALLBACK, channel=NotificationChannel.VOICE).count() == 1
    # Told what they can do: nothing they reply or press takes a case, so they are not asked to.
    fallback_sms = Notification.objects.get(to_number=FALLBACK, channel=NotificationChannel.SMS).body
    assert case.reference in fallback_sms and "OK" not in fallback_sms

    sent_before = escalations_to()
    for minute in range(9, 75):  # more than an hour: it never goes quiet
        tick_at(clock, minute)
    case.refresh_from_db()
    assert case.escalation_loop >= 6 and case.escalation_due_at is not None and case.is_escalated
    assert escalations_to(recipient=supervisor.user) >= 2 * 6  # SMS and a call each round
    assert Notification.objects.filter(to_number=FALLBACK).count() >= 2 * 6
    assert escalations_to() > sent_before


@pytest.mark.parametrize("taken_at_minute", [1, 2.5, 8, 40])
def test_acknowledgement_at_any_point_stops_every_further_send(clock, taken_at_minute):
    worker = on_duty(phone="+38761200301")
    StaffFactory(role="supervisor", phone="+38761200309")
    case = critical_case()
    for minute in range(1, int(taken_at_minute) + 1):
        tick_at(clock, minute)
    clock.move_to(START + dt.timedelta(minutes=taken_at_minute))
    acknowledgement.acknowledge_case(case, by=worker.user, via="API")
    written = Notification.objects.count()
    assert not Notification.objects.filter(status="queued", kind__in=["reminder", "escalation"]).exists()

    for minute in range(int(taken_at_minute) + 1, 120):
        tick_at(clock, minute)
    assert Notification.objects.count() == written
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED and case.escalation_due_at is None


def test_the_supervisor_on_duty_takes_the_case_when_no_other_worker_can(clock):
    worker = on_duty(phone="+38761200301")
    supervisor = on_duty(role="supervisor", phone="+38761200309")
    case = critical_case()
    tick_at(clock, 2)
    tick_at(clock, 3)
    case.refresh_from_db()
    assert case.assigned_to == supervisor.user and case.assigned_to != worker.user
    assert Notification.objects.filter(kind=NotificationKind.ASSIGNMENT, recipient=supervisor.user).count() == 2


def test_a_case_a_supervisor_reassigns_after_its_ladder_ran_is_chased_again_from_the_first_step(clock):
    # A second run of the ladder has the same step numbers as the first: its reminder and its supervisors' alerts
    # were once taken for copies of the first run's and never sent.
    first = on_duty(phone="+38761200301")
    supervisor = StaffFactory(role="supervisor", phone="+38761200309")  # off duty: told only by the ladder
    case = critical_case()
    for minute in (2, 3):  # a reminder, then nobody else to reassign to: every supervisor is told
        tick_at(clock, minute)
    second = on_duty(phone="+38761200302")
    clock.move_to(START + dt.timedelta(minutes=10))
    actions.do_assign(Case.objects.get(pk=case.pk), by=supervisor.user, staff=second)
    told_supervisor = Notification.objects.filter(recipient=supervisor.user).count()

    tick_at(clock, 12)  # the new worker's deadline: their reminder
    assert Notification.objects.filter(kind=NotificationKind.REMINDER, recipient=second.user).count() == 2
    tick_at(clock, 13)  # the case goes to someone other than the worker who let it wait, or up to the supervisors
    tick_at(clock, 16)
    case.refresh_from_db()
    assert case.escalation_run == 2
    reached = case.timeline.filter(kind=EventKind.ESCALATED, details__step=1).values_list("details__reached", flat=True)
    assert list(reached) == [True, True]
    assert Notification.objects.filter(recipient=supervisor.user).count() > told_supervisor
    assert first.user_id != second.user_id


def test_a_policy_edited_after_the_clock_started_does_not_change_a_running_ladder(clock):
    on_duty(phone="+38761200301")
    StaffFactory(role="supervisor", phone="+38761200309")
    case = critical_case()
    EscalationPolicy.objects.filter(priority="critical").delete()  # a mistake in the admin
    tick_at(clock, 2)
    case.refresh_from_db()
    assert case.escalation_step == 1 and case.escalation_ladder["steps"][0][1] == StepAction.REMIND_ASSIGNEE


def test_a_supervisor_assigning_a_case_that_became_critical_meanwhile_starts_the_critical_clock(clock):
    worker = on_duty(phone="+38761200301")
    supervisor = on_duty(role="supervisor", phone="+38761200309")
    case = CaseFactory(status=CaseStatus.TRIAGED, priority="normal")
    page_open = Case.objects.get(pk=case.pk)  # the supervisor's page, read before the model raised the case
    Case.objects.filter(pk=case.pk).update(priority="critical")
    actions.do_assign(page_open, by=supervisor.user, staff=worker)
    case.refresh_from_db()
    critical = ladder.ladder_for("critical")
    assert case.acknowledge_by == START + dt.timedelta(minutes=critical.acknowledge_within_minutes)
    assert case.escalation_ladder == critical.as_snapshot()
    assert Notification.objects.filter(recipient=worker.user, channel=NotificationChannel.VOICE).exists()


def test_one_failing_case_does_not_hold_back_the_escalation_of_the_others(clock, monkeypatch):
    on_duty(phone="+38761200301")
    broken, healthy = critical_case(), critical_case()
    original = ladder._run_action

    def fail_for_one(case, action, step):
        if case.pk == broken.pk:
            raise RuntimeError("a bad row")
        return original(case, action, step)

    monkeypatch.setattr(ladder, "_run_action", fail_for_one)
    tick_at(clock, 2)
    broken.refresh_from_db()
    healthy.refresh_from_db()
    assert (broken.escalation_step, healthy.escalation_step) == (0, 1)


def test_cases_whose_step_fails_on_every_tick_do_not_starve_the_cases_behind_them(clock, monkeypatch, caplog):
    # 25 broken cases at the front of the queue took every tick's 25 steps, for ever: no healthy case was chased.
    on_duty(phone="+38761200301")
    broken = [critical_case(), critical_case()]
    clock.shift(30)
    healthy = critical_case()  # due half a minute after the broken ones, so behind them in the queue
    original = ladder._run_action

    def fail_for_the_broken(case, action, step):
        if case.pk in {case.pk for case in broken}:
            raise RuntimeError("a bad row")
        return original(case, action, step)

    monkeypatch.setattr(ladder, "_run_action", fail_for_the_broken)
    for second in range(3):  # the tick runs every second, taking as many steps as the broken cases fill
        clock.move_to(START + dt.timedelta(minutes=3, seconds=second))
        ladder.run_due_escalations(limit=len(broken))

    healthy.refresh_from_db()
    assert healthy.escalation_step == 1
    assert all(case.reference in caplog.text for case in broken)
    failures_logged = caplog.text.count("failed")

    # Fixed (or the cause gone), a broken case is tried again a minute later, and its ladder moves on.
    monkeypatch.setattr(ladder, "_run_action", original)
    clock.move_to(START + dt.timedelta(minutes=3, seconds=30))
    ladder.run_due_escalations()
    assert caplog.text.count("failed") == failures_logged  # not retried, nor logged, every second meanwhile
    assert [Case.objects.get(pk=case.pk).escalation_step for case in broken] == [0, 0]
    clock.move_to(START + dt.timedelta(minutes=4, seconds=3))
    ladder.run_due_escalations()
    assert [Case.objects.get(pk=case.pk).escalation_step for case in broken] == [1, 1]


def test_a_case_whose_step_failed_once_is_chased_again_on_the_next_tick(clock, monkeypatch):
    # A one-off error (a lock timeout, a row changed under it) left the case unchased for a whole minute.
    on_duty(phone="+38761200301")
    case = critical_case()
    original, failures = ladder._run_action, []

    def fail_once(case, action, step):
        if not failures:
            failures.append(step)
            raise RuntimeError("a one-off error")
        return original(case, action, step)

    monkeypatch.setattr(ladder, "_run_action", fail_once)
    tick_at(clock, 2)
    assert Case.objects.get(pk=case.pk).escalation_step == 0
    clock.move_to(START + dt.timedelta(minutes=2, seconds=1))  # the next tick, a second later
    ladder.run_due_escalations()
    assert Case.objects.get(pk=case.pk).escalation_step == 1


@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="PostgreSQL's statement_timeout"
)
def test_a_statement_cancelled_on_one_case_holds_back_no_other_case(clock, monkeypatch, caplog):
    # A cancelled statement (a timeout, a lock not had) on the oldest due case ended every tick there: nobody behind
    # it was chased, second after second. Before that, each case such an error hit was left unchased for a minute.
    from django.db import connection

    on_duty(phone="+38761200301")
    cases = [critical_case(), critical_case()]
    original, cancelled = ladder._run_action, []

    def database_cancels_every_statement_of_the_first_case(case, action, step):
        if case.pk == cases[0].pk and len(cancelled) < 2:
            cancelled.append(case.pk)
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = 1")
                cursor.execute("SELECT pg_sleep(1)")
        return original(case, action, step)

    monkeypatch.setattr(ladder, "_run_action", database_cancels_every_statement_of_the_first_case)
    tick_at(clock, 2)
    assert cancelled and "statement timeout" in caplog.text
    assert [Case.objects.get(pk=case.pk).escalation_step for case in cases] == [0, 1]  # the one behind it ran
    clock.move_to(START + dt.timedelta(minutes=2, seconds=1))  # the next tick, a second later: tried again
    ladder.run_due_escalations()
    assert Case.objects.get(pk=cases[0].pk).escalation_step == 0 and len(cancelled) == 2  # failed twice: set aside
    clock.move_to(START + dt.timedelta(minutes=3, seconds=2))  # a minute on
    ladder.run_due_escalations()
    assert Case.objects.get(pk=cases[0].pk).escalation_step == 1


def test_escalated_counts_agree_on_the_api_the_board_and_the_stats(clock):
    worker = on_duty(phone="+38761200301")
    supervisor = on_duty(role="supervisor", phone="+38761200309")
    waiting, inside_deadline = critical_case(), critical_case()
    Case.objects.filter(pk=inside_deadline.pk).update(acknowledge_by=START + dt.timedelta(minutes=30),
                                                      escalation_due_at=START + dt.timedelta(minutes=30))
    tick_at(clock, 2)
    api = APIClient()
    api.force_authenticate(supervisor.user)
    escalated = api.get("/api/v1/cases/?escalated=true").json()
    stats = api.get("/api/v1/stats/").json()
    board = selectors.waiting_for_a_person()
    assert escalated["count"] == stats["escalated"] == selectors.figures_for_day(START).escalated == 1
    # The board shows the critical case still inside its deadline too, each with who was told what.
    assert {case.pk for case in board} == {waiting.pk, inside_deadline.pk}
    told = {n.recipient_id for case in board if case.pk == waiting.pk for n in case.notification_log}
    assert worker.user.pk in told


def test_a_ladder_that_could_end_while_a_case_waits_is_refused():
    assert ladder.ladder_problems([(1, StepAction.REMIND_ASSIGNEE, 5), (2, StepAction.REASSIGN, 5)], None)
    assert ladder.ladder_problems([], None)
    assert ladder.ladder_problems([(1, StepAction.NOTIFY_ALL_SUPERVISORS, 0)], None)  # no wait: a storm
    assert ladder.ladder_problems(
        [(1, StepAction.NOTIFY_ALL_SUPERVISORS, 5), (2, StepAction.REMIND_ASSIGNEE, 5)], 2
    )  # repeats only a reminder
    assert not ladder.ladder_problems(
        [(1, StepAction.REMIND_ASSIGNEE, 2), (2, StepAction.NOTIFY_ALL_SUPERVISORS, 5)], None
    )


def _policy_form(policy, steps, repeat_from=""):
    data = {
        "priority": policy.priority, "acknowledge_within_minutes": "2", "repeat_from_step": str(repeat_from),
        "steps-TOTAL_FORMS": str(len(steps)), "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "1",
        "steps-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for index, (number, action, wait) in enumerate(steps):
        data.update({f"steps-{index}-number": str(number), f"steps-{index}-action": action,
                     f"steps-{index}-wait_minutes": str(wait)})  # fmt: skip
    return data


def test_the_admin_refuses_a_ladder_that_could_end_and_keeps_who_changed_one(client, django_user_model):
    admin = django_user_model.objects.create_superuser("head", "head@example.test", "x")
    client.force_login(admin)
    policy = EscalationPolicy.objects.get(priority="critical")
    url = f"/admin/notifications/escalationpolicy/{policy.pk}/change/"
    assert client.get("/admin/notifications/escalationpolicy/").status_code == 200
    policy.steps.all().delete()  # the form below brings its own steps

    refused = client.post(url, _policy_form(policy, [(1, StepAction.REMIND_ASSIGNEE, 2)]))
    with translation.override(settings.LANGUAGE_CODE):  # the admin page speaks the helpline's language
        step_to_add = str(StepAction.NOTIFY_ALL_SUPERVISORS.label).lower()
    assert refused.status_code == 200 and step_to_add in refused.content.decode()
    assert not policy.steps.exists()

    accepted = client.post(url, _policy_form(
        policy, [(1, StepAction.REMIND_ASSIGNEE, 2), (2, StepAction.NOTIFY_ALL_SUPERVISORS, 5)], repeat_from=2,
    ))  # fmt: skip
    assert accepted.status_code == 302
    assert list(policy.steps.values_list("action", flat=True)) == ["remind_assignee", "notify_all_supervisors"]
    assert policy.history.first().history_user == admin
    assert policy.steps.first().history.first().history_user == admin


def test_a_citizen_writing_again_on_a_critical_case_reaches_its_worker(clock, twilio):
    worker = on_duty(phone="+38761200301")
    twilio.sms("ubit će me, ima nož", sid="SMfirst", from_number="+38761555111")
    case = Case.objects.get()
    actions.do_triage_case(case.pk)
    acknowledgement.acknowledge_case(case, by=worker.user, via="API")
    assert selectors.my_open_cases(worker.user).get().has_unread  # never opened yet

    client_cases = selectors.my_open_cases(worker.user)
    selectors.read_case(worker.user, case.pk, via="console")
    assert not client_cases.get().has_unread  # read: nothing new

    clock.shift(dt.timedelta(minutes=1))
    twilio.sms("on je opet ovdje, adresa je Titova 5", sid="SMsecond", from_number="+38761555111")
    actions.do_triage_case(case.pk)
    assert selectors.my_open_cases(worker.user).get().has_unread
    follow_up = Notification.objects.get(kind=NotificationKind.FOLLOW_UP)
    assert follow_up.recipient == worker.user and case.reference in follow_up.body
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED and case.escalation_due_at is None  # no new ladder


def off_duty_by_now(**profile):
    """On a shift that ended an hour before START."""
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=9), ends_at=START - dt.timedelta(hours=1))
    return staff


def test_an_urgent_follow_up_on_a_case_whose_worker_went_home_goes_to_someone_on_duty(clock, twilio):
    # Before, only the day worker's phone got an SMS: no call, no ladder, nobody on duty told.
    day_worker = off_duty_by_now(phone="+38761200301")
    night_worker = on_duty(phone="+38761200302")
    case = CaseFactory(assigned_to=day_worker.user, status=CaseStatus.IN_PROGRESS, priority="high")
    MessageFactory(case=case, body="trebam savjet oko djece")
    Case.objects.filter(pk=case.pk).update(triaged_at=START - dt.timedelta(hours=3))

    twilio_message = MessageFactory(case=case, body="On je sad ovdje s nožem, ubit će me")
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert twilio_message.case_id == case.pk
    assert (case.priority, case.assigned_to, case.status) == ("critical", night_worker.user, CaseStatus.ASSIGNED)
    assert case.acknowledge_by is not None and case.escalation_due_at is not None  # its ladder runs
    assert Notification.objects.filter(recipient=night_worker.user, channel=NotificationChannel.VOICE).exists()


def test_an_urgent_follow_up_with_nobody_else_on_duty_is_chased_not_left_flagged_on_a_taken_case(clock):
    # Handed to "whoever should have it", nobody, the case was flagged; but a taken case's flag is watched by no
    # ladder: an hour passed with no notification at all.
    day_worker = off_duty_by_now(phone="+38761200301")
    supervisor = StaffFactory(role="supervisor", phone="+38761200309")  # off duty too: a roster gap
    case = CaseFactory(assigned_to=day_worker.user, status=CaseStatus.IN_PROGRESS, priority="high")
    MessageFactory(case=case, body="trebam savjet oko djece")
    Case.objects.filter(pk=case.pk).update(triaged_at=START - dt.timedelta(hours=3))
    MessageFactory(case=case, body="On je sad ovdje s nožem, ubit će me")
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.status, case.assigned_to) == (CaseStatus.ASSIGNED, day_worker.user)  # back to them, on the clock
    assert Notification.objects.filter(recipient=day_worker.user, channel=NotificationChannel.VOICE).exists()
    for minute in range(1, 12):
        tick_at(clock, minute)
    assert Notification.objects.filter(recipient=supervisor.user).exists()  # and up the ladder


def test_a_calm_follow_up_on_a_high_case_stays_with_its_worker_who_is_told(clock):
    # "Thank you, see you on Tuesday" took the case from its worker every evening (the priority never goes down).
    day_worker = off_duty_by_now(phone="+38761200301")
    on_duty(phone="+38761200302")
    case = CaseFactory(assigned_to=day_worker.user, status=CaseStatus.IN_PROGRESS, priority="high")
    MessageFactory(case=case, body="trebam savjet oko djece")
    Case.objects.filter(pk=case.pk).update(triaged_at=START - dt.timedelta(hours=3))
    MessageFactory(case=case, body="Hvala vam, vidimo se u utorak")
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.status, case.assigned_to) == (CaseStatus.IN_PROGRESS, day_worker.user)
    assert Notification.objects.filter(recipient=day_worker.user, kind=NotificationKind.FOLLOW_UP).exists()


def test_a_citizen_writing_on_a_resolved_web_case_is_taken_again_not_left_counted_as_in_hand(clock, client):
    worker = on_duty(phone="+38761200301")
    created = client.post(
        "/api/v1/inquiries/", {"message": "Trebam savjet oko alimentacije"}, content_type="application/json"
    ).json()
    case = Case.objects.get()
    actions.do_triage_case(case.pk)
    acknowledgement.acknowledge_case(case, by=worker.user, via="API")
    actions.do_resolve(Case.objects.get(pk=case.pk), by=worker.user, outcome="savjet dat")

    clock.shift(dt.timedelta(hours=3))  # the same shift
    client.post(
        created["status_url"] + "messages/", {"message": "On je opet tu, ima nož i prijeti da će me ubiti"},
        content_type="application/json", HTTP_X_INQUIRY_TOKEN=created["token"],
    )  # fmt: skip
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.status, case.priority, case.assigned_to) == (CaseStatus.ASSIGNED, "critical", worker.user)
    assert case.acknowledged_at is None and case.escalation_due_at is not None  # chased until someone takes it
    assert Notification.objects.filter(
        recipient=worker.user, kind=NotificationKind.ASSIGNMENT, channel=NotificationChannel.VOICE
    ).exists()  # fmt: skip


def test_a_worker_reopening_their_own_case_has_it_in_hand_and_a_supervisor_reopening_it_starts_their_clock(clock):
    worker = on_duty(phone="+38761200301")
    supervisor = on_duty(role="supervisor", phone="+38761200309")
    case = CaseFactory(assigned_to=worker.user, status=CaseStatus.RESOLVED, priority="normal")

    reopened = actions.do_reopen(case, by=worker.user, reason="javila se opet")
    assert reopened.status == CaseStatus.ACKNOWLEDGED and reopened.acknowledged_at is not None

    actions.do_resolve(reopened, by=worker.user, outcome="riješeno")
    reopened = actions.do_reopen(Case.objects.get(pk=case.pk), by=supervisor.user, reason="nova informacija")
    assert (reopened.status, reopened.assigned_to) == (CaseStatus.ASSIGNED, worker.user)
    assert reopened.acknowledged_at is None and reopened.acknowledge_by is not None
    assert Notification.objects.filter(recipient=worker.user, kind=NotificationKind.ASSIGNMENT).exists()


def test_the_open_cases_of_someone_deactivated_go_to_someone_on_duty(clock, django_capture_on_commit_callbacks):
    # Left with them, a taken case was watched by nothing: no ladder runs once a case is acknowledged.
    leaving = on_duty(phone="+38761200301")
    colleague = on_duty(phone="+38761200302")
    taken = CaseFactory(assigned_to=leaving.user, status=CaseStatus.IN_PROGRESS, priority="high")
    waiting = CaseFactory(assigned_to=leaving.user, status=CaseStatus.ASSIGNED, priority="normal")
    resolved = CaseFactory(assigned_to=leaving.user, status=CaseStatus.RESOLVED, priority="normal")

    with django_capture_on_commit_callbacks(execute=True):
        leaving.is_active = False
        leaving.save()

    for case in (taken, waiting):
        case.refresh_from_db()
        assert (case.assigned_to, case.status) == (colleague.user, CaseStatus.ASSIGNED)
        assert case.acknowledge_by is not None
    resolved.refresh_from_db()
    assert resolved.assigned_to == leaving.user  # history stays as it was


def test_a_citizen_writing_again_on_a_waiting_case_keeps_its_ladder_running(clock, twilio):
    on_duty(phone="+38761200301")
    twilio.sms("ubit će me, ima nož", sid="SMfirst", from_number="+38761555111")
    case = Case.objects.get()
    actions.do_triage_case(case.pk)
    tick_at(clock, 2)
    twilio.sms("molim vas brzo", sid="SMsecond", from_number="+38761555111")
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert case.escalation_step == 1 and case.escalation_due_at == START + dt.timedelta(minutes=3)


# --- A follow-up that raises a case, or that came just before it was resolved ------------------------------------


def voice_alerts_to(staff, case: Case) -> int:
    return Notification.objects.filter(case=case, recipient=staff.user, channel=NotificationChannel.VOICE).count()


def test_a_follow_up_that_makes_a_waiting_case_critical_calls_its_worker_with_the_critical_deadline(clock, twilio):
    # Before, the worker got a follow-up SMS only, and the low case's ladder stayed: the first reminder an hour on.
    worker = on_duty(phone="+38761200301")
    twilio.sms("Trebam savjet oko alimentacije za dijete", sid="SMfirst", from_number="+38761555111")
    case = Case.objects.get()
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.status, case.assigned_to) == (CaseStatus.ASSIGNED, worker.user) and case.priority != "critical"
    calm_deadline = case.acknowledge_by

    clock.shift(dt.timedelta(minutes=1))
    twilio.sms("On je opet tu sa nozem, ubit ce me", sid="SMsecond", from_number="+38761555111")
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.priority, case.status, case.assigned_to) == ("critical", CaseStatus.ASSIGNED, worker.user)
    assert case.acknowledge_by < calm_deadline  # the critical ladder's deadline, from now
    assert case.acknowledge_by <= START + dt.timedelta(minutes=1 + 15)
    assert voice_alerts_to(worker, case) == 1


def test_a_case_a_supervisor_gave_out_before_triage_made_it_critical_calls_its_worker(clock):
    worker = on_duty(phone="+38761200301")
    supervisor = on_duty(role="supervisor", phone="+38761200309")
    case = CaseFactory()
    MessageFactory(case=case, body="On je opet tu sa nozem, ubit ce me")
    actions.do_assign(case, staff=worker, by=supervisor.user)
    calm_deadline = Case.objects.get(pk=case.pk).acknowledge_by
    assert voice_alerts_to(worker, case) == 0

    clock.shift(dt.timedelta(minutes=1))
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.priority, case.status, case.assigned_to) == ("critical", CaseStatus.ASSIGNED, worker.user)
    assert case.acknowledge_by < calm_deadline
    assert voice_alerts_to(worker, case) == 1


def test_a_calm_follow_up_on_a_high_case_a_critical_rule_once_matched_stays_with_its_worker(clock):
    # The first message's critical rule (which the model ruled out) counted again for every later message: "thank
    # you, see you on Tuesday" took the case from its off-duty worker.
    day_worker = off_duty_by_now(phone="+38761200301")
    evening_worker = on_duty(phone="+38761200302")
    case = CaseFactory(assigned_to=day_worker.user, status=CaseStatus.IN_PROGRESS, priority="high")
    MessageFactory(case=case, body="Čitala sam u novinama da je komšija ubio ženu, kako da pomognem djeci?")
    actions.do_triage_case(case.pk)  # the first message read as it was (a critical rule, then the model)
    case.refresh_from_db()
    assert (case.priority, case.assigned_to) == ("high", day_worker.user)

    clock.shift(dt.timedelta(minutes=5))
    MessageFactory(case=case, body="Hvala vam, vidimo se u utorak")
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.status, case.assigned_to) == (CaseStatus.IN_PROGRESS, day_worker.user)
    assert not Notification.objects.filter(recipient=evening_worker.user).exists()
    assert Notification.objects.filter(recipient=day_worker.user, kind=NotificationKind.FOLLOW_UP).exists()


def test_a_follow_up_that_came_just_before_the_case_was_resolved_reopens_it_and_calls_its_worker(clock, twilio):
    # The worker pressed Resolve before the follow-up's triage ran: the case became critical, closed, and nobody
    # was told.
    worker = on_duty(phone="+38761200301")
    twilio.sms("Trebam savjet oko alimentacije za dijete", sid="SMfirst", from_number="+38761555111")
    case = Case.objects.get()
    actions.do_triage_case(case.pk)
    acknowledgement.acknowledge_case(case, by=worker.user, via="API")
    actions.do_start(Case.objects.get(pk=case.pk), by=worker.user)

    clock.shift(dt.timedelta(minutes=20))
    twilio.sms("On je opet tu sa nozem, ubit ce me", sid="SMsecond", from_number="+38761555111")
    assert Case.objects.count() == 1  # joined the open case
    clock.shift(dt.timedelta(seconds=30))
    actions.do_resolve(Case.objects.get(pk=case.pk), by=worker.user, outcome="savjet dat")

    clock.shift(dt.timedelta(minutes=2))  # the triage queue was behind
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert (case.priority, case.status, case.assigned_to) == ("critical", CaseStatus.ASSIGNED, worker.user)
    assert case.acknowledged_at is None and case.escalation_due_at is not None  # chased until someone takes it
    assert voice_alerts_to(worker, case) == 1
    reopened = case.timeline.filter(kind=EventKind.STATUS_CHANGED, details__to_status=CaseStatus.ASSIGNED).last()
    assert reopened.details["reopened"] is True


def test_a_follow_up_stored_after_the_case_was_resolved_does_not_reopen_it_by_triage(clock):
    worker = on_duty(phone="+38761200301")
    case = CaseFactory(assigned_to=worker.user, status=CaseStatus.IN_PROGRESS, priority="normal")
    MessageFactory(case=case, body="Trebam savjet oko alimentacije za dijete")
    actions.do_triage_case(case.pk)
    actions.do_resolve(Case.objects.get(pk=case.pk), by=worker.user, outcome="savjet dat")
    clock.shift(dt.timedelta(minutes=5))
    MessageFactory(case=case, body="Hvala")  # not a path a citizen has: none stores on a resolved case unreopened
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED


def test_the_fallback_numbers_call_gives_the_facts_and_asks_for_no_key(clock, twilio):
    StaffFactory(role="supervisor", phone="+38761200399")
    case = critical_case()
    for minute in range(1, 9):
        tick_at(clock, minute)
    call = Notification.objects.get(to_number=FALLBACK, channel=NotificationChannel.VOICE)
    spoken = twilio.post(f"/webhooks/twilio/voice/staff-call/?notification={call.pk}", {"CallSid": "CAfallback"})
    twiml = spoken.content.decode()
    assert spoken.status_code == 200 and "<Gather" not in twiml and "<Hangup" in twiml
    assert " ".join(case.reference.replace("-", " ")) in twiml


def test_a_high_case_escalation_call_announces_it_as_high_not_critical(clock, twilio):
    on_duty(phone="+38761200300")
    case = CaseFactory(priority="high")
    spoken = texts.staff_call(case)
    assert "visok" in spoken and "kritičn" not in spoken


def test_cases_still_held_by_someone_deactivated_without_a_save_are_handed_on_by_the_tick(clock):
    # The hand-on runs once, after a save commits: deactivated by an UPDATE (or that hand-on lost with its process),
    # a taken case stayed with someone who had left, watched by nothing.
    leaving = on_duty(phone="+38761200301")
    colleague = on_duty(phone="+38761200302")
    taken = CaseFactory(assigned_to=leaving.user, status=CaseStatus.ACKNOWLEDGED, priority="high")
    StaffProfile.objects.filter(pk=leaving.pk).update(is_active=False)

    assert ladder.hand_on_cases_of_the_departed() == 1
    taken.refresh_from_db()
    assert (taken.assigned_to, taken.status) == (colleague.user, CaseStatus.ASSIGNED)
    assert ladder.hand_on_cases_of_the_departed() == 0


def test_a_case_not_yet_taken_when_its_workers_shift_ends_goes_to_someone_on_duty_within_a_minute(clock):
    # Given at 09:00 to a worker whose shift ended at 09:01: the reminder went to their phone at home, and the
    # colleague who came on at 09:01 got the case only at the ladder's reassign step, 25 minutes later.
    leaving = StaffFactory(phone="+38761200301")
    ShiftFactory(staff=leaving, starts_at=START - dt.timedelta(hours=8), ends_at=START + dt.timedelta(minutes=1))
    colleague = StaffFactory(phone="+38761200302")
    ShiftFactory(staff=colleague, starts_at=START + dt.timedelta(minutes=1), ends_at=START + dt.timedelta(hours=8))
    case = CaseFactory()
    MessageFactory(case=case, body="treba nam pomoć oko ogrjeva")
    actions.do_triage_case(case.pk)
    taken = CaseFactory(assigned_to=leaving.user, status=CaseStatus.ACKNOWLEDGED, priority="high")
    case.refresh_from_db()
    assert case.assigned_to == leaving.user

    clock.move_to(START + dt.timedelta(minutes=2))
    assert ladder.hand_on_cases_left_at_shift_end() == 1
    case.refresh_from_db()
    assert (case.assigned_to, case.status) == (colleague.user, CaseStatus.ASSIGNED)
    assert Notification.objects.filter(kind=NotificationKind.ASSIGNMENT, recipient=colleague.user, case=case).exists()
    taken.refresh_from_db()
    assert taken.assigned_to == leaving.user  # one they took stays theirs
    assert ladder.hand_on_cases_left_at_shift_end() == 0

    supervisor = StaffFactory(role="supervisor")
    on_call = StaffFactory(phone="+38761200303")  # off duty: on call tonight, by the supervisor's choice
    actions.do_assign(case, staff=on_call, by=supervisor.user)
    assert ladder.hand_on_cases_left_at_shift_end() == 0
    case.refresh_from_db()
    assert case.assigned_to == on_call.user

    # Given by hand to someone on duty whose shift then ends: handed on like any other.
    clock.move_to(START + dt.timedelta(hours=7, minutes=55))
    ending = StaffFactory(phone="+38761200304")
    ShiftFactory(staff=ending, starts_at=START, ends_at=START + dt.timedelta(hours=8))
    night = StaffFactory(phone="+38761200305")
    ShiftFactory(staff=night, starts_at=START + dt.timedelta(hours=8), ends_at=START + dt.timedelta(hours=16))
    actions.do_assign(case, staff=ending, by=supervisor.user)
    clock.move_to(START + dt.timedelta(hours=8, minutes=1))
    assert ladder.hand_on_cases_left_at_shift_end() == 1
    case.refresh_from_db()
    assert case.assigned_to == night.user


def test_a_case_never_goes_to_a_supervisor_whose_login_was_deactivated(clock):
    leaving = StaffFactory(phone="+38761200301")  # off duty, as is everyone at night
    gone = StaffFactory(role="supervisor", phone="+38761200398")
    gone.user.is_active = False
    gone.user.save()
    supervisor = StaffFactory(role="supervisor", phone="+38761200399")
    taken = CaseFactory(assigned_to=leaving.user, status=CaseStatus.ACKNOWLEDGED, priority="high")
    StaffProfile.objects.filter(pk=leaving.pk).update(is_active=False)

    ladder.hand_on_cases_of_the_departed()
    taken.refresh_from_db()
    assert taken.assigned_to == supervisor.user


# --- A person raising a case's priority by hand starts the new priority's clock ---------------------------------


def calm_case() -> Case:
    case = CaseFactory()
    MessageFactory(case=case, body="treba nam pomoć oko ogrjeva")
    return actions.do_triage_case(case.pk)


def assignment_alerts(staff, case: Case) -> list[str]:
    rows = Notification.objects.filter(case=case, recipient=staff.user, kind=NotificationKind.ASSIGNMENT)
    return list(rows.order_by("id").values_list("channel", flat=True))


def test_a_case_raised_to_critical_by_hand_calls_its_worker_with_the_critical_deadline(clock):
    worker = on_duty()
    supervisor = on_duty(role="supervisor")
    case = calm_case()
    assert (case.priority, case.assigned_to) == ("normal", worker.user)
    normal_deadline = case.acknowledge_by

    clock.shift(dt.timedelta(minutes=1))
    raised = actions.do_reclassify(case, by=supervisor.user, priority="critical", category="domestic_violence",
                                   reason="pozvala je, muž joj prijeti")  # fmt: skip

    assert raised.assigned_to == worker.user and raised.status == CaseStatus.ASSIGNED
    assert raised.acknowledge_by < normal_deadline  # the critical ladder's deadline, from now
    sms, voice = NotificationChannel.SMS, NotificationChannel.VOICE
    assert assignment_alerts(worker, case) == [sms, sms, voice]


def test_a_raised_case_whose_worker_went_off_duty_goes_to_someone_on_duty(clock):
    leaving = StaffFactory()
    ShiftFactory(staff=leaving, starts_at=START - dt.timedelta(hours=8), ends_at=START + dt.timedelta(minutes=5))
    case = calm_case()
    assert case.assigned_to == leaving.user
    clock.shift(dt.timedelta(minutes=10))
    colleague = on_duty()
    supervisor = on_duty(role="supervisor")

    raised = actions.do_reclassify(case, by=supervisor.user, priority="critical", category="suicide_self_harm",
                                   reason="rekla je da ima tablete")  # fmt: skip

    assert raised.assigned_to in (colleague.user, supervisor.user)
    now_with = StaffProfile.objects.get(user=raised.assigned_to)
    assert NotificationChannel.VOICE in assignment_alerts(now_with, case)


def test_lowering_or_recategorising_by_hand_leaves_the_clock_alone(clock):
    worker = on_duty()
    supervisor = on_duty(role="supervisor")
    case = calm_case()
    deadline = case.acknowledge_by
    clock.shift(dt.timedelta(minutes=1))

    changed = actions.do_reclassify(case, by=supervisor.user, priority="low", category="information",
                                    reason="samo pitanje")  # fmt: skip

    assert changed.acknowledge_by == deadline
    assert assignment_alerts(worker, case) == [NotificationChannel.SMS]
