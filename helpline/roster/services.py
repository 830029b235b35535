"""The duty roster: shifts generated from rotation patterns, and the gaps a citizen must never find first.

Shift times are wall-clock times in Europe/Sarajevo. A night shift 22:00-06:00 on the night clocks change is
7 or 9 hours long, as the people working it experience it.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from helpline.roster.models import Absence, Role, RotationPattern, RotationSlot, Shift, StaffProfile

LOCAL = ZoneInfo(settings.TIME_ZONE)
logger = logging.getLogger(__name__)


def local_moment(day: dt.date, time: dt.time) -> dt.datetime:
    """The moment (in UTC) a local wall-clock time happens on a day. A time that does not exist (skipped at the
    spring change) is moved an hour on; a time that happens twice (autumn) is the first one. UTC, because Python
    subtracts two datetimes of one zone by their wall clocks, which is wrong across a change."""
    naive = dt.datetime.combine(day, time)
    moment = naive.replace(tzinfo=LOCAL)
    round_trip = moment.astimezone(dt.UTC).astimezone(LOCAL).replace(tzinfo=None)
    if round_trip != naive:  # in the spring gap
        moment = (naive + dt.timedelta(hours=1)).replace(tzinfo=LOCAL)
    return moment.astimezone(dt.UTC)


def shift_window(day: dt.date, start: dt.time, end: dt.time) -> tuple[dt.datetime, dt.datetime]:
    """Start and end of a shift that starts on `day`; an end at or before the start is on the next day."""
    end_day = day + dt.timedelta(days=1) if end <= start else day
    return local_moment(day, start), local_moment(end_day, end)


@transaction.atomic
def generate_shifts(pattern: RotationPattern, first_day: dt.date, last_day: dt.date) -> int:
    """Bring the pattern's shifts for the days given in line with its slots as they stand now: a missing shift is
    created; a future one whose slot now names another person or other hours follows it; a future one whose slot
    was removed, or moved to another day of the cycle, goes (Ana replaced by Bob in the night slot stayed on the
    roster for three weeks, and was given cases). A shift that has begun is left as it is, and so is one a
    supervisor changed by hand (a swap). Returns how many shifts were created."""
    now = timezone.now()
    wanted: dict[tuple[int, dt.date], tuple[int, dt.datetime, dt.datetime]] = {}
    slots = list(pattern.slots.all())
    day = max(first_day, pattern.starts_on)
    while day <= last_day:
        index = (day - pattern.starts_on).days % pattern.cycle_days
        for slot in slots:
            if slot.day_in_cycle != index:
                continue
            starts_at, ends_at = shift_window(day, slot.start_time, slot.end_time)
            if ends_at <= starts_at or day.isoformat() in slot.days_removed:
                continue  # wholly inside the hour the clocks skip in spring, or removed from the roster by hand
            wanted[(slot.pk, day)] = (slot.staff_id, starts_at, ends_at)
        day += dt.timedelta(days=1)
    kept = {}
    for shift in Shift.objects.filter(pattern=pattern, slot_day__range=(first_day, last_day)):
        key = (shift.slot_id, shift.slot_day)
        if key in wanted:
            kept[key] = shift
        elif not shift.changed_by_hand and shift.starts_at > now:
            shift.delete()  # its slot was removed (slot None) or now falls on another day
    created = 0
    for (slot_id, slot_day), (staff_id, starts_at, ends_at) in wanted.items():
        shift = kept.get((slot_id, slot_day))
        if shift is None:
            created += _create_or_adopt(pattern, slot_id, slot_day, staff_id, starts_at, ends_at)
        elif not shift.changed_by_hand and shift.starts_at > now and (
            (shift.staff_id, shift.starts_at, shift.ends_at) != (staff_id, starts_at, ends_at)
        ):
            shift.staff_id, shift.starts_at, shift.ends_at = staff_id, starts_at, ends_at
            shift.save(update_fields=["staff", "starts_at", "ends_at"])
    return created


def remove_shift_from_roster(shift: Shift) -> None:
    """A supervisor takes a shift off the roster. One from a rotation stays off: its slot remembers the day, or the
    hourly generation would put the person back on duty within the hour."""
    with transaction.atomic():
        if shift.slot_id and shift.slot_day:
            slot = RotationSlot.objects.select_for_update().get(pk=shift.slot_id)
            recent = [day for day in slot.days_removed if day >= (shift.slot_day - dt.timedelta(days=60)).isoformat()]
            slot.days_removed = sorted({*recent, shift.slot_day.isoformat()})
            slot.save(update_fields=["days_removed"])
        shift.delete()


def _create_or_adopt(
    pattern: RotationPattern, slot_id: int, slot_day: dt.date, staff_id: int, starts_at: dt.datetime,
    ends_at: dt.datetime,
) -> int:  # fmt: skip
    """The slot's shift on that day, created; or a shift generated before shifts knew their slot, taken on. The
    older shift is looked for first because nothing in the database stops a second shift of the same person at the
    same time any more (only one per slot and day)."""
    older = Shift.objects.filter(pattern=pattern, staff_id=staff_id, starts_at=starts_at, slot__isnull=True).first()
    if older is not None:
        older.slot_id, older.slot_day = slot_id, slot_day
        older.save(update_fields=["slot", "slot_day"])
        return 0
    Shift.objects.create(
        staff_id=staff_id, starts_at=starts_at, ends_at=ends_at, pattern=pattern, slot_id=slot_id, slot_day=slot_day
    )
    return 1


def remove_shifts_of_retired_rotations() -> int:
    """A rotation deactivated or deleted (replaced by another) takes its future generated shifts with it, or its
    people stay on duty for three weeks next to the new rotation's. A deleted one leaves its shifts with no
    rotation but still with their slot's day. A shift that has begun stays, and so does one changed by hand (a
    swap). Returns how many shifts went."""
    retired = Shift.objects.filter(
        Q(pattern__is_active=False) | Q(pattern__isnull=True),
        slot_day__isnull=False,
        changed_by_hand=False,
        starts_at__gt=timezone.now(),
    )
    removed, _ = retired.delete()
    return removed


def generate_upcoming_shifts(days: int = 21) -> int:
    """Each active pattern's shifts for the coming days, after the future shifts of retired rotations are taken off.
    One pattern that cannot be generated (a slot the database refuses) is logged and left for its fix; the patterns
    after it are still generated."""
    today = timezone.localdate()
    remove_shifts_of_retired_rotations()
    created = 0
    for pattern in RotationPattern.objects.filter(is_active=True):
        try:
            created += generate_shifts(pattern, today, today + dt.timedelta(days=days))
        except DatabaseError as error:
            logger.error("could not generate the shifts of rotation %s (%s)", pattern.pk, type(error).__name__)
    return created


@dataclass(frozen=True)
class Gap:
    starts_at: dt.datetime
    ends_at: dt.datetime
    problem: str  # "no worker", "no supervisor", "on duty without a phone: NAME"

    @property
    def hours(self) -> float:
        return (self.ends_at - self.starts_at).total_seconds() / 3600


def _covered(intervals: list[tuple[dt.datetime, dt.datetime]], at: dt.datetime) -> bool:
    return any(start <= at < end for start, end in intervals)


def roster_gaps(start: dt.datetime, end: dt.datetime, *, step: dt.timedelta = dt.timedelta(minutes=15)) -> list[Gap]:
    """Stretches between start and end with no worker, no supervisor, or someone on duty who cannot be
    reached by phone. Checked every `step`; neighbouring stretches with the same problem are merged."""
    shifts = list(
        Shift.objects.filter(
            starts_at__lt=end, ends_at__gt=start, staff__is_active=True, staff__user__is_active=True
        ).select_related("staff__user")  # who can be on duty: as on_duty() counts them
    )
    absences = list(Absence.objects.filter(starts_at__lt=end, ends_at__gt=start))
    away: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
    for absence in absences:
        away.setdefault(absence.staff_id, []).append((absence.starts_at, absence.ends_at))

    gaps: list[Gap] = []
    at = start
    while at < end:
        on_duty = [
            s.staff for s in shifts if s.starts_at <= at < s.ends_at and not _covered(away.get(s.staff_id, []), at)
        ]
        problems = []
        if not any(staff.role == Role.WORKER for staff in on_duty):
            problems.append(gettext("no worker on duty"))
        if not any(staff.role == Role.SUPERVISOR for staff in on_duty):
            problems.append(gettext("no supervisor on duty"))
        problems += sorted(
            {gettext("on duty without a phone: %(name)s") % {"name": staff} for staff in on_duty if not staff.phone}
        )
        for problem in problems:
            previous = next((g for g in reversed(gaps) if g.problem == problem and g.ends_at == at), None)
            if previous is not None:
                gaps[gaps.index(previous)] = Gap(previous.starts_at, at + step, problem)
            else:
                gaps.append(Gap(at, at + step, problem))
        at += step
    return sorted(gaps, key=lambda gap: (gap.starts_at, gap.problem))


def coming_week_gaps() -> list[Gap]:
    now = timezone.now().replace(second=0, microsecond=0)
    now -= dt.timedelta(minutes=now.minute % 15)
    return roster_gaps(now, now + dt.timedelta(days=7))


def mark_assigned(user_id: int, at: dt.datetime) -> None:
    """Idle time counts from a person's last assignment, whoever made it (triage, the ladder, a supervisor, or the
    person taking a waiting case themselves). An account without a staff profile has no idle time to restart."""
    StaffProfile.objects.filter(user_id=user_id).update(last_assigned_at=at)
