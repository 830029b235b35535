"""A welfare campaign reaches every person on the register: asked once by SMS at the account's rate, most
vulnerable first; each "2" or written answer becomes one triaged case; the silent get one call, then one visit;
wrong numbers are marked for correction; a person in two campaigns is asked again only after the first is settled."""
from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
import time_machine
from django.db import connection

from helpline.cases.models import Case, Priority
from helpline.casework import actions
from helpline.welfare import selectors, services, visits
from helpline.welfare import tasks as welfare_tasks
from helpline.welfare.models import (
    AreaWorker,
    Campaign,
    CheckState,
    Need,
    VisitStatus,
    VisitTask,
    VulnerablePerson,
    WelfareCheck,
)
from notifications import outbox
from notifications.backends import OutgoingMessage, SendResult
from notifications.models import Notification, NotificationKind
from tests.concurrency import run_at_once
from tests.factories import CaseFactory, ShiftFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
AREAS = ["Maglaj", "Doboj", "Šamac"]


class ProviderStub:
    """Twilio as the campaign sees it: keeps what was sent, and answers 21211 (invalid number) for the numbers a
    test says are wrong."""

    sent: list[OutgoingMessage] = []
    wrong_numbers: set[str] = set()
    refusing: set[str] = set()  # numbers whose SMS the provider refuses for now (429)
    _lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.to in self.wrong_numbers:
            return SendResult(ok=False, transient=False, error_code="21211", detail="invalid number")
        if message.to in self.refusing and message.channel == "sms":
            return SendResult(ok=False, transient=True, error_code="20429", detail="too many requests")
        with self._lock:
            self.sent.append(message)
            return SendResult(ok=True, provider_sid=f"SM{len(self.sent):030d}")


@pytest.fixture
def provider(settings):
    settings.SMS_BACKEND = "tests.test_welfare_campaign.ProviderStub"
    settings.SMS_PER_SECOND = 1
    settings.WELFARE_MESSAGING_SERVICE_SID = "MG" + "0" * 32
    settings.WELFARE_SENDING_NUMBERS = 5  # five numbers in the pool: five questions a second
    settings.CALLS_PER_SECOND = 1000  # calls are placed at the account's rate; these tests are about what follows
    ProviderStub.sent, ProviderStub.wrong_numbers, ProviderStub.refusing = [], set(), set()
    return ProviderStub


@pytest.fixture
def from_the_helplines_number(provider, settings):
    """No Messaging Service: questions go from the SOS number, one a second, which the outbox's SMS share."""
    settings.WELFARE_MESSAGING_SERVICE_SID = ""
    settings.SMS_PER_SECOND = settings.CALLS_PER_SECOND = 1
    return provider


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def on_duty(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=24))
    return staff


def phone(n: int) -> str:
    return f"+38761{n:06d}"


def register(count: int) -> list[VulnerablePerson]:
    needs_cycle = [[Need.LIVES_ALONE], [Need.POWER_DEVICE], [Need.MOBILITY, Need.LIVES_ALONE], [Need.DEMENTIA], []]
    return VulnerablePerson.objects.bulk_create([
        VulnerablePerson(
            full_name=f"Osoba {n}", phone=phone(n), municipality=AREAS[n % 3], address=f"Ulica {n}",
            birth_year=1930 + n % 60, needs=needs_cycle[n % 5], legal_basis="public_task",
            script="cyrillic" if n % 7 == 0 else "latin",
        )
        for n in range(count)
    ])  # fmt: skip


def sms_to(number: str) -> list[OutgoingMessage]:
    return [m for m in ProviderStub.sent if m.to == number and m.channel == "sms"]


def run_ticks(clock, until: dt.datetime, step: dt.timedelta) -> None:
    now = START
    while now < until:
        now += step
        clock.move_to(now)
        services.advance_campaigns(limit=5000)


def campaign_until_a_visit_is_sent(clock) -> Campaign:
    """A campaign that calls after 10 minutes and sends a visit 10 minutes later, run until it has (21 minutes)."""
    campaign = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                                       call_after_minutes=10, visit_after_minutes=10)  # fmt: skip
    run_ticks(clock, START + dt.timedelta(minutes=21), dt.timedelta(minutes=1))
    return campaign


# What each person in the 1,000 does, by n % 20.
SAFE_REPLIES = {0: "1", 1: "1", 2: "da, dobro", 3: "OK", 4: "dobro sam", 5: "сигуран сам", 6: "Да, добро", 7: "1."}
HELP_REPLIES = {8: "2", 9: "2", 10: "треба помоћ", 11: "pomoć", 12: "voda ulazi u kuću, ne mogu izaći"}
WRONG_NUMBER = 13  # 21211 from the provider
# 14..19: never answer


