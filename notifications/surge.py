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
from helpline.roster.selectors import on_duty, supervisors_on_duty, supervisors_to_tell
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
    """Once a minute in surge mode, while anything waits: each supervisor on duty (every supervisor when none is)
    gets the queue in one SMS, with the count of their own cases still waiting for them, and everyone else on duty
    holding such cases that count. Idempotent per minute."""
    now = now or timezone.now()
    running = current_surge()
    if running is None:
        return 0
    minute = now.strftime("%Y%m%d%H%M")
    pressure = surge_pressure(now)
    if not pressure.waiting:  # "0 waiting, 0 critical" every minute, at night to every supervisor, told nobody anything
        return _note_backlog_cleared(now)
    if running.backlog_cleared_at is not None:
        SurgeMode.objects.filter(pk=running.pk).update(backlog_cleared_at=None, told_backlog_cleared_at=None)
    oldest = (
        int((now - pressure.oldest_critical_waiting_since).total_seconds() // 60)
        if pressure.oldest_critical_waiting_since else 0
    )  # fmt: skip
    supervisor_text = in_staff_language(lambda: gettext(
        "%(helpline)s SURGE: %(waiting)s waiting, %(critical)s critical, oldest critical %(oldest)s min: %(link)s"
    ) % {"helpline": settings.HELPLINE_NAME, "waiting": pressure.waiting, "critical": pressure.critical_waiting,
         "oldest": oldest, "link": _console_link()})  # fmt: skip
    # A supervisor on duty with room is given normal cases too, as quietly: their own count rides in their digest.
    waiting_per_holder = dict(
        Case.objects.filter(status=CaseStatus.ASSIGNED, is_drill=False, assigned_to__isnull=False)
        .exclude(priority=Priority.CRITICAL)
        .values_list("assigned_to").annotate(n=Count("pk")).order_by()
    )  # fmt: skip
    sent = 0
    told = set()
    for supervisor in supervisors_to_tell(now):
        own = waiting_per_holder.get(supervisor.user_id, 0)
        body = supervisor_text if not own else supervisor_text + " " + _own_count(own)
        told.add(supervisor.pk)
        sent += bool(queue_notification(
            key=f"digest:{supervisor.pk}:{minute}", to_number=str(supervisor.phone), body=body,
            kind=NotificationKind.DIGEST, recipient=supervisor.user,
        ))  # fmt: skip
    for holder in on_duty(now).exclude(phone="").exclude(pk__in=told):  # whatever their role
        count = waiting_per_holder.get(holder.user_id, 0)
        if not count:
            continue
        text = in_staff_language(lambda count=count: gettext(
            "%(helpline)s: %(count)s cases are waiting for you to take them: %(link)s"
        ) % {"helpline": settings.HELPLINE_NAME, "count": count, "link": _console_link("/console/")})  # fmt: skip
        sent += bool(queue_notification(
            key=f"digest:{holder.pk}:{minute}", to_number=str(holder.phone), body=text,
            kind=NotificationKind.DIGEST, recipient=holder.user,
        ))  # fmt: skip
    return sent


def _own_count(count: int) -> str:
    return in_staff_language(lambda: gettext("%(count)s of them are waiting for you to take them.") % {"count": count})


def surge_can_end(running: SurgeMode | None, now: dt.datetime) -> bool:
    """Whether the board proposes ending surge mode: nothing has waited for SURGE_CLEARED_MINUTES."""
    cleared = running.backlog_cleared_at if running is not None else None
    return cleared is not None and now - cleared >= dt.timedelta(minutes=settings.SURGE_CLEARED_MINUTES)


def _note_backlog_cleared(now: dt.datetime) -> int:
    """Nothing waits: the minute's digest is left out. Once nothing has waited for SURGE_CLEARED_MINUTES, the
    supervisors on duty get one SMS proposing to end surge mode (left on, it keeps every normal case quiet)."""
    SurgeMode.objects.filter(is_on=True, backlog_cleared_at__isnull=True).update(backlog_cleared_at=now)
    running = current_surge()
    if not surge_can_end(running, now) or running.told_backlog_cleared_at is not None:
        return 0
    if not SurgeMode.objects.filter(pk=running.pk, told_backlog_cleared_at__isnull=True).update(
        told_backlog_cleared_at=now
    ):
        return 0  # another tick told them
    text = in_staff_language(lambda: gettext(
        "%(helpline)s: nothing has waited for %(minutes)s min. Surge mode (%(event)s) can end, so that every case "
        "is chased as usual: %(link)s"
    ) % {"helpline": settings.HELPLINE_NAME, "minutes": settings.SURGE_CLEARED_MINUTES, "event": running.name,
         "link": _console_link()})  # fmt: skip
    told = 0
    for supervisor in supervisors_on_duty(now).exclude(phone=""):
        told += bool(queue_notification(
            key=f"surge-can-end:{running.pk}:{supervisor.pk}:{int(running.backlog_cleared_at.timestamp())}",
            to_number=str(supervisor.phone), body=text, kind=NotificationKind.ESCALATION, recipient=supervisor.user,
        ))  # fmt: skip
    return told


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


# --- Reading a call-out answer ---------------------------------------------------------------------------------
# Read on the folded text (Cyrillic, diacritics and case do not matter), as people write back: "1", "Da, dolazim",
# "da mogu", "Може", "1 u 18:30", "1, u 22h", "1 oko 22 sata", "1 у 22ч", "1 sutra u 7", "1 za pola sata";
# "2", "ne", "Ne mogu", "2 ne mogu".
_YES = frozenset({"1", "da", "yes", "dolazim", "mogu", "moze", "evo", "stizem"})
_NO = frozenset({"2", "ne", "no", "necu"})
# Words that may follow the answer without changing it ("Da, dolazim", "da mogu doci", "2 ne mogu").
_YES_MORE = frozenset({"da", "dolazim", "mogu", "moze", "evo", "stizem", "cu", "doci"})
_NO_MORE = frozenset({"ne", "mogu", "moze", "dolazim", "doci", "necu", "nisam", "nazalost", "hvala", "izvini",
                      "izvinite", "sorry"})  # fmt: skip
_TOMORROW = r"(?:sutra|tomorrow)"
_AT = re.compile(
    rf"^(?:({_TOMORROW})\s+)?(?:(?:u|at|od|from|oko|about|around|cca)\s*)?(?:({_TOMORROW})\s+)?"
    r"(\d{1,2})(?:\s*[:.h]\s*(\d{2})|(\d{2}))?\s*(?:h|sati|sata|sat|casova|casa|cas|c)?"
    rf"(?:\s+({_TOMORROW}))?$"
)
_IN = re.compile(
    r"^(?:za|in)\s+(?:(pola)\s+sata|(?:(\d{1,3})\s*)?(sati|sata|sat|h|hours|hour|minuta|minute|minutes|mins|min|m))"
    r"(?:\s+vremena)?$"
)
_CODE_LIKE = re.compile(r"^\d{4,6}$")
# How far back what someone wrote still reads as "now" ("1 u 18" sent at 18:20).
NOW_ISH = dt.timedelta(minutes=30)
# A call-out of a surge mode a supervisor ended still counts in one started within this time (ended by mistake,
# or the same flood again), and a reply to it after surge mode ended is thanked rather than read as a case command.
CALL_OUT_LIVES_ON = dt.timedelta(hours=12)


@dataclass(frozen=True)
class CallOutAnswer:
    is_coming: bool
    hour: int | None = None
    minute: int = 0
    tomorrow: bool = False
    in_minutes: int | None = None  # "za pola sata"
    digits: str = ""  # "1 1830": four digits that may be the code of a case notification instead of a time


NOT_UNDERSTOOD = object()  # began with a yes or a no, but the rest is no time we can read


def read_call_out_answer(body: str) -> CallOutAnswer | object | None:
    """A call-out answer; NOT_UNDERSTOOD when the SMS begins with a yes or a no but the rest does not read; None
    when it is no answer at all, or reads as a case's acknowledgement code ("DA 4821", not "coming at 48:21")."""
    words = [word.strip(".") for word in re.sub(r"[,;!?]", " ", fold(body or "")).split()]
    words = [word for word in words if word]
    if not words or words[0] not in _YES | _NO:
        return None
    is_coming = words[0] in _YES
    rest = words[1:]
    while rest and rest[0] in (_YES_MORE if is_coming else _NO_MORE):
        rest = rest[1:]
    if not rest:
        return CallOutAnswer(is_coming)
    if _CODE_LIKE.match(rest[0]) and len(rest) == 1 and not _is_a_time_of_day(rest[0][:-2], rest[0][-2:]):
        return None
    if not is_coming:
        return NOT_UNDERSTOOD
    text = " ".join(rest)
    if match := _IN.match(text):
        half, count, unit = match.groups()
        minutes = 30 if half else int(count or 1) * (60 if unit[0] in "sh" else 1)
        return CallOutAnswer(True, in_minutes=minutes)
    match = _AT.match(text)
    if match is None:
        return NOT_UNDERSTOOD
    before, after_at, hour, minute, joined, after = match.groups()
    if not _is_a_time_of_day(hour, minute or joined):
        return NOT_UNDERSTOOD
    return CallOutAnswer(
        True, hour=int(hour), minute=int(minute or joined or 0), tomorrow=bool(before or after_at or after),
        digits=hour + joined if joined else "",
    )  # fmt: skip


def answer_call_out(staff: StaffProfile, body: str) -> str | None:
    """A reply to a call-out, for as long as the surge lasts. The latest answer counts: "1" (or "1 18:30") puts the
    person on duty from then for a shift's length (leave they had then gives way: they chose to come in); "2" is
    noted and takes back a shift a "1" before it gave. None when this person has no open call-out, or the SMS is no
    answer, or a "1" repeats a yes they are on duty for (it takes a case then), so other commands go on."""
    answer = read_call_out_answer(body)
    if answer is None:
        return None
    now = timezone.now()
    with transaction.atomic():
        call = _open_call_out(staff, now)
        if call is None:
            return None
        if answer is NOT_UNDERSTOOD:
            return call_out_help()
        assert isinstance(answer, CallOutAnswer)
        if answer.digits and _is_a_code_sent_to(staff, answer.digits):
            return None  # "1 1830" with a code of theirs: they take that case (the call-out stays as it was)
        shift = call.shift
        on_duty_for_it = shift is not None and shift.starts_at <= now < shift.ends_at
        if answer.is_coming and answer.hour is None and answer.in_minutes is None and on_duty_for_it:
            return None  # they came in: a plain "1" takes their most urgent case
        call.answered_at, call.is_coming = now, answer.is_coming
        if shift is not None:
            _take_back(shift, now)
            call.shift = None
        if not answer.is_coming:
            call.save(update_fields=["answered_at", "is_coming", "shift"])
            if shift is not None:
                return in_staff_language(lambda: gettext("Thank you, noted: you are not on duty for the call-out."))
            return in_staff_language(lambda: gettext("Thank you, noted."))
        starts = _coming_from(now, answer)
        # Eight real hours: on the night the clocks change, eight on the wall clock were seven or nine.
        ends = starts.astimezone(dt.UTC) + dt.timedelta(hours=settings.CALL_OUT_SHIFT_HOURS)
        call.shift = Shift.objects.create(
            staff=staff, starts_at=starts, ends_at=ends, note=f"call-out: {call.surge.name}"[:200]
        )
        call.save(update_fields=["answered_at", "is_coming", "shift"])
        _give_way_to_the_call_out(staff, starts, ends)
    local, today = timezone.localtime(starts), timezone.localdate(now)
    if local.date() == today:
        return in_staff_language(lambda: gettext("Thank you. You are on duty from %(time)s; cases will come to you.")
                                 % {"time": local.strftime("%H:%M")})  # fmt: skip
    return in_staff_language(lambda: gettext(
        "Thank you. You are on duty from %(time)s on %(date)s (that time had passed today); cases will come to you."
    ) % {"time": local.strftime("%H:%M"), "date": local.strftime("%d.%m.")})  # fmt: skip


def _open_call_out(staff: StaffProfile, now: dt.datetime) -> CallOut | None:
    """This person's latest call-out, under a row lock, while surge mode is on. One of a surge mode ended and
    started again within CALL_OUT_LIVES_ON becomes the running one's: a "1" to it was lost."""
    running = SurgeMode.objects.filter(is_on=True).first()
    if running is None:
        return None
    call = (
        CallOut.objects.select_for_update(of=("self",)).select_related("surge", "shift")
        .filter(staff=staff).order_by("-sent_at", "-pk").first()
    )  # fmt: skip
    if call is None or call.surge_id == running.pk:
        return call
    if call.surge.ended_at is None or call.surge.ended_at < now - CALL_OUT_LIVES_ON:
        return None
    call.surge = running
    call.save(update_fields=["surge"])
    call.surge = running
    return call


def reply_to_an_ended_call_out(staff: StaffProfile, body: str) -> str | None:
    """"Call-out over, thank you" for a call-out answer to a call-out whose surge mode has ended (recently), so the
    person is not told about taking cases; None otherwise."""
    if read_call_out_answer(body) is None or current_surge() is not None:
        return None
    recent = timezone.now() - CALL_OUT_LIVES_ON
    if not CallOut.objects.filter(staff=staff, surge__ended_at__gte=recent).exists():
        return None
    return in_staff_language(lambda: gettext(
        "%(helpline)s: thank you; the call-out is over and you are not needed now."
    ) % {"helpline": settings.HELPLINE_NAME})  # fmt: skip


def call_out_help() -> str:
    return in_staff_language(lambda: gettext(
        "%(helpline)s: to answer the call-out, reply 1 if you are coming (1, 1 18:30 or 1 u 22h with the time), "
        "or 2 if you cannot."
    ) % {"helpline": settings.HELPLINE_NAME})  # fmt: skip


def _take_back(shift: Shift, now: dt.datetime) -> None:
    """A call-out shift the person's later answer replaces or withdraws: gone if it has not begun, ended now if it
    has (the cases they were given are handed on as at any shift's end)."""
    if shift.starts_at > now:
        shift.delete()
    elif shift.ends_at > now:
        shift.ends_at = now
        shift.save(update_fields=["ends_at"])


def _is_a_time_of_day(hour: str | None, minute: str | None) -> bool:
    return hour is None or (hour.isdigit() and int(hour) <= 23 and int(minute or 0) <= 59)


def _is_a_code_sent_to(staff: StaffProfile, digits: str) -> bool:
    """Four digits after "1" or "DA" are a time ("1 1830") or, as in "DA 4821", the acknowledgement code of a
    notification about a case; someone called in may be chased about a case at the same time."""
    return Notification.objects.filter(
        recipient=staff.user, ack_code=digits, ack_code_used_at__isnull=True,
        case__status__in=(CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.ASSIGNED),  # a case still waiting for them
    ).exists()  # fmt: skip


def _coming_from(now: dt.datetime, answer: CallOutAnswer) -> dt.datetime:
    """When the person says they come in: the next moment ahead that matches what they wrote. "1 u 7" sent at 18:00
    means 19:00, as people say it here; "1 u 12" after noon means midnight; "1 u 11" at 23:20 means 11:00 tomorrow,
    not 23:00 twenty minutes ago. Only the hour as written counts as "now" up to NOW_ISH back ("1 u 18" at 18:20);
    "sutra" reads the hour as written, tomorrow."""
    if answer.in_minutes is not None:
        return now + dt.timedelta(minutes=answer.in_minutes)
    if answer.hour is None:
        return now
    local = timezone.localtime(now)
    hour = answer.hour
    readings = [hour]
    if not answer.tomorrow:
        readings += [hour + 12] if 1 <= hour <= 11 else [0] if hour == 12 else []
    candidates = []
    for days in (1,) if answer.tomorrow else (0, 1):
        day = local.date() + dt.timedelta(days=days)
        for reading in readings:
            at = dt.datetime.combine(day, dt.time(reading, answer.minute), tzinfo=local.tzinfo)
            as_written = reading == hour
            if at >= now or (as_written and at >= now - NOW_ISH):
                candidates.append(at)
    return min(candidates)


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
