"""Who is on duty, and with how many open cases: the reads assignment, the live-call hunt and the board share."""
from __future__ import annotations

import copy
import datetime as dt

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from helpline.cases.compiled_reads import CompiledRead
from helpline.cases.kept_reads import kept_for_a_second
from helpline.cases.models import OPEN_STATUSES, Case
from helpline.roster.models import Absence, Role, Shift, StaffProfile


def is_supervisor(user) -> bool:
    """Supervisors (and Django superusers) see and may act on every case."""
    profile = getattr(user, "staff_profile", None)
    return bool(user.is_superuser or (profile is not None and profile.role == Role.SUPERVISOR))


def is_staff_member(user) -> bool:
    """Signed in with a staff profile (or a superuser): the one test the console and the staff API both use."""
    return bool(user.is_authenticated and (user.is_superuser or hasattr(user, "staff_profile")))


def staff_ids_with_phone_index(index: str) -> QuerySet:
    """The id of the active staff member whose registered phone has this blind index (an SMS from it is a staff
    command), as a query: SMS intake asks it together with another question about the sender. Nearly always no:
    the plain read answers that at half the CPU of the join, which only a staff member's number then costs
    (`staff_by_id`)."""
    active = StaffProfile.objects.filter(phone_index=index, is_active=True)
    return active.order_by("pk").values_list("pk", flat=True)[:1]


def active_staff_phone_indexes() -> list[str]:
    """The blind index of every active staff member's registered phone."""
    active = StaffProfile.objects.filter(is_active=True).exclude(phone_index="")
    return list(active.values_list("phone_index", flat=True))


def staff_by_id(staff_id: int) -> StaffProfile | None:
    return StaffProfile.objects.select_related("user").filter(pk=staff_id).first()


def all_supervisors() -> list[StaffProfile]:
    """Every active supervisor with a phone, on duty or not: the ladder's last resort."""
    # A login deactivated is someone who left, as a profile deactivated is: never the one a case goes to.
    supervisors = StaffProfile.objects.filter(role=Role.SUPERVISOR, is_active=True, user__is_active=True).exclude(
        phone=""
    )
    return list(supervisors.select_related("user").order_by("pk"))


def clashes_with_the_rotation(shift: Shift, staff_id: int, starts_at: dt.datetime) -> bool:
    """Whether a supervisor moving this generated shift would give its person two shifts of the rotation starting
    together: a mistake, refused. The database refused it too until the rotation's own swaps needed it for a
    moment; shifts entered by hand may overlap."""
    if shift.pattern_id is None:
        return False
    others = Shift.objects.filter(staff_id=staff_id, starts_at=starts_at, pattern_id=shift.pattern_id)
    return others.exclude(pk=shift.pk).exists()


def active_staff() -> QuerySet[StaffProfile]:
    return StaffProfile.objects.filter(is_active=True, user__is_active=True).select_related("user").order_by(
        "user__first_name", "user__username"
    )


def on_duty(at: dt.datetime, *, role: str | None = None) -> QuerySet[StaffProfile]:
    """Active staff with a shift covering `at` and no absence covering it."""
    covering_shift = Shift.objects.filter(staff=OuterRef("pk"), starts_at__lte=at, ends_at__gt=at)
    covering_absence = Absence.objects.filter(staff=OuterRef("pk"), starts_at__lte=at, ends_at__gt=at)
    staff = StaffProfile.objects.filter(is_active=True, user__is_active=True).filter(
        Exists(covering_shift), ~Exists(covering_absence)
    )
    if role is not None:
        staff = staff.filter(role=role)
    return staff.select_related("user")


def with_open_case_counts(staff: QuerySet[StaffProfile]) -> QuerySet[StaffProfile]:
    return staff.annotate(open_cases=_OPEN_CASES)


# Real cases only: a drill rehearsed on the running service must never keep a real case from a person with room
# for it (a real emergency during a drill is the case the drill is for). A drill's own cases count its cases
# too (`_OPEN_DRILL_CASES`), so the drill still fills people up and queues as a real surge would.
_OPEN_CASES = Count(
    "user__assigned_cases",
    filter=Q(user__assigned_cases__status__in=OPEN_STATUSES, user__assigned_cases__is_drill=False),
)
_OPEN_DRILL_CASES = Count(
    "user__assigned_cases",
    filter=Q(user__assigned_cases__status__in=OPEN_STATUSES, user__assigned_cases__is_drill=True),
)