def test_a_campaign_over_a_thousand_people_ends_with_each_in_exactly_one_state(provider, clock):
    people = register(1000)
    # Room for all 250 who ask for help: since issue 18 nobody is given a case that is not critical over their
    # maximum (the supervisor used to take the overflow without limit); cases beyond everyone's room wait.
    worker = on_duty(phone="+38762000001", max_open_cases=300)
    on_duty(role="supervisor", phone="+38762000009")
    AreaWorker.objects.create(municipality="Maglaj", staff=worker)
    provider.wrong_numbers = {phone(n) for n in range(1000) if n % 20 == WRONG_NUMBER}
    supervisor = UserFactory()

    campaign = services.start_campaign(
        title="Poplave", question="Jeste li sigurni?", areas=AREAS, needs=[], by=supervisor,
        call_after_minutes=60, visit_after_minutes=30,
    )  # fmt: skip

    # The estimate: 1,000 questions at five a second, the last one about 200 s after the start.
    estimate = selectors.tally(campaign).everyone_asked_by
    assert dt.timedelta(seconds=195) <= estimate - START <= dt.timedelta(seconds=201)
    # Most vulnerable first: every power-dependent person is asked before anyone without such a need.
    checks = WelfareCheck.objects.filter(campaign=campaign).order_by("send_at")
    order = list(checks.values_list("person__needs", flat=True))
    last_power = max(i for i, needs in enumerate(order) if Need.POWER_DEVICE in needs)
    first_other = min(i for i, needs in enumerate(order) if Need.POWER_DEVICE not in needs)
    assert last_power < first_other

    # Ten seconds in, no more than the account's rate has gone out.
    run_ticks(clock, START + dt.timedelta(seconds=10), dt.timedelta(seconds=10))
    assert len(ProviderStub.sent) <= 5 * 10 + 1
    run_ticks(clock, START + dt.timedelta(seconds=210), dt.timedelta(seconds=10))
    assert WelfareCheck.objects.filter(campaign=campaign, state=CheckState.QUEUED).count() == 0

    # The answers come in, through the same function the SMS webhook calls.
    replies_sent = {}
    for n in range(1000):
        body = SAFE_REPLIES.get(n % 20) or HELP_REPLIES.get(n % 20)
        if body and n % 20 != WRONG_NUMBER:
            replies_sent[n] = services.answer_welfare_reply(phone(n), body, message_sid=f"SMreply{n:06d}")
    assert all(replies_sent.values())
    # Twilio retries one webhook: the same answer, nothing stored twice.
    assert services.answer_welfare_reply(phone(8), "2", message_sid="SMreply000008") == replies_sent[8]
    # STOP is an opt-out for normal intake, not an answer.
    assert services.answer_welfare_reply(phone(15), "STOP", message_sid="SMstop15") is None
    # A second message after the answer is not a welfare answer: normal intake takes it.
    assert services.answer_welfare_reply(phone(0), "1", message_sid="SMlate0") is None

    # Triage runs for every case the answers opened (the worker's doorbell).
    help_checks = WelfareCheck.objects.filter(campaign=campaign, state=CheckState.NEEDS_HELP)
    for case_id in set(help_checks.values_list("case_id", flat=True)):
        actions.do_triage_case(case_id)

    run_ticks(clock, START + dt.timedelta(minutes=61), dt.timedelta(minutes=5))  # the silent are called
    run_ticks(clock, START + dt.timedelta(minutes=95), dt.timedelta(minutes=5))  # then visited

    checks = {c.person_id: c for c in WelfareCheck.objects.filter(campaign=campaign).select_related("case", "visit")}
    assert len(checks) == 1000  # exactly one check, so exactly one state, per person
    expected = Counter()
    for person in people:
        n, check = int(person.full_name.split()[1]), checks[person.pk]
        kind = n % 20
        if kind in SAFE_REPLIES:
            assert check.state == CheckState.SAFE, (n, check.state)
            expected["safe"] += 1
        elif kind in HELP_REPLIES:
            assert check.state == CheckState.NEEDS_HELP, (n, check.state)
            assert check.case.priority in (Priority.HIGH, Priority.CRITICAL)
            assert check.case.assigned_to_id is not None
            expected["needs_help"] += 1
        elif kind == WRONG_NUMBER:
            assert check.state == CheckState.UNREACHABLE
            person.refresh_from_db()
            assert person.number_needs_checking
            expected["unreachable"] += 1
        else:
            assert check.state == CheckState.VISIT_PENDING, (n, check.state)
            assert check.visit.status == VisitStatus.WAITING
            expected["visit_pending"] += 1
        # Nobody was asked twice, and the silent were called once.
        assert len(sms_to(phone(n))) == (0 if kind == WRONG_NUMBER else 1)
        calls = [m for m in ProviderStub.sent if m.to == phone(n) and m.channel == "voice"]
        assert len(calls) == (1 if kind >= 14 else 0)

    # Each "2" or written answer is one triaged case of its own.
    help_cases = list(help_checks.values_list("case_id", flat=True))
    assert len(help_cases) == len(set(help_cases)) == expected["needs_help"] == 250
    assert Case.objects.filter(pk__in=help_cases, triaged_at__isnull=False).count() == 250
    # The silent and the unreachable each have one visit; the Maglaj ones went first to the Maglaj worker (the
    # ladder has since handed the oldest, untaken, to the supervisor on duty).
    assert VisitTask.objects.filter(welfare_check__campaign=campaign).count() == 300 + 50
    maglaj = VisitTask.objects.filter(welfare_check__person__municipality="Maglaj").values_list("pk", flat=True)
    keys = [f"welfare-visit:{pk}:assigned:{worker.pk}" for pk in maglaj]
    first_told = Notification.objects.filter(idempotency_key__in=keys)
    assert first_told.count() == len(maglaj) > 0

    tally = selectors.tally(campaign)
    assert tally.columns == {
        "safe": 400, "needs_help": 250, "no_answer": 0, "unreachable": 50, "visit_pending": 300, "not_yet_asked": 0,
    }  # fmt: skip
    assert sum(tally.columns.values()) == tally.total == 1000
    # Cyrillic readers were asked in Cyrillic.
    assert "Одговорите 1" in sms_to(phone(0))[0].body
    assert "Odgovorite 1" in sms_to(phone(1))[0].body


