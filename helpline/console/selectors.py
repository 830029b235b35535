"""What the console's roster pages show: the week's shifts and gaps. Case reads are helpline.casework.selectors,
shared with the staff API."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from helpline.roster.models import Shift
from helpline.roster.services import LOCAL, Gap, local_moment, roster_gaps

# --- The roster --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterDay:
    day: dt.date
    shifts: list[Shift]


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def roster_week(monday: dt.date) -> list[RosterDay]:
    """Seven days from Monday, each with the shifts that start on it (local time)."""
    start = local_moment(monday, dt.time(0))
    end = local_moment(monday + dt.timedelta(days=7), dt.time(0))
    shifts = Shift.objects.filter(starts_at__gte=start, starts_at__lt=end).select_related("staff__user")
    days = {monday + dt.timedelta(days=n): [] for n in range(7)}
    for shift in shifts.order_by("starts_at", "pk"):
        days[shift.starts_at.astimezone(LOCAL).date()].append(shift)
    return [RosterDay(day, shifts) for day, shifts in days.items()]


def week_gaps(monday: dt.date) -> list[Gap]:
    """Stretches of the week with no worker, no supervisor, or someone on duty without a phone."""
    return roster_gaps(local_moment(monday, dt.time(0)), local_moment(monday + dt.timedelta(days=7), dt.time(0)))
