"""A night when forty vulnerable people stay silent: every one of them gets a visit that escalates until someone
takes it, yet the people the ladder wakes get at most one SMS a minute about them (besides the one notice per visit
that gives it to someone and names the address), with the most urgent person named first."""
from __future__ import annotations

import datetime as dt
from itertools import pairwise

import pytest
import time_machine

from helpline.welfare import services, visits
from helpline.welfare.models import Need, VisitStatus, VisitTask, VulnerablePerson
from notifications.models import Notification, NotificationChannel
from tests.factories import ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
NIGHT = dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.UTC)
SILENT = 40


@pytest.fixture
def provider(settings):
    from tests.test_welfare_campaign import ProviderStub

    settings.SMS_BACKEND = "tests.test_welfare_campaign.ProviderStub"
    settings.SMS_PER_SECOND = 1
    settings.WELFARE_MESSAGING_SERVICE_SID = "MG" + "0" * 32
    settings.WELFARE_SENDING_NUMBERS = 50
    settings.CALLS_PER_SECOND = 1000
    settings.ESCALATION_FALLBACK_NUMBERS = ["+38761999000"]
    ProviderStub.sent, ProviderStub.wrong_numbers, ProviderStub.refusing = [], set(), set()
    return ProviderStub


@pytest.fixture
def clock():
    with time_machine.travel(NIGHT, tick=False) as traveller:
        yield traveller


def on_duty_tonight(**profile):
    staff = StaffFactory(**profile)
    ShiftFactory(staff=staff, starts_at=NIGHT - dt.timedelta(hours=1), ends_at=NIGHT + dt.timedelta(hours=9))
    return staff


def silent_people(count: int) -> list[VulnerablePerson]:
    """The register of a flooded valley; person 17 (not the first asked by number) lives on an oxygen machine."""
    needs_cycle = [[Need.LIVES_ALONE], [Need.MOBILITY], []]
    return VulnerablePerson.objects.bulk_create([
        VulnerablePerson(
            full_name=f"Osoba {n}", phone=f"+38761{n:06d}", municipality="Maglaj" if n % 4 else "Doboj",
            address=f"Ulica {n}", birth_year=1940, legal_basis="public_task",
            needs=[Need.POWER_DEVICE, Need.LIVES_ALONE] if n == 17 else needs_cycle[n % 3],
        )
        for n in range(count)
    ])  # fmt: skip


def tick_until(clock, start: dt.datetime, until: dt.datetime, every: dt.timedelta) -> None:
    now = start
    while now < until:
        now += every
        clock.move_to(now)
        services.advance_campaigns(limit=5000)


def sms_to(staff) -> list[Notification]:
    return list(Notification.objects.filter(to_number=str(staff.phone), channel=NotificationChannel.SMS)
                .order_by("created_at", "pk"))  # fmt: skip


def is_first_notice(notification: Notification) -> bool:
    """The per-visit message that gives a visit to someone, with its address."""
    return ":assigned:" in notification.idempotency_key


def test_forty_silent_people_at_night_escalate_every_visit_with_at_most_one_sms_a_minute_to_each_person(
    provider, clock
):
    people = silent_people(SILENT)
    worker = on_duty_tonight(phone="+38762000001")
    supervisor = on_duty_tonight(role="supervisor", phone="+38762000009")
    services.start_campaign(title="Poplava", question="Jeste li sigurni?", areas=[], needs=[], by=None,
                            call_after_minutes=10, visit_after_minutes=10)  # fmt: skip
    tick_until(clock, NIGHT, NIGHT + dt.timedelta(minutes=21), dt.timedelta(minutes=1))
    assert VisitTask.objects.count() == SILENT  # nobody answered the SMS or the call: a visit each
    opened = NIGHT + dt.timedelta(minutes=21)

    night_ends = opened + dt.timedelta(minutes=40)  # nobody takes any visit for forty minutes
    tick_until(clock, opened, night_ends, dt.timedelta(seconds=20))

    minutes = (night_ends - opened).total_seconds() / 60
    told = {staff.role: len(sms_to(staff)) for staff in (worker, supervisor)}  # before the digests: 80 and 160
    for staff in (worker, supervisor):
        escalations = [sms for sms in sms_to(staff) if not is_first_notice(sms)]
        assert escalations, "the ladder reached them"
        gaps = [later.created_at - earlier.created_at for earlier, later in pairwise(escalations)]
        assert all(gap >= dt.timedelta(seconds=60) for gap in gaps), f"SMS in {minutes:.0f} min: {told}"
        assert len(escalations) <= minutes + 1
    first_notices = [sms for sms in sms_to(worker) + sms_to(supervisor) if is_first_notice(sms)]
    assert len(first_notices) == SILENT  # each visit given once, by name and address

    tasks = list(VisitTask.objects.all())
    for task in tasks:  # every visit went up its ladder, and its timeline holds each step, each told in an SMS
        assert task.escalation_step >= 4
        steps = task.escalations.all()
        assert sorted({step.step for step in steps}) == list(range(1, task.escalation_step + 1))
        assert all(step.notification_id for step in steps if step.reached)

    for task in tasks:  # the supervisor sends people out at last
        visits.take_visit(task, by=supervisor.user)
    written = Notification.objects.count()
    tick_until(clock, night_ends, night_ends + dt.timedelta(minutes=30), dt.timedelta(minutes=1))
    assert set(VisitTask.objects.values_list("status", flat=True)) == {VisitStatus.TAKEN}
    assert Notification.objects.count() == written  # taken: nobody is told of them any more
    assert len(people) == SILENT


def test_the_visit_of_someone_on_an_oxygen_machine_is_named_first_though_it_was_opened_last(provider, clock):
    people = silent_people(3)  # person 0 lives alone, 1 moves with difficulty, 2 has no listed need
    people[2].needs = [Need.POWER_DEVICE]
    people[2].save()
    supervisor = on_duty_tonight(role="supervisor", phone="+38762000009")
    campaign = services.start_campaign(title="Poplava", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    for seconds, check in enumerate(campaign.checks.order_by("-urgency")):  # the oxygen machine's call ended last
        clock.move_to(NIGHT + dt.timedelta(seconds=seconds))
        visits.open_visit(check, NIGHT + dt.timedelta(seconds=seconds), reason="no answer")
    oxygen = VisitTask.objects.get(welfare_check__person=people[2])

    tick_until(clock, NIGHT + dt.timedelta(seconds=2), NIGHT + dt.timedelta(minutes=20), dt.timedelta(seconds=20))
    digests = [sms.body for sms in sms_to(supervisor) if sms.body.startswith("Obilasci: 3 ")]
    assert digests
    assert all(body.count("#") == 1 and f"#{oxygen.pk} (Maglaj: aparat na struju)" in body for body in digests)