def test_a_bare_yes_to_a_question_about_help_is_asked_again_shown_on_the_tally_and_called_soon(provider, clock):
    # "Trebate li pomoć?" answered "Da" was read as safe: the person who asked for help was thanked and left.
    # Then the "Da" was asked again but left no trace: the tally said "no answer", and the call waited the hour.
    (person,) = register(1)
    on_duty(phone="+38762000001")
    campaign = services.start_campaign(
        title="Poplave", question="Trebate li pomoć?", areas=[], needs=[], by=None, call_after_minutes=60
    )  # fmt: skip
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))

    said = services.answer_welfare_reply(str(person.phone), "Da", message_sid="SMyes")
    assert "Одговорите 1" in said  # the register says Cyrillic: 1 or 2, in the person's script
    check = WelfareCheck.objects.get()
    assert check.state == CheckState.ASKED and check.case is None and not Case.objects.exists()
    assert check.unclear_answer_at is not None
    assert selectors.tally(campaign).answered_unclearly == 1
    assert list(selectors.checks_in(campaign, column="answered_unclearly")) == [check]
    assert services.answer_welfare_reply(str(person.phone), "Da", message_sid="SMyes") == said  # Twilio's retry

    # The person has the phone in hand but has not managed a digit: the call, where a key press answers, comes
    # within minutes instead of at the end of the hour.
    run_ticks(clock, START + dt.timedelta(minutes=12), dt.timedelta(minutes=1))
    assert WelfareCheck.objects.get().state == CheckState.CALLED
    services.answer_welfare_reply(str(person.phone), "2", message_sid="SMtwo")
    assert WelfareCheck.objects.get().state == CheckState.NEEDS_HELP


def test_a_person_in_two_campaigns_is_asked_again_only_after_the_first_is_settled(provider, clock):
    (person,) = register(1)
    on_duty(phone="+38762000001")
    first = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    second = services.start_campaign(title="Nestanak struje", question="Imate li struje?", areas=[], needs=[], by=None)
    assert WelfareCheck.objects.get(campaign=second).state == CheckState.HELD

    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    assert len(sms_to(person.phone)) == 1  # only the first campaign asked
    # The answer belongs to the campaign that asked.
    services.answer_welfare_reply(str(person.phone), "1", message_sid="SMa")
    assert WelfareCheck.objects.get(campaign=first).state == CheckState.SAFE
    assert WelfareCheck.objects.get(campaign=second).state != CheckState.SAFE

    run_ticks(clock, START + dt.timedelta(seconds=60), dt.timedelta(seconds=5))
    texts = sms_to(str(person.phone))
    assert len(texts) == 2 and "Имате ли струје?" in texts[1].body  # the register says Cyrillic
    services.answer_welfare_reply(str(person.phone), "2", message_sid="SMb")
    assert WelfareCheck.objects.get(campaign=second).state == CheckState.NEEDS_HELP
    assert Campaign.objects.get(pk=first.pk).status == "finished"


def test_a_visit_nobody_takes_escalates_like_a_case(provider, clock, settings):
    settings.ESCALATION_FALLBACK_NUMBERS = []
    (person,) = register(1)
    worker = on_duty(phone="+38762000001")
    supervisor = on_duty(role="supervisor", phone="+38762000009")
    campaign_until_a_visit_is_sent(clock)
    task = VisitTask.objects.get()
    assert task.assigned_to == worker.user
    assert Notification.objects.filter(recipient=worker.user, kind=visits.VISIT_NOTICE).count() == 1

    run_ticks(clock, START + dt.timedelta(minutes=60), dt.timedelta(minutes=1))  # nobody took it
    task.refresh_from_db()
    assert task.escalation_step >= 3
    assert Notification.objects.filter(recipient=supervisor.user, kind=visits.VISIT_NOTICE).exists()

    visits.take_visit(task, by=worker.user)
    steps = VisitTask.objects.get().escalation_step
    run_ticks(clock, START + dt.timedelta(minutes=120), dt.timedelta(minutes=1))
    assert VisitTask.objects.get().escalation_step == steps  # taken: the ladder stopped

    services.record_visit_outcome(task.welfare_check, is_safe=True, note="Dobro je, kod kćerke.", by=worker.user)
    person.refresh_from_db()
    assert WelfareCheck.objects.get().state == CheckState.SAFE
    assert person.last_checked_by == worker.user

    # The messages that sent people there carry the person's name and address in clear: they go after the
    # retention period, as a home visit's address does.
    notices = Notification.objects.filter(kind=visits.VISIT_NOTICE)
    assert notices.exclude(body="").exists()
    clock.move_to(START + dt.timedelta(days=settings.VISIT_ADDRESS_RETENTION_DAYS + 1))
    assert visits.purge_visit_notices() == notices.count()
    assert not notices.exclude(body="").exists()


