"""Waiting cases are given out in batches under one short assignment turn, most urgent first, with each person's
open-case counter kept in the turn's transaction: concurrent triage never pushes anyone over their maximum (the
critical rule apart), and nobody waits on the on-duty staff rows."""

import datetime as dt

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from helpline.cases.models import Case, CaseStatus, Priority
from helpline.casework import actions, selectors
from notifications import ladder
from notifications.models import Notification, NotificationKind
from tests.concurrency import run_at_once
from tests.factories import CaseFactory, ShiftFactory, StaffFactory, case_saying

# The priorities below are the rules' (HIGH reads as high to them, the model may judge it critical): these tests
# are about giving cases out, not about reading them.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_only_triage")]
requires_postgres = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"], reason="needs concurrent transactions"
)
NORMAL = "treba nam pomoć oko ogrjeva"
HIGH = "sve je hitno, molim vas nazovite"
CRITICAL = "ubit će me, ima nož"


def on_duty(**profile):
    return ShiftFactory(staff=StaffFactory(**profile)).staff


def open_cases_of(staff) -> int:
    return Case.objects.filter(assigned_to=staff.user, status__in=[CaseStatus.ASSIGNED]).count()


def triage_all_at_once(cases: list[Case], threads: int = 6) -> None:
    """Several workers triaging at once, each taking its share of the cases, as Celery's pool does."""
    shares = [[case.pk for case in cases[n::threads]] for n in range(threads)]

    def triage_share(case_ids: list[int]) -> None:
        for case_id in case_ids:
            actions.do_triage_case(case_id)

    _, errors = run_at_once(triage_share, [(share,) for share in shares])
    assert errors == []


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_triage_fills_everyone_to_their_maximum_and_no_further():
    workers = [on_duty(max_open_cases=3) for _ in range(3)]
    supervisor = on_duty(role="supervisor", max_open_cases=2)
    triage_all_at_once([case_saying(NORMAL) for _ in range(30)])

    for person in [*workers, supervisor]:
        assert open_cases_of(person) == person.max_open_cases  # full, never over
    waiting = Case.objects.filter(assigned_to__isnull=True)
    assert waiting.count() == 30 - 11
    assert set(waiting.values_list("status", flat=True)) == {CaseStatus.TRIAGED}


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_backlog_given_out_by_racing_batches_goes_most_urgent_first_within_maxima():
    normal = [case_saying(NORMAL) for _ in range(20)]
    high = [case_saying(HIGH) for _ in range(5)]
    for case in normal + high:
        actions.do_triage_case(case.pk)  # nobody on duty yet: all wait
    workers = [on_duty(max_open_cases=2) for _ in range(3)]
    supervisor = on_duty(role="supervisor", max_open_cases=1)

    given, errors = run_at_once(actions.do_assign_waiting, [()] * 5)  # five ticks and triages at once
    assert errors == [] and sum(given) == 7
    for person in [*workers, supervisor]:
        assert open_cases_of(person) == person.max_open_cases
    assigned = Case.objects.filter(assigned_to__isnull=False)
    assert set(assigned.values_list("priority", flat=True)) == {Priority.HIGH, Priority.NORMAL}
    assert assigned.filter(priority=Priority.HIGH).count() == 5  # every high case before any normal one


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_with_everyone_full_critical_cases_still_go_out_at_once_and_the_rest_wait():
    workers = [on_duty(max_open_cases=1) for _ in range(2)]
    on_duty(role="supervisor", max_open_cases=0)
    for worker in workers:
        CaseFactory(assigned_to=worker.user, status=CaseStatus.ASSIGNED)
    critical = [case_saying(CRITICAL) for _ in range(4)]
    normal = [case_saying(NORMAL) for _ in range(8)]
    triage_all_at_once(critical + normal, threads=4)

    assert set(Case.objects.filter(pk__in=[c.pk for c in critical]).values_list("status", flat=True)) == {
        CaseStatus.ASSIGNED
    }
    assert not Case.objects.filter(pk__in=[c.pk for c in normal], assigned_to__isnull=False).exists()
    loads = sorted(open_cases_of(worker) for worker in workers)
    assert loads == [3, 3]  # the critical rule spreads them: fewest open cases first


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_room_that_frees_up_goes_to_the_most_urgent_waiting_case():
    worker = on_duty(max_open_cases=1)
    first = case_saying(NORMAL)
    actions.do_triage_case(first.pk)
    later_normal, later_high = case_saying(NORMAL), case_saying(HIGH)
    run_at_once(actions.do_triage_case, [(later_normal.pk,), (later_high.pk,)])
    assert Case.objects.filter(assigned_to__isnull=True).count() == 2

    actions.do_resolve(Case.objects.get(pk=first.pk), by=worker.user, outcome="helped")
    assert actions.do_assign_waiting() == 1  # the tick
    assert Case.objects.get(pk=later_high.pk).assigned_to == worker.user
    assert Case.objects.get(pk=later_normal.pk).priority == Priority.NORMAL
    assert Case.objects.get(pk=later_normal.pk).assigned_to is None