def _counters(*staff_ids: int) -> QuerySet:
    active = StaffProfile.objects.filter(pk__in=staff_ids, is_active=True).annotate(
        open_cases=_OPEN_CASES, open_drill_cases=_OPEN_DRILL_CASES
    )
    return active.values_list("pk", "last_assigned_at", "open_cases", "open_drill_cases")


_COUNTERS = CompiledRead(_counters)  # compiled once for each number of people on duty


@kept_for_a_second(StaffProfile, Shift, Absence, get_user_model())
def _on_duty_in_second(second: dt.datetime) -> tuple[StaffProfile, ...]:
    return tuple(on_duty(second).order_by("pk"))


def is_on_duty(user_id: int | None, at: dt.datetime) -> bool:
    """Whether this login's person is on duty at `at` (who is, kept for a second, as assignment reads it)."""
    return user_id is not None and any(p.user_id == user_id for p in _on_duty_in_second(at.replace(microsecond=0)))


def forget_who_is_on_duty() -> None:
    """A profile changed by an UPDATE (which sends no signal): this process reads who is on duty afresh."""
    _on_duty_in_second.forget()


def on_duty_with_open_cases(at: dt.datetime) -> list[StaffProfile]:
    """Who is on duty at `at`, each with `open_cases` and `last_assigned_at` as they stand now: what every
    assignment reads. Who is on duty is kept for a second (compiling that query cost more CPU than running it,
    for every case); a shift or profile saved in this process is seen at once, in others within a second. The
    counters are always read fresh, so nobody is pushed over their maximum by an old count."""
    kept = _on_duty_in_second(at.replace(microsecond=0))
    if not kept:
        return []
    ids = [profile.pk for profile in kept]
    fresh = {pk: counters for pk, *counters in _COUNTERS.fetch(*ids)}
    people = []
    for profile in kept:
        if profile.pk in fresh:  # not deactivated meanwhile
            person = copy.copy(profile)  # the kept profile is shared: the pool counts up its own copy
            person.last_assigned_at, person.open_cases, person.open_drill_cases = fresh[profile.pk]
            people.append(person)
    return people


def supervisors_on_duty(at: dt.datetime) -> QuerySet[StaffProfile]:
    return on_duty(at, role=Role.SUPERVISOR)


def supervisors_to_tell(at: dt.datetime) -> list[StaffProfile]:
    """Who hears of the queue as a whole (the surge digest, cases waiting for room): the supervisors on duty with a
    phone, or every supervisor when none is."""
    return list(supervisors_on_duty(at).exclude(phone="")) or all_supervisors()


# How long a report that a person's phone did not receive counts against them. A new report marks it again.
PHONE_FAILING_COUNTS_FOR = dt.timedelta(hours=1)


def phone_is_failing(staff: StaffProfile, now: dt.datetime | None = None) -> bool:
    since = staff.phone_failing_since
    return since is not None and since > (now or timezone.now()) - PHONE_FAILING_COUNTS_FOR


def voice_hunt_list(case: Case, at: dt.datetime, *, limit: int = 3) -> list[StaffProfile]:
    """Whom a live call rings, in order: workers on duty who speak the caller's language and have a phone, fewest
    open cases first, then the supervisor on duty. A few at most, so nobody in crisis waits minutes. As in
    assignment, a phone known to be failing comes last: the caller would wait out its ring for nothing."""
    staff = with_open_case_counts(on_duty(at)).exclude(phone="")
    speakers = [s for s in staff if case.language in (s.languages or [])]

    def ring_order(person: StaffProfile) -> tuple:
        return phone_is_failing(person, at), person.open_cases, person.pk

    workers = sorted((s for s in speakers if s.role == Role.WORKER), key=ring_order)
    supervisors = sorted((s for s in staff if s.role == Role.SUPERVISOR), key=ring_order)
    return (workers[: limit - 1] + supervisors[:1]) if supervisors else workers[:limit]