def test_a_visit_nobody_takes_reaches_a_supervisor_from_the_tick_queue_while_the_campaign_tick_is_stuck(
    provider, clock, settings
):
    # The only tick that escalated visits ran on the notifications queue with a 5 s expiry: behind a surge's
    # backlog every one expired unrun, and no supervisor heard of the visit nobody took.
    settings.ESCALATION_FALLBACK_NUMBERS = []
    register(1)
    on_duty(phone="+38762000001")
    supervisor = on_duty(role="supervisor", phone="+38762000009")
    campaign_until_a_visit_is_sent(clock)
    assert VisitTask.objects.get().status == VisitStatus.WAITING

    for minute in range(22, 60):  # the campaign tick is stuck in a backlog; only the escalation queue's runs
        clock.move_to(START + dt.timedelta(minutes=minute))
        welfare_tasks.escalate_welfare_visits()
    assert Notification.objects.filter(recipient=supervisor.user, kind=visits.VISIT_NOTICE).exists()


def test_a_visit_opened_while_nobody_was_on_duty_goes_to_the_first_worker_who_comes_on(provider, clock, settings):
    # Its ladder only texted supervisors: when the morning shift came, no worker was ever sent.
    settings.ESCALATION_FALLBACK_NUMBERS = []
    register(1)
    StaffFactory(role="supervisor", phone="+38762000009")  # at home, texted through the night
    campaign_until_a_visit_is_sent(clock)
    assert VisitTask.objects.get().assigned_to is None
    morning = StaffFactory(phone="+38762000001")
    ShiftFactory(staff=morning, starts_at=START + dt.timedelta(minutes=30), ends_at=START + dt.timedelta(hours=9))

    run_ticks(clock, START + dt.timedelta(minutes=45), dt.timedelta(minutes=1))
    task = VisitTask.objects.get()
    assert task.assigned_to == morning.user
    assert Notification.objects.filter(recipient=morning.user, kind=visits.VISIT_NOTICE).exists()


def test_a_visit_taken_and_never_reported_stops_holding_the_persons_number_after_twelve_hours(provider, clock):
    # Its question stayed open for good: the number was held back from every later campaign.
    register(1)
    worker = on_duty(phone="+38762000001")
    first = campaign_until_a_visit_is_sent(clock)
    visits.take_visit(VisitTask.objects.get(), by=worker.user)
    run_ticks(clock, START + dt.timedelta(hours=11), dt.timedelta(minutes=30))
    assert WelfareCheck.objects.get(campaign=first).state == CheckState.VISIT_PENDING  # still on their way

    run_ticks(clock, START + dt.timedelta(hours=13), dt.timedelta(minutes=30))
    check = WelfareCheck.objects.get(campaign=first)
    assert check.state == CheckState.UNREACHABLE and "no outcome" in check.failure
    second = services.start_campaign(title="Klizišta", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    for seconds in (10, 20, 30):
        clock.move_to(START + dt.timedelta(hours=13, seconds=seconds))
        services.advance_campaigns()
    assert WelfareCheck.objects.get(campaign=second).state == CheckState.ASKED
    services.record_visit_outcome(check, is_safe=True, note="Bila je kod kćerke.", by=worker.user)
    assert WelfareCheck.objects.get(campaign=first).state == CheckState.SAFE  # the late report still counts


def test_a_late_safe_answer_calls_off_the_visit(provider, clock):
    (person,) = register(1)
    on_duty(phone="+38762000001")
    campaign_until_a_visit_is_sent(clock)
    assert services.answer_welfare_reply(str(person.phone), "ок", message_sid="SMlate")
    assert WelfareCheck.objects.get().state == CheckState.SAFE
    assert VisitTask.objects.get().status == VisitStatus.DONE


def test_a_late_call_for_help_keeps_the_visit_on_its_way_and_opens_a_case(provider, clock):
    # The "2" closed the visit already sent ("the person answered"): the one who had not answered the phone was
    # left to a phone call from a case worker.
    (person,) = register(1)
    on_duty(phone="+38762000001")
    campaign_until_a_visit_is_sent(clock)
    assert VisitTask.objects.get().status != VisitStatus.DONE
    assert services.answer_welfare_reply(str(person.phone), "2", message_sid="SMlate")
    check = WelfareCheck.objects.get()
    assert check.state == CheckState.NEEDS_HELP and check.case is not None
    assert VisitTask.objects.get().status != VisitStatus.DONE


def test_finishing_a_campaign_stops_asking_and_frees_its_numbers(provider, clock):
    people = register(3)
    campaign = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    services.finish_campaign(campaign)
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    assert ProviderStub.sent == []
    assert set(WelfareCheck.objects.values_list("state", flat=True)) == {CheckState.NOT_ASKED}
    assert selectors.tally(campaign).columns["not_yet_asked"] == 3

    services.start_campaign(title="Nestanak struje", question="Imate li struje?", areas=[], needs=[], by=None)
    run_ticks(clock, START + dt.timedelta(seconds=60), dt.timedelta(seconds=5))
    assert {m.to for m in ProviderStub.sent} == {str(p.phone) for p in people}


@pytest.mark.parametrize("second_starts", ["after the finish", "before the finish"])
def test_someone_who_never_answered_a_finished_campaign_is_asked_by_the_next_one(provider, clock, second_starts):
    # Their open question once held them back from every later campaign, for good: nobody asked, called or visited.
    (person,) = register(1)
    on_duty(phone="+38762000001")
    first = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    assert len(sms_to(str(person.phone))) == 1  # asked; never answers
    if second_starts == "before the finish":
        services.start_campaign(title="Nestanak struje", question="Imate li struje?", areas=[], needs=[], by=None)
        services.finish_campaign(first)
    else:
        services.finish_campaign(first)
        services.start_campaign(title="Nestanak struje", question="Imate li struje?", areas=[], needs=[], by=None)

    run_ticks(clock, START + dt.timedelta(seconds=90), dt.timedelta(seconds=5))
    assert len(sms_to(str(person.phone))) == 2
    assert WelfareCheck.objects.get(campaign=first).state == CheckState.UNREACHABLE


@pytest.mark.parametrize("next_campaign", ["a drill asking them", "a campaign in another town"])
def test_a_late_2_to_a_finished_campaign_still_asks_for_help_after_a_campaign_that_does_not_ask_them_starts(
    provider, clock, next_campaign
):
    # Settling their question as unreachable made their late "2" an ordinary SMS: a case triaged from the text "2",
    # not the campaign's case of at least high priority.
    maglaj, _in_doboj = register(2)
    first = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=["Maglaj"], needs=[], by=None)
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    assert len(sms_to(str(maglaj.phone))) == 1  # asked; no answer yet
    services.finish_campaign(first)
    if next_campaign == "a drill asking them":
        services.start_campaign(title="Vježba", question="Vježba: jeste li dobro?", areas=["Maglaj"], needs=[],
                                by=None, is_drill=True)  # fmt: skip
    else:
        services.start_campaign(title="Klizište", question="Jeste li sigurni?", areas=["Doboj"], needs=[], by=None)
    assert WelfareCheck.objects.get(campaign=first).state == CheckState.ASKED  # still the first campaign's question

    services.answer_welfare_reply(str(maglaj.phone), "2", message_sid="SMlate2")

    check = WelfareCheck.objects.get(campaign=first)
    assert check.state == CheckState.NEEDS_HELP
    assert check.case.priority in (Priority.HIGH, Priority.CRITICAL)


