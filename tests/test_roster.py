"""Who is on duty at a moment: rotations over midnight and clock changes, absences, and gaps found in advance."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import translation

from helpline.console.services import move_shift, remove_shift
from helpline.roster.models import Absence, RotationPattern, RotationSlot, Shift
from helpline.roster.selectors import on_duty
from helpline.roster.services import generate_shifts, generate_upcoming_shifts, roster_gaps, shift_window
from tests.factories import ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
SARAJEVO = ZoneInfo("Europe/Sarajevo")


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SARAJEVO)


def test_a_night_shift_ends_the_next_morning():
    starts, ends = shift_window(dt.date(2026, 11, 20), dt.time(22), dt.time(6))
    assert (starts, ends) == (local(2026, 11, 20, 22), local(2026, 11, 21, 6))


def test_the_night_the_clocks_go_back_the_night_shift_is_nine_hours():
    starts, ends = shift_window(dt.date(2026, 10, 24), dt.time(22), dt.time(6))
    assert ends - starts == dt.timedelta(hours=9)


def test_the_night_the_clocks_go_forward_the_night_shift_is_seven_hours():
    starts, ends = shift_window(dt.date(2026, 3, 28), dt.time(22), dt.time(6))
    assert ends - starts == dt.timedelta(hours=7)


def test_a_shift_starting_in_the_skipped_hour_starts_when_the_clock_resumes():
    starts, _ = shift_window(dt.date(2026, 3, 29), dt.time(2, 30), dt.time(10))
    assert starts == local(2026, 3, 29, 3, 30)


def rotation(*slots, cycle_days=2, starts_on=dt.date(2026, 3, 27), name="Test"):
    pattern = RotationPattern.objects.create(name=name, starts_on=starts_on, cycle_days=cycle_days)
    for staff, day, start, end in slots:
        RotationSlot.objects.create(pattern=pattern, staff=staff, day_in_cycle=day, start_time=start, end_time=end)
    return pattern


def test_a_rotation_generates_each_shift_once_and_covers_the_dst_night():
    ana, bob = StaffFactory(), StaffFactory()
    pattern = rotation((ana, 0, dt.time(22), dt.time(6)), (bob, 1, dt.time(22), dt.time(6)))
    created = generate_shifts(pattern, dt.date(2026, 3, 27), dt.date(2026, 3, 30))
    again = generate_shifts(pattern, dt.date(2026, 3, 27), dt.date(2026, 3, 30))

    assert (created, again) == (4, 0)
    # 28 March is day 1 (bob): on 29 March at 05:30 local (after the clock jumped) bob is still on duty.
    assert list(on_duty(local(2026, 3, 29, 5, 30))) == [bob]
    assert list(on_duty(local(2026, 3, 29, 6, 30))) == []
    assert list(on_duty(local(2026, 3, 29, 23))) == [ana]


def test_a_slot_inside_the_skipped_spring_hour_does_not_stop_the_other_rotations_being_generated():
    # 02:00-03:00 on 29 March has no time: its shift broke the database's check, and the hourly generation of
    # every rotation after it stopped, leaving the change-over day with nobody on the roster.
    ana, bob = StaffFactory(), StaffFactory()
    odd = rotation((ana, 0, dt.time(2), dt.time(3)), cycle_days=1, starts_on=dt.date(2026, 3, 28), name="A")
    nights = rotation((bob, 0, dt.time(22), dt.time(6)), cycle_days=1, starts_on=dt.date(2026, 3, 28), name="B")
    with time_machine.travel(local(2026, 3, 28, 12), tick=False):
        generate_upcoming_shifts(days=3)
    assert Shift.objects.filter(pattern=odd).count() == 3  # 28, 30 and 31 March; not the 29th
    assert list(on_duty(local(2026, 3, 29, 23))) == [bob] and Shift.objects.filter(pattern=nights).count() == 4


def test_the_roster_follows_a_rotation_edited_and_keeps_what_a_supervisor_changed_by_hand():
    # Ana replaced by Bob in the night slot stayed on the roster for three weeks, and was given cases; a swap or a
    # shift removed by hand came back within the hour.
    ana, bob, cem, dina = StaffFactory(), StaffFactory(), StaffFactory(), StaffFactory()
    supervisor = StaffFactory(role="supervisor").user
    pattern = rotation((ana, 0, dt.time(22), dt.time(6)), cycle_days=1, starts_on=dt.date(2026, 12, 1))
    with time_machine.travel(local(2026, 12, 1, 12), tick=False):
        generate_upcoming_shifts(days=6)  # 1 to 7 December
        swapped = Shift.objects.get(staff=ana, starts_at=local(2026, 12, 3, 22))
        move_shift(swapped, by=supervisor, staff=cem, starts_at=swapped.starts_at, ends_at=swapped.ends_at)
        remove_shift(Shift.objects.get(staff=ana, starts_at=local(2026, 12, 4, 22)), by=supervisor)

    RotationSlot.objects.filter(pattern=pattern).update(staff=bob, end_time=dt.time(7))
    with time_machine.travel(local(2026, 12, 1, 23), tick=False):  # tonight's shift has begun
        generate_upcoming_shifts(days=6)
    assert list(on_duty(local(2026, 12, 1, 23, 30))) == [ana]  # a shift under way is left as it is
    assert list(on_duty(local(2026, 12, 2, 23))) == [bob] and list(on_duty(local(2026, 12, 3, 6, 30))) == [bob]
    assert list(on_duty(local(2026, 12, 3, 23))) == [cem]  # the swap stays
    assert list(on_duty(local(2026, 12, 4, 23))) == []  # the removed shift stays removed
    assert not Shift.objects.filter(staff=ana, starts_at__gt=local(2026, 12, 2, 0)).exists()

    dina_slot = RotationSlot.objects.create(pattern=pattern, staff=dina, day_in_cycle=0, start_time=dt.time(8),
                                            end_time=dt.time(16))  # fmt: skip
    RotationSlot.objects.filter(staff=bob).delete()
    with time_machine.travel(local(2026, 12, 2, 12), tick=False):
        generate_upcoming_shifts(days=5)
    assert list(on_duty(local(2026, 12, 5, 23))) == []  # the slot removed: its future shifts went
    assert list(on_duty(local(2026, 12, 5, 9))) == [dina] and dina_slot.shifts.count() == 6


def test_two_people_swapped_between_slots_starting_together_take_each_others_shifts_and_days_keep_coming():
    # Ana's and Bob's night slots swapped: the generator moved Ana's shift to Bob while Bob still held his, the
    # database refused a second shift of Bob's at that hour, and the rotation stopped being generated every hour.
    ana, bob = StaffFactory(), StaffFactory(role="supervisor")
    pattern = rotation((ana, 0, dt.time(22), dt.time(6)), (bob, 0, dt.time(22), dt.time(6)), cycle_days=1,
                       starts_on=dt.date(2026, 12, 1))  # fmt: skip
    with time_machine.travel(local(2026, 12, 1, 12), tick=False):
        generate_upcoming_shifts(days=3)  # 1 to 4 December
    ana_slot, bob_slot = pattern.slots.get(staff=ana), pattern.slots.get(staff=bob)
    ana_slot.staff, bob_slot.staff = bob, ana
    ana_slot.save()
    bob_slot.save()

    with time_machine.travel(local(2026, 12, 2, 12), tick=False):
        generate_upcoming_shifts(days=3)  # 2 to 5 December: the 5th is new
    assert Shift.objects.get(slot=ana_slot, slot_day=dt.date(2026, 12, 3)).staff == bob
    assert Shift.objects.get(slot=bob_slot, slot_day=dt.date(2026, 12, 3)).staff == ana
    assert set(on_duty(local(2026, 12, 5, 23))) == {ana, bob}
    assert Shift.objects.filter(pattern=pattern, slot_day=dt.date(2026, 12, 5)).count() == 2


def test_a_shift_generated_before_shifts_knew_their_slot_is_taken_on_not_doubled():
    ana = StaffFactory()
    pattern = rotation((ana, 0, dt.time(22), dt.time(6)), cycle_days=1, starts_on=dt.date(2026, 12, 1))
    older = Shift.objects.create(staff=ana, pattern=pattern, starts_at=local(2026, 12, 2, 22),
                                 ends_at=local(2026, 12, 3, 6))  # fmt: skip
    with time_machine.travel(local(2026, 12, 1, 12), tick=False):
        generate_upcoming_shifts(days=2)
        generate_upcoming_shifts(days=2)
    assert Shift.objects.filter(staff=ana, starts_at=local(2026, 12, 2, 22)).get() == older
    assert Shift.objects.filter(pattern=pattern).count() == 3


def test_on_duty_answers_for_a_moment_over_midnight():
    night = StaffFactory()
    Shift.objects.create(staff=night, starts_at=local(2026, 11, 21, 22), ends_at=local(2026, 11, 22, 6))
    assert list(on_duty(local(2026, 11, 22, 0, 30))) == [night]
    assert list(on_duty(local(2026, 11, 22, 6, 0))) == []  # the end is exclusive: the next shift has begun


def test_sick_leave_takes_someone_off_duty():
    sick = ShiftFactory().staff
    Absence.objects.create(staff=sick, starts_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
                           ends_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=2), reason="sick")  # fmt: skip
    assert sick not in on_duty(dt.datetime.now(dt.UTC))


def test_inactive_staff_are_never_on_duty():
    staff = ShiftFactory().staff
    staff.is_active = False
    staff.save()
    assert not on_duty(dt.datetime.now(dt.UTC)).exists()


@translation.override("en")
def test_gaps_show_hours_without_a_worker_or_supervisor_and_people_without_a_phone():
    start = local(2026, 11, 23, 0)
    worker = StaffFactory(phone="")
    supervisor = StaffFactory(role="supervisor")
    Shift.objects.create(staff=worker, starts_at=start, ends_at=start + dt.timedelta(hours=12))
    Shift.objects.create(staff=supervisor, starts_at=start, ends_at=start + dt.timedelta(hours=24))

    gaps = roster_gaps(start, start + dt.timedelta(hours=24))
    problems = {(gap.problem, gap.starts_at, gap.ends_at) for gap in gaps}
    assert ("no worker on duty", start + dt.timedelta(hours=12), start + dt.timedelta(hours=24)) in problems
    assert any(p.startswith("on duty without a phone") and s == start for p, s, _ in problems)
    assert not any(p == "no supervisor on duty" for p, _, _ in problems)


def test_a_shift_of_someone_whose_login_was_deactivated_leaves_a_gap_in_the_report():
    # Nobody is on duty on such a shift (on_duty() counts active users only), but the report said the day was covered.
    start = local(2026, 11, 23, 0)
    gone = StaffFactory(phone="+38761200301")
    supervisor = StaffFactory(role="supervisor", phone="+38761200309")
    for staff in (gone, supervisor):
        Shift.objects.create(staff=staff, starts_at=start, ends_at=start + dt.timedelta(hours=24))
    gone.user.is_active = False
    gone.user.save()
    with translation.override("en"):
        problems = {gap.problem for gap in roster_gaps(start, start + dt.timedelta(hours=24))}
    assert "no worker on duty" in problems


def test_the_gap_report_is_shown_to_supervisors_in_the_admin(admin_client):
    with time_machine.travel(local(2026, 11, 23, 9), tick=False):
        response = admin_client.get("/admin/triage/shift/gaps/")
    assert response.status_code == 200
    assert "nema dežurnog socijalnog radnika" in response.content.decode()


def test_a_generated_shift_given_to_someone_else_in_the_admin_stays_theirs(admin_client):
    # The admin never marked such a shift as changed by hand, and the hourly generation gave it back to Ana.
    ana, cem = StaffFactory(), StaffFactory()
    rotation((ana, 0, dt.time(22), dt.time(6)), cycle_days=1, starts_on=dt.date(2026, 12, 1))
    with time_machine.travel(local(2026, 12, 1, 12), tick=False):
        generate_upcoming_shifts(days=3)
        shift = Shift.objects.get(staff=ana, starts_at=local(2026, 12, 3, 22))
        response = admin_client.post(f"/admin/triage/shift/{shift.pk}/change/", {
            "staff": cem.pk, "starts_at_0": "2026-12-03", "starts_at_1": "22:00:00",
            "ends_at_0": "2026-12-04", "ends_at_1": "06:00:00", "note": "zamjena",
        })  # fmt: skip
        assert response.status_code == 302
        generate_upcoming_shifts(days=3)
    assert list(on_duty(local(2026, 12, 3, 23))) == [cem]


def test_a_generated_shift_given_to_someone_else_through_the_api_stays_theirs():
    from rest_framework.test import APIClient

    ana, cem = StaffFactory(), StaffFactory()
    rotation((ana, 0, dt.time(22), dt.time(6)), cycle_days=1, starts_on=dt.date(2026, 12, 1))
    api = APIClient()
    api.force_authenticate(StaffFactory(role="supervisor").user)
    with time_machine.travel(local(2026, 12, 1, 12), tick=False):
        generate_upcoming_shifts(days=3)
        shift = Shift.objects.get(staff=ana, starts_at=local(2026, 12, 3, 22))
        assert api.patch(f"/api/v1/shifts/{shift.pk}/", {"staff": cem.pk}, format="json").status_code == 200
        noted = Shift.objects.get(staff=ana, starts_at=local(2026, 12, 2, 22))
        assert api.patch(f"/api/v1/shifts/{noted.pk}/", {"note": "kasni 10 min"}, format="json").status_code == 200
        generate_upcoming_shifts(days=3)
    assert list(on_duty(local(2026, 12, 3, 23))) == [cem]
    assert not Shift.objects.get(pk=noted.pk).changed_by_hand  # a note alone: it still follows its slot


def test_a_rotation_replaced_takes_its_future_shifts_off_the_roster_within_the_hour():
    # Deactivated or deleted, its generated shifts stayed on duty for three weeks next to the new rotation's.
    ana, bob, cem = StaffFactory(), StaffFactory(), StaffFactory()
    nights = rotation((ana, 0, dt.time(22), dt.time(6)), cycle_days=1, starts_on=dt.date(2026, 12, 1), name="A")
    days = rotation((bob, 0, dt.time(8), dt.time(16)), cycle_days=1, starts_on=dt.date(2026, 12, 1), name="B")
    supervisor = StaffFactory(role="supervisor").user
    with time_machine.travel(local(2026, 12, 1, 12), tick=False):
        generate_upcoming_shifts(days=3)  # 1 to 4 December
        swapped = Shift.objects.get(staff=ana, starts_at=local(2026, 12, 3, 22))
        move_shift(swapped, by=supervisor, staff=cem, starts_at=swapped.starts_at, ends_at=swapped.ends_at)

    nights.is_active = False
    nights.save()
    days.delete()
    with time_machine.travel(local(2026, 12, 1, 23), tick=False):
        generate_upcoming_shifts(days=3)
    assert list(on_duty(local(2026, 12, 1, 23, 30))) == [ana]  # a shift under way is left as it is
    assert list(on_duty(local(2026, 12, 2, 23))) == [] and list(on_duty(local(2026, 12, 2, 9))) == []
    assert list(on_duty(local(2026, 12, 3, 23))) == [cem]  # a swap made by hand stays
    assert Shift.objects.filter(staff=bob, starts_at=local(2026, 12, 1, 8)).exists()  # the past stays as it was