def test_in_a_surge_a_case_that_is_not_critical_leaves_giving_out_to_the_tick(monkeypatch):
    """Everyone at their maximum: the next calm case's triage does not read the staff pool again (in a surge that
    turn cost a third of every triage and gave nothing out); the tick gives it out once someone has room, and a
    critical case still goes out at once, over the maximum."""
    worker = on_duty(max_open_cases=1)
    first = case_saying(NORMAL)
    actions.do_triage_case(first.pk)  # the worker is now full, and this process saw it
    calm = case_saying(NORMAL)
    with CaptureQueriesContext(connection) as queries:
        actions.do_triage_case(calm.pk)
    assert not any("triage_staffprofile" in query["sql"] for query in queries.captured_queries)
    assert Case.objects.get(pk=calm.pk).status == CaseStatus.TRIAGED

    critical = case_saying(CRITICAL)
    actions.do_triage_case(critical.pk)
    assert Case.objects.get(pk=critical.pk).assigned_to == worker.user

    actions.do_resolve(Case.objects.get(pk=first.pk), by=worker.user, outcome="helped")
    actions.do_resolve(Case.objects.get(pk=critical.pk), by=worker.user, outcome="helped")
    assert actions.do_assign_waiting() == 1  # the tick, two seconds at most later
    assert Case.objects.get(pk=calm.pk).assigned_to == worker.user

    monkeypatch.setattr(ladder, "NO_ROOM_TRUSTED_SECONDS", 0.0)  # what was seen is no longer trusted
    later = case_saying(NORMAL)
    with CaptureQueriesContext(connection) as queries:
        actions.do_triage_case(later.pk)
    assert any("triage_staffprofile" in query["sql"] for query in queries.captured_queries)


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_supervisors_giving_cases_to_whoever_should_have_them_at_once_never_overfill_a_worker():
    worker = on_duty(max_open_cases=1)
    supervisor = on_duty(role="supervisor", max_open_cases=50)
    cases = [CaseFactory(status=CaseStatus.TRIAGED, priority=Priority.NORMAL) for _ in range(6)]

    _, errors = run_at_once(
        lambda case: actions.do_assign(case, by=supervisor.user), [(case,) for case in cases]
    )  # fmt: skip
    assert errors == []
    assert open_cases_of(worker) == 1  # each choice was made and kept under the assignment turn
    assert open_cases_of(supervisor) == 5


def test_supervisors_hear_of_cases_left_waiting_for_room_in_one_message_every_quarter_hour():
    # One worker and one supervisor on duty at night, both full: a normal case waited with no clock, off the
    # board's list of cases waiting for a person, and nobody was ever told. (Then, told by a ladder per case,
    # forty cases left by a surge paged three supervisors 240 times: now one message says how many.)
    start = dt.datetime(2026, 12, 6, 23, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        worker = ShiftFactory(staff=StaffFactory(max_open_cases=1), starts_at=start - dt.timedelta(hours=1),
                              ends_at=start + dt.timedelta(hours=9)).staff  # fmt: skip
        supervisor = ShiftFactory(staff=StaffFactory(role="supervisor", max_open_cases=0, phone="+38761700900"),
                                  starts_at=start - dt.timedelta(hours=1), ends_at=start + dt.timedelta(hours=9)).staff
        CaseFactory(assigned_to=worker.user, status=CaseStatus.ASSIGNED)
        waiting = [case_saying(NORMAL) for _ in range(3)]
        for case in waiting:
            actions.do_triage_case(case.pk)
        actions.do_assign_waiting()
        told = Notification.objects.filter(kind=NotificationKind.ESCALATION, recipient=supervisor.user)
        assert not told.exists()  # within its 15 minutes a case just waits

        clock.shift(dt.timedelta(minutes=16))
        actions.do_assign_waiting()
        clock.shift(dt.timedelta(seconds=30))
        actions.do_assign_waiting()  # the next tick: nothing more
        (message,) = told
        assert message.case is None and "3" in message.body
        assert {case.pk for case in selectors.waiting_for_a_person()} >= {case.pk for case in waiting}  # the board
        assert not Case.objects.filter(pk__in=[c.pk for c in waiting], escalation_due_at__isnull=False).exists()

        clock.shift(dt.timedelta(minutes=15))
        actions.do_assign_waiting()
        assert told.all().count() == 2  # still waiting a quarter of an hour on: told again

        actions.do_resolve(Case.objects.get(assigned_to=worker.user), by=worker.user, outcome="helped")
        actions.do_assign_waiting()
        assert Case.objects.filter(pk__in=[c.pk for c in waiting], assigned_to=worker.user).count() == 1


def test_the_oldest_high_case_left_waiting_twice_its_time_rings_every_supervisor_one_case_at_a_time():
    # An SMS a quarter hour did not wake the supervisor on duty: a high case waited for hours.
    start = dt.datetime(2026, 12, 6, 23, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        worker = ShiftFactory(staff=StaffFactory(max_open_cases=1), starts_at=start - dt.timedelta(hours=1),
                              ends_at=start + dt.timedelta(hours=9)).staff  # fmt: skip
        ShiftFactory(staff=StaffFactory(role="supervisor", max_open_cases=0, phone="+38761700900"),
                     starts_at=start - dt.timedelta(hours=1), ends_at=start + dt.timedelta(hours=9))  # fmt: skip
        CaseFactory(assigned_to=worker.user, status=CaseStatus.ASSIGNED)
        high = [case_saying(HIGH) for _ in range(3)]
        for case in high:
            actions.do_triage_case(case.pk)
            clock.shift(dt.timedelta(seconds=1))
        clock.shift(dt.timedelta(minutes=11))
        actions.do_assign_waiting()
        ladder.run_due_escalations()
        on_the_ladder = Case.objects.filter(pk__in=[c.pk for c in high], escalation_due_at__isnull=False)
        assert list(on_the_ladder.values_list("pk", flat=True)) == [high[0].pk]  # the oldest, alone
        assert Notification.objects.filter(case=high[0], kind=NotificationKind.ESCALATION, channel="voice").exists()