@pytest.mark.parametrize(("late_by", "still_an_answer"), [(dt.timedelta(hours=3), True), (dt.timedelta(days=2), False)])
def test_a_late_2_to_a_question_settled_for_the_next_campaign_still_asks_for_help_for_a_day(
    provider, clock, late_by, still_an_answer
):
    # The next campaign settles the old question when it starts, but asks them only when their turn comes.
    (person,) = register(1)
    first = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    services.finish_campaign(first)
    services.start_campaign(title="Nestanak struje", question="Imate li struje?", areas=[], needs=[], by=None)
    assert WelfareCheck.objects.get(campaign=first).state == CheckState.UNREACHABLE

    clock.move_to(START + late_by)
    said = services.answer_welfare_reply(str(person.phone), "2", message_sid="SMlate")

    check = WelfareCheck.objects.get(campaign=first)
    if still_an_answer:
        assert check.state == CheckState.NEEDS_HELP and check.case.reference in said
        assert check.case.priority in (Priority.HIGH, Priority.CRITICAL)
    else:  # long after: an ordinary SMS to the helpline, which normal intake takes
        assert said is None and check.state == CheckState.UNREACHABLE


def test_a_2_pressed_on_the_welfare_call_reaches_someone_though_the_question_was_settled_as_it_rang(
    provider, clock
):
    # It was thanked for ("a social worker will contact you"), and nobody was told.
    register(1)
    first = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                                    call_after_minutes=1)  # fmt: skip
    run_ticks(clock, START + dt.timedelta(minutes=2), dt.timedelta(seconds=5))
    check = WelfareCheck.objects.get(campaign=first)
    assert check.state == CheckState.CALLED
    services.finish_campaign(first)  # the supervisor starts it again with better wording, as the phone rings
    services.start_campaign(title="Poplave, ponovo", question="Jeste li na sigurnom?", areas=[], needs=[], by=None)

    said = services.record_key_press(check.pk, "2", call_sid="CAringing")

    check.refresh_from_db()
    assert check.state == CheckState.NEEDS_HELP and check.case.reference in said
    assert check.case.priority in (Priority.HIGH, Priority.CRITICAL)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent transactions")
