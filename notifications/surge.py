"""Surge mode: when contacts outnumber the people on duty, the service stays useful and quiet for staff.

A phone that buzzes every second is a phone nobody reads. While a supervisor has surge mode on, per-case messages
about cases that are not critical (assignment, reminders, escalations) give way to one digest a minute per person;
critical cases keep their full ladder. A supervisor can also call in off-duty and reserve staff by SMS; a "1"
back puts them on duty.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.translation import gettext

from helpline.cases.kept_reads import kept_for_a_second
from helpline.cases.language import fold
from helpline.cases.models import Case, CaseStatus, Priority
from helpline.roster.models import Absence, Shift, StaffProfile
from helpline.roster.selectors import on_duty, supervisors_to_tell
from notifications.models import CallOut, Notification, NotificationKind, SurgeMode
from notifications.outbox import queue_notification
from notifications.texts import console_url, in_staff_language

logger = logging.getLogger(__name__)

WAITING = (CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.ASSIGNED)


def current_surge() -> SurgeMode | None:
    """Surge mode as it stands now (the board, the digests)."""
    return SurgeMode.objects.filter(is_on=True).first()


@kept_for_a_second(SurgeMode)
def surge_is_on() -> bool:
    """Whether surge mode is on, as every assignment and escalation step asks: seen at once in the process that
    switched it, within a second in the others."""
    return SurgeMode.objects.filter(is_on=True).exists()


@kept_for_a_second(SurgeMode)
def citizen_notice(language: str = "") -> str:
    """The supervisor's notice for citizens while surge mode is on ("" otherwise): added to every answer a citizen
    gets when they write (the SMS receipt, the web form's confirmation). Its English text for a citizen who wrote
    in English, when the supervisor gave one."""
    notices = SurgeMode.objects.filter(is_on=True).values_list("citizen_notice", "citizen_notice_english").first()
    if notices is None:
        return ""
    local, english = notices
    return english if language == "en" and english.strip() else local


def is_quiet_for(case: Case) -> bool:
    """Whether per-case messages about this case give way to the digest: surge mode is on and it is not critical."""
    return case.priority != Priority.CRITICAL and surge_is_on()


@dataclass(frozen=True)
class SurgePressure:
    waiting: int  # open cases nobody has taken yet (drills left out)
    critical_waiting: int
    on_duty: int
    oldest_critical_waiting_since: dt.datetime | None

    @property
    def per_person(self) -> float:
        return self.waiting / max(self.on_duty, 1)

    @property
    def calls_for_surge_mode(self) -> bool:
        """The board proposes surge mode past this many waiting cases per person on duty (SURGE_CASES_PER_PERSON)."""
        return self.waiting > 0 and self.per_person >= settings.SURGE_CASES_PER_PERSON


def surge_pressure(now: dt.datetime) -> SurgePressure:
    waiting = Case.objects.filter(status__in=WAITING, is_drill=False).aggregate(
        total=Count("pk"),
        critical=Count("pk", filter=Q(priority=Priority.CRITICAL)),
        oldest_critical=Min("created_at", filter=Q(priority=Priority.CRITICAL)),
    )
    return SurgePressure(waiting["total"], waiting["critical"], on_duty(now).count(), waiting["oldest_critical"])


@transaction.atomic
def start_surge(
    *, by: AbstractBaseUser, name: str, citizen_notice: str = "", citizen_notice_english: str = ""
) -> SurgeMode:
    """Turn surge mode on (once: a second start while one is on returns the running one)."""
    running = SurgeMode.objects.select_for_update().filter(is_on=True).first()
    if running is not None:
        return running
    # NUL characters, which PostgreSQL refuses (a 500 for the supervisor), are no part of any text.
    name, citizen_notice, citizen_notice_english = (
        text.replace("\x00", "").strip() for text in (name, citizen_notice, citizen_notice_english)
    )
    try:
        with transaction.atomic():
            surge = SurgeMode.objects.create(
                name=name[:120], started_by=by, citizen_notice=citizen_notice,
                citizen_notice_english=citizen_notice_english,
            )  # fmt: skip
    except IntegrityError:  # two supervisors pressed at once
        return SurgeMode.objects.get(is_on=True)
    logger.warning("surge mode on: %s", surge.name)
    return surge


@transaction.atomic
def end_surge(*, by: AbstractBaseUser) -> SurgeMode | None:
    surge = SurgeMode.objects.select_for_update().filter(is_on=True).first()
    if surge is None:
        return None
    surge.is_on, surge.ended_at, surge.ended_by = False, timezone.now(), by
    surge.save(update_fields=["is_on", "ended_at", "ended_by"])
    logger.warning("surge mode off: %s", surge.name)
    return surge


# --- Digests -------------------------------------------------------------------------------------------------


def _console_link(path: str = "/console/board/") -> str:
    """The supervisor's board by default; a worker is given their own queue, since the board is for supervisors."""
    return console_url(path) or path


def send_digests(now: dt.datetime | None = None) -> int:
    """Once a minute in surge mode: each supervisor on duty (every supervisor when none is) gets the queue in one
    SMS, and each worker on duty the count of their own cases still waiting for them. Idempotent per minute."""
    now = now or timezone.now()
    if current_surge() is None:
        return 0
    minute = now.strftime("%Y%m%d%H%M")
    pressure = surge_pressure(now)
    oldest = (
        int((now - pressure.oldest_critical_waiting_since).total_seconds() // 60)
        if pressure.oldest_critical_waiting_since else 0
    )  # fmt: skip
    supervisor_text = in_staff_language(lambda: gettext(
        "%(helpline)s SURGE: %(waiting)s waiting, %(critical)s critical, oldest critical %(oldest)s min: %(link)s"
    ) % {"helpline": settings.HELPLINE_NAME, "waiting": pressure.waiting, "critical": pressure.critical_waiting,
         "oldest": oldest, "link": _console_link()})  # fmt: skip
    sent = 0
    for supervisor in supervisors_to_tell(now):
        sent += bool(queue_notification(
            key=f"digest:{supervisor.pk}:{minute}", to_number=str(supervisor.phone), body=supervisor_text,
            kind=NotificationKind.DIGEST, recipient=supervisor.user,
        ))  # fmt: skip
    waiting_per_worker = dict(
        Case.objects.filter(status=CaseStatus.ASSIGNED, is_drill=False, assigned_to__isnull=False)
        .exclude(priority=Priority.CRITICAL)
        .values_list("assigned_to").annotate(n=Count("pk"))
    )
    for worker in on_duty(now, role="worker").exclude(phone=""):
        count = waiting_per_worker.get(worker.user_id, 0)
        if not count:
            continue
        text = in_staff_language(lambda count=count: gettext(
            "%(helpline)s: %(count)s cases are waiting for you to take them: %(link)s"
        ) % {"helpline": settings.HELPLINE_NAME, "count": count, "link": _console_link("/console/")})  # fmt: skip
        sent += bool(queue_notification(
            key=f"digest:{worker.pk}:{minute}", to_number=str(worker.phone), body=text,
            kind=NotificationKind.DIGEST, recipient=worker.user,
        ))  # fmt: skip
    return sent


# --- Calling staff in --------------------------------------------------------------------------------------------


def call_out(*, by: AbstractBaseUser) -> int:
    """Ask every active staff member who is not on duty now to come in. Once per person per surge."""
    surge = current_surge()
    if surge is None:
        return 0
    now = timezone.now()
    duty = set(on_duty(now).values_list("pk", flat=True))
    text = in_staff_language(lambda: gettext(
        "%(helpline)s: %(event)s. Can you come in within an hour? Reply 1 if you can (or 1 18:30 with the time), "
        "2 if not."
    ) % {"helpline": settings.HELPLINE_NAME, "event": surge.name})  # fmt: skip
    asked = 0
    off_duty = StaffProfile.objects.filter(is_active=True, user__is_active=True).exclude(phone="").exclude(pk__in=duty)
    for staff in off_duty:
        call, created = CallOut.objects.get_or_create(surge=surge, staff=staff)
        if created:
            queue_notification(
                key=f"call-out:{call.pk}", to_number=str(staff.phone), body=text, kind=NotificationKind.CALL_OUT,
                recipient=staff.user,
            )  # fmt: skip
            asked += 1
    return asked


# Read on the folded text (Cyrillic, diacritics and case do not matter): "1", "1.", "da", "1 18:30", "1 u 18:30",
# "1 at 18.30", "1 1830", "1 18h"; "2", "ne", "no".
_ANSWER = re.compile(
    r"^\s*(1|2|da|yes|ne|no)[.!]?(?:\s+(?:u|at|od|from)?\s*(\d{1,2})(?:\s*[:.h]\s*(\d{2})|(\d{2}))?\s*h?)?\s*[.!]?\s*$"
)
_COMING = frozenset({"1", "da", "yes"})


def answer_call_out(staff: StaffProfile, body: str) -> str | None:
    """A reply to a call-out, for as long as the surge lasts: "1" (or "1 18:30") puts the person on duty from then
    for a shift's length (leave they had then gives way: they chose to come in); "2" is noted. None when this
    person has no open call-out or the SMS is not an answer, so other commands go on."""
    match = _ANSWER.match(fold(body))
    if match is None or not _is_a_time_of_day(match.group(2), match.group(3) or match.group(4)):
        return None  # "DA 4821" is an acknowledgement's code, not "coming at 48:21"
    now = timezone.now()
    with transaction.atomic():
        call = (
            CallOut.objects.select_for_update().select_related("surge")
            .filter(staff=staff, answered_at__isnull=True, surge__is_on=True)
            .first()
        )  # fmt: skip
        if call is None:
            return None
        if match.group(4) and _is_a_code_sent_to(staff, match.group(2) + match.group(4)):
            return None  # "1 1830" with a code of theirs: they take that case (the call-out stays open)
        call.answered_at, call.is_coming = now, match.group(1) in _COMING
        call.save(update_fields=["answered_at", "is_coming"])
        if not call.is_coming:
            return in_staff_language(lambda: gettext("Thank you, noted."))
        starts = _coming_from(now, match.group(2), match.group(3) or match.group(4))
        ends = starts + dt.timedelta(hours=settings.CALL_OUT_SHIFT_HOURS)
        Shift.objects.create(staff=staff, starts_at=starts, ends_at=ends, note=f"call-out: {call.surge.name}"[:200])
        _give_way_to_the_call_out(staff, starts, ends)
    local, today = timezone.localtime(starts), timezone.localdate(now)
    if local.date() == today:
        return in_staff_language(lambda: gettext("Thank you. You are on duty from %(time)s; cases will come to you.")
                                 % {"time": local.strftime("%H:%M")})  # fmt: skip
    return in_staff_language(lambda: gettext(
        "Thank you. You are on duty from %(time)s on %(date)s (that time had passed today); cases will come to you."
    ) % {"time": local.strftime("%H:%M"), "date": local.strftime("%d.%m.")})  # fmt: skip


def _is_a_time_of_day(hour: str | None, minute: str | None) -> bool:
    return hour is None or (int(hour) <= 23 and int(minute or 0) <= 59)


def _is_a_code_sent_to(staff: StaffProfile, digits: str) -> bool:
    """Four digits after "1" or "DA" are a time ("1 1830") or, as in "DA 4821", the acknowledgement code of a
    notification about a case; someone called in may be chased about a case at the same time."""
    return Notification.objects.filter(
        recipient=staff.user, ack_code=digits, ack_code_used_at__isnull=True,
        case__status__in=(CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.ASSIGNED),  # a case still waiting for them
    ).exists()  # fmt: skip


def _coming_from(now: dt.datetime, hour: str | None, minute: str | None) -> dt.datetime:
    """When the person says they come in. "1 u 7" sent at 18:00 means 19:00, as people say it here: an hour from
    1 to 11 already past today is read in the afternoon when that is still ahead; any other past time is tomorrow."""
    if not hour:
        return now
    local = timezone.localtime(now)
    starts = local.replace(hour=int(hour) % 24, minute=int(minute or 0) % 60, second=0, microsecond=0)
    late = local - dt.timedelta(minutes=30)
    if starts < late and 1 <= int(hour) <= 11 and starts + dt.timedelta(hours=12) >= late:
        starts += dt.timedelta(hours=12)
    elif starts < late:
        starts += dt.timedelta(days=1)
    return starts


def _give_way_to_the_call_out(staff: StaffProfile, starts: dt.datetime, ends: dt.datetime) -> None:
    """Leave overlapping the shift someone just agreed to come in for would keep them off duty (absences take
    precedence over shifts), while they were told cases will come to them: it ends where the shift starts, or,
    starting within the shift, begins where the shift ends."""
    for absence in Absence.objects.select_for_update().filter(staff=staff, starts_at__lt=ends, ends_at__gt=starts):
        if absence.starts_at < starts:
            resumes_until = absence.ends_at if absence.ends_at > ends else None
            absence.ends_at = starts
            absence.save(update_fields=["ends_at"])
            if resumes_until:  # leave that went on past the shift resumes after it
                Absence.objects.create(staff=staff, starts_at=ends, ends_at=resumes_until, reason=absence.reason)
        elif absence.ends_at > ends:
            absence.starts_at = ends
            absence.save(update_fields=["starts_at"])
        else:
            absence.delete()
        logger.info("an absence of staff %s gave way to their call-out shift", staff.pk)