def test_two_supervisors_starting_campaigns_at_once_both_start_and_each_person_is_asked_one_at_a_time(provider):
    # Both read "no open question" and opened one for every number: the unique index refused the second start.
    people = register(6)
    started, errors = run_at_once(
        lambda title: services.start_campaign(title=title, question="Jeste li sigurni?", areas=[], needs=[], by=None),
        [("Poplave",), ("Nestanak struje",)],
    )
    assert errors == [] and len(started) == 2
    for person in people:
        assert sorted(WelfareCheck.objects.filter(person=person).values_list("state", flat=True)) == [
            CheckState.HELD, CheckState.QUEUED
        ]


def test_someone_who_answered_safe_and_then_sends_2_gets_the_campaigns_case(provider, clock):
    # Things change: an hour after "1" the water is in the house. Their "2" was an ordinary SMS read from "2".
    (person,) = register(1)
    campaign = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    services.answer_welfare_reply(str(person.phone), "1", message_sid="SMsafe")
    clock.move_to(START + dt.timedelta(minutes=10))
    # Words after "safe" are an ordinary message for normal intake, "no" and "need" among them.
    assert services.answer_welfare_reply(str(person.phone), "Hvala, ne treba ništa", message_sid="SMthanks") is None
    clock.move_to(START + dt.timedelta(hours=1))

    said = services.answer_welfare_reply(str(person.phone), "2 voda ulazi u kuću", message_sid="SMnow")

    check = WelfareCheck.objects.get(campaign=campaign)
    assert check.state == CheckState.NEEDS_HELP and check.case.reference in said
    assert check.case.priority in (Priority.HIGH, Priority.CRITICAL)
    # Twilio retries the webhook of the "1": still the campaign's, no case of its own.
    assert check.case.reference in services.answer_welfare_reply(str(person.phone), "1", message_sid="SMsafe")
    assert Case.objects.count() == 1


def test_a_2_pressed_on_the_welfare_call_after_a_1_by_sms_opens_the_case(provider, clock):
    (person,) = register(1)
    campaign = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                                       call_after_minutes=1)  # fmt: skip
    run_ticks(clock, START + dt.timedelta(minutes=2), dt.timedelta(seconds=5))
    check = WelfareCheck.objects.get(campaign=campaign)
    assert check.state == CheckState.CALLED
    services.answer_welfare_reply(str(person.phone), "1", message_sid="SMsafe")  # as the phone rang

    said = services.record_key_press(check.pk, "2", call_sid="CAringing")

    check.refresh_from_db()
    assert check.state == CheckState.NEEDS_HELP and check.case.reference in said


def test_a_2_from_someone_the_register_says_reads_english_in_cyrillic_opens_a_case_in_their_language(provider, clock):
    # The case was made from the text "2": Bosnian and Latin for everyone, whatever the register said.
    (person,) = register(1)
    VulnerablePerson.objects.filter(pk=person.pk).update(language="en", script="latin")
    on_duty(phone="+38762000001")
    services.start_campaign(title="Floods", question="Are you safe?", areas=[], needs=[], by=None)
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    services.answer_welfare_reply(str(person.phone), "2", message_sid="SMhelp1")
    case = WelfareCheck.objects.get().case
    assert (case.language, case.script) == ("en", "latin")


def test_someone_the_register_says_reads_english_is_asked_the_english_question_when_there_is_one(provider, clock):
    english, bosnian = register(2)
    VulnerablePerson.objects.filter(pk=english.pk).update(language="en")
    services.start_campaign(
        title="Poplave", question="Jeste li sigurni?", question_english="Are you safe?", areas=[], needs=[], by=None
    )
    run_ticks(clock, START + dt.timedelta(seconds=30), dt.timedelta(seconds=5))
    [to_english] = sms_to(str(english.phone))
    assert "Are you safe?" in to_english.body and "Reply 1 if you are safe" in to_english.body
    [to_bosnian] = sms_to(str(bosnian.phone))
    assert "Jeste li sigurni?" in to_bosnian.body and "Are you" not in to_bosnian.body


def test_the_tally_promises_no_time_while_people_wait_behind_another_campaign(provider, clock):
    # It said "everyone will have been asked by 09:00:59" at 09:02 with a hundred still not asked: those held
    # behind another campaign have no sending time, and a time already past promises nothing.
    register(3)
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    second = services.start_campaign(title="Struja", question="Imate li struje?", areas=[], needs=[], by=None)
    figures = selectors.tally(second)
    assert (figures.held, figures.everyone_asked_by) == (3, None)


def test_a_drill_never_holds_up_a_real_campaign(provider, clock):
    register(50)
    services.start_campaign(title="Vježba", question="Jeste li sigurni?", areas=[], needs=[], by=None, is_drill=True)
    VulnerablePerson.objects.create(full_name="Prava osoba", phone="+38762999999", municipality="Maglaj",
                                    legal_basis="consent")  # fmt: skip
    real = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=["Maglaj"], needs=[], by=None)
    # The drill's 50 questions take ten seconds of sending; the real campaign starts now, not after them.
    first = WelfareCheck.objects.filter(campaign=real).order_by("send_at").first()
    assert first.send_at == START


def test_a_question_twilio_could_not_deliver_sends_a_worker_at_once(twilio_api, twilio, clock):
    """Twilio accepts an SMS to a number that cannot take it, and says so only in the status callback."""
    (person,) = register(1)
    on_duty(phone="+38762000001")
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                            call_after_minutes=60, visit_after_minutes=60)  # fmt: skip
    services.advance_campaigns(limit=10)
    (question,) = twilio_api.messages
    callback = question.form["StatusCallback"].removeprefix("https://sos.example.test")
    sid = twilio_api.accepted_messages()[0]["sid"]

    for status in ("sent", "undelivered"):
        answer = twilio.post(callback, {"MessageSid": sid, "MessageStatus": status, "ErrorCode": "30005"})
        assert answer.status_code == 204

    person.refresh_from_db()
    assert WelfareCheck.objects.get().state == CheckState.UNREACHABLE
    assert person.number_needs_checking and "30005" in person.number_problem
    assert VisitTask.objects.filter(welfare_check__person=person).count() == 1  # now, not in an hour


def test_a_question_refused_for_ten_minutes_while_others_get_out_becomes_a_call(provider, clock):
    # Refused for this one number (a rate limit on it, a provider's quirk): it was retried every 30 s for good, in
    # silence, and the person, never asked, was never called or visited.
    refused, _gets_through = register(2)
    provider.refusing = {str(refused.phone)}
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                            call_after_minutes=60, visit_after_minutes=60)  # fmt: skip
    run_ticks(clock, START + dt.timedelta(minutes=11), dt.timedelta(seconds=30))
    assert [m.to for m in provider.sent if m.channel == "voice"] == [str(refused.phone)]
    check = WelfareCheck.objects.get(person=refused)
    assert check.state == CheckState.CALLED and "called instead" in check.failure


def test_while_the_provider_takes_nothing_at_all_the_questions_wait_for_it(provider, clock):
    # Given up after ten minutes of an outage, every question became a call into the same outage, then a visit.
    people = register(2)
    provider.refusing = {str(person.phone) for person in people}
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                            call_after_minutes=60, visit_after_minutes=60)  # fmt: skip
    run_ticks(clock, START + dt.timedelta(minutes=15), dt.timedelta(seconds=30))
    assert not [m for m in provider.sent if m.channel == "voice"]
    assert set(WelfareCheck.objects.values_list("state", flat=True)) == {CheckState.QUEUED}
    provider.refusing = set()
    run_ticks(clock, START + dt.timedelta(minutes=16), dt.timedelta(seconds=30))
    assert {m.to for m in provider.sent if m.channel == "sms"} == {str(person.phone) for person in people}


def test_a_status_callback_for_another_checks_message_changes_nothing(twilio_api, twilio, clock):
    register(1)
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                            call_after_minutes=60, visit_after_minutes=60)  # fmt: skip
    services.advance_campaigns(limit=10)
    callback = twilio_api.messages[0].form["StatusCallback"].removeprefix("https://sos.example.test")
    twilio.post(callback, {"MessageSid": "SMnotthisone", "MessageStatus": "undelivered", "ErrorCode": "30005"})
    assert WelfareCheck.objects.get().state == CheckState.ASKED


def test_a_person_who_texted_stop_is_not_asked_by_sms_but_called_at_once(provider, clock):
    from helpline.cases.models import Caller

    stopped, asked = register(2)
    Caller.objects.create(phone=str(stopped.phone), has_opted_out=True)
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                            call_after_minutes=60, visit_after_minutes=60)  # fmt: skip
    services.advance_campaigns(limit=10)
    assert sms_to(str(stopped.phone)) == [] and len(sms_to(str(asked.phone))) == 1
    clock.shift(dt.timedelta(seconds=1))
    services.advance_campaigns(limit=10)
    calls = [m for m in ProviderStub.sent if m.channel == "voice"]
    assert [m.to for m in calls] == [str(stopped.phone)]  # the other still has an hour to answer the SMS


def start_a_campaign_for(count: int) -> list[VulnerablePerson]:
    people = register(count)
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                            call_after_minutes=60, visit_after_minutes=60)  # fmt: skip
    return people


def test_questions_from_the_helplines_number_share_its_second_with_the_outbox(from_the_helplines_number, clock):
    # Sent beside the outbox at the number's whole rate, the questions doubled what the number was asked to send:
    # Twilio queued the excess, and an SMS to staff about a critical case waited in that queue behind them.
    people = start_a_campaign_for(3)
    clock.shift(dt.timedelta(seconds=10))  # all three due
    order = [str(check.person.phone) for check in WelfareCheck.objects.order_by("send_at", "pk")]
    outbox.deliver(outbox.queue_notification(key="b", to_number="+38761300000", body="Poplava: ...",
                                             kind=NotificationKind.CRISIS_BROADCAST).pk)  # fmt: skip

    services.advance_campaigns(limit=10)  # the outbox took this second
    assert not [m for m in ProviderStub.sent if m.to in order]
    assert WelfareCheck.objects.filter(state=CheckState.QUEUED).count() == 3
    for _ in range(3):
        clock.shift(dt.timedelta(seconds=1))
        services.advance_campaigns(limit=10)
        services.advance_campaigns(limit=10)  # a second tick in the same second sends nothing more
    assert [m.to for m in ProviderStub.sent if m.to in order] == order  # one a second, in the campaign's order
    assert len(people) == WelfareCheck.objects.filter(state=CheckState.ASKED).count()


def test_a_question_from_the_helplines_number_leaves_the_next_second_to_an_alert_holding_the_line(
    from_the_helplines_number, clock
):
    (person,) = start_a_campaign_for(1)
    outbox.deliver(outbox.queue_notification(key="b", to_number="+38761300000", body="Poplava: ...",
                                             kind=NotificationKind.CRISIS_BROADCAST).pk)  # fmt: skip
    alert = outbox.queue_notification(
        key="alert",
        to_number="+38761999000",
        body="Kritičan slučaj",
        kind=NotificationKind.ASSIGNMENT,
        case=CaseFactory(priority="critical"),
    )
    waiting = outbox.deliver(alert.pk)  # the second is taken: the alert holds the line
    assert waiting.status == "queued"

    clock.shift(dt.timedelta(seconds=waiting.retry_in))
    services.advance_campaigns(limit=10)  # the tick comes first in the new second, and leaves it to the alert
    assert outbox.deliver(alert.pk).status == "sent"
    assert sms_to(str(person.phone)) == []
    assert WelfareCheck.objects.get().state == CheckState.QUEUED

    clock.shift(dt.timedelta(seconds=outbox.ALERT_HOLDS_THE_LINE_FOR + 1))  # nobody holds the line any more
    services.advance_campaigns(limit=10)
    assert len(sms_to(str(person.phone))) == 1


def test_a_welfare_call_leaves_the_accounts_second_to_a_call_about_a_critical_case(from_the_helplines_number, clock):
    (person,) = start_a_campaign_for(1)
    services.advance_campaigns(limit=10)
    call_due = START + dt.timedelta(minutes=60)
    clock.move_to(call_due)
    staff_call = outbox.queue_notification(key="call", to_number="+38761999000", body="Kritičan slučaj",
                                           kind=NotificationKind.ASSIGNMENT, channel="voice",
                                           case=CaseFactory(priority="critical"))  # fmt: skip
    assert outbox.deliver(staff_call.pk).status == "sent"

    services.advance_campaigns(limit=10)  # the account's one call this second is taken
    check = WelfareCheck.objects.get()
    assert (check.state, check.call_due_at, check.called_at) == (CheckState.ASKED, call_due, None)
    clock.shift(dt.timedelta(seconds=1))
    services.advance_campaigns(limit=10)
    assert [m.to for m in ProviderStub.sent if m.channel == "voice"] == ["+38761999000", str(person.phone)]


def test_a_tick_with_no_campaign_running_only_reads(provider, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        services.advance_campaigns()


def test_a_question_put_back_as_its_campaign_was_finished_does_not_hold_the_person_back(
    from_the_helplines_number, clock
):
    # The tick puts a question whose second was taken back in the queue; a supervisor who finished the campaign
    # in between left it queued in a finished campaign, an open question nothing would ever settle.
    (person,) = start_a_campaign_for(1)
    first = Campaign.objects.get()
    services.finish_campaign(first)
    WelfareCheck.objects.filter(campaign=first).update(state=CheckState.QUEUED)  # what the race leaves

    second = services.start_campaign(title="Poplave 2", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    assert WelfareCheck.objects.get(campaign=first).state == CheckState.NOT_ASKED
    assert WelfareCheck.objects.get(campaign=second).state == CheckState.QUEUED  # asked, not held behind it
    clock.shift(dt.timedelta(seconds=1))
    services.advance_campaigns(limit=10)
    assert len(sms_to(str(person.phone))) == 1


def test_a_campaign_from_the_helplines_number_takes_turns_with_a_broadcast_waiting_to_go(
    from_the_helplines_number, clock
):
    # A broadcast's hundreds each ask again a second after they were refused, at their own moments of the second;
    # the tick asks once a second. Without turns the campaign's questions waited for the whole broadcast.
    start_a_campaign_for(2)
    first, second = (str(check.person.phone) for check in WelfareCheck.objects.order_by("send_at"))
    clock.shift(dt.timedelta(seconds=10))  # both due, in an even second
    broadcast = [
        outbox.queue_notification(
            key=f"b{n}", to_number=f"+3876130000{n}", body="Poplava: ...", kind=NotificationKind.CRISIS_BROADCAST
        )
        for n in range(3)
    ]
    assert outbox.deliver(broadcast[0].pk).status == "sent"
    services.advance_campaigns(limit=10)  # refused: the campaign waits for its turn
    clock.shift(dt.timedelta(seconds=1))
    assert outbox.deliver(broadcast[1].pk).status == "queued"  # an odd second: the campaign's
    services.advance_campaigns(limit=10)
    assert len(sms_to(first)) == 1
    clock.shift(dt.timedelta(seconds=1))
    services.advance_campaigns(limit=10)  # an even second, the broadcast's: the tick asking first leaves it
    assert len(sms_to(second)) == 0
    assert outbox.deliver(broadcast[1].pk).status == "sent"
    clock.shift(dt.timedelta(seconds=1))
    assert outbox.deliver(broadcast[2].pk).status == "queued"
    services.advance_campaigns(limit=10)
    assert len(sms_to(second)) == 1
