"""Welfare campaigns, from the supervisor's start to the last person's answer: ask by SMS at the rate the account
allows (most vulnerable first), call the silent, send a worker to whoever still does not answer, and turn every
"2" or written answer into a case through the normal intake and triage.

Each step is a tick over the database (`advance_campaigns`): a lost task or a restarted worker loses nothing.
A number has at most one open question (a partial unique index); a person in a second campaign waits, held,
until the first campaign's question to that number is settled.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from helpline.cases import intake
from helpline.cases import services as case_services
from helpline.cases.encryption import phone_index
from helpline.cases.models import Caller, Case, Priority, mask_phone
from helpline.welfare import sending, texts, visits
from helpline.welfare.models import (
    MAX_WAIT_MINUTES,
    QUESTION_OPEN,
    Campaign,
    CampaignStatus,
    CheckState,
    Need,
    VisitStatus,
    VisitTask,
    VulnerablePerson,
    WelfareCheck,
)
from helpline.welfare.replies import Reading, asks_for_help_again, read_key_press, read_reply
from helpline.welfare.selectors import people_for
from triage.services import queue_for_text

logger = logging.getLogger(__name__)

# After a transient send failure (network, 5xx, 429) the question is tried again this much later...
RETRY_AFTER = dt.timedelta(seconds=30)
# ...for this long while other questions get out; then the person is called instead. An SMS that kept failing was
# retried for good, in silence, and the person was never called or visited: the call and the visit only follow a
# question that went out. While the provider takes nothing at all, the questions wait for it.
GIVE_UP_ON_SMS_AFTER = dt.timedelta(minutes=10)
# States waiting for the person (not yet settled) once asked.
AWAITING_ANSWER = (CheckState.ASKED, CheckState.CALLED, CheckState.VISIT_PENDING)


def urgency_of(person: VulnerablePerson, this_year: int) -> int:
    """Lower is asked first: power-dependent devices and dialysis, then people living alone, then everyone else;
    within each group the oldest first (an unknown age after the known ones)."""
    needs = set(person.needs or [])
    group = 0 if needs & {Need.POWER_DEVICE, Need.DIALYSIS} else 1 if Need.LIVES_ALONE in needs else 2
    age = this_year - person.birth_year if person.birth_year else -1
    return group * 1000 + (200 - min(age, 199))


# --- Starting ---------------------------------------------------------------------------------------------------

# An advisory lock's number (any 64-bit value no other lock uses): see `_take_the_turn_to_open_questions`.
OPEN_QUESTIONS_TURN = 0x77656C6661726531  # "welfare1"


def _take_the_turn_to_open_questions(*, wait: bool = True) -> bool:
    """Starting a campaign and releasing held people each read which numbers have an open question and open
    questions for the others. Two at once (two supervisors starting campaigns, a start during the tick) could both
    open one for the same number: the unique index refuses the second, the supervisor's page fails, or the tick
    does. One at a time instead, until the transaction ends. SQLite serialises writers already.

    `wait=False`: take the turn only if it is free; False when someone else holds it."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [OPEN_QUESTIONS_TURN])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [OPEN_QUESTIONS_TURN])
        return cursor.fetchone()[0]


@transaction.atomic
def start_campaign(
    *, title: str, question: str, areas: list[str], needs: list[str], by: AbstractBaseUser | None,
    is_drill: bool = False, call_after_minutes: int = 60, visit_after_minutes: int = 30, question_english: str = "",
) -> Campaign:
    """Create the campaign and one check per person in the chosen areas and/or with the chosen needs, in the
    order they will be asked. A number with an open question elsewhere is held until that one is settled.
    ValueError when a wait is outside 1..MAX_WAIT_MINUTES."""
    for wait in (call_after_minutes, visit_after_minutes):
        if not 1 <= wait <= MAX_WAIT_MINUTES:
            raise ValueError(f"a campaign's wait is 1 to {MAX_WAIT_MINUTES} minutes, not {wait}")
    _take_the_turn_to_open_questions()
    now = timezone.now()
    campaign = Campaign.objects.create(
        title=title, question=question, question_english=question_english.strip(), areas=areas, needs=needs,
        is_drill=is_drill, started_by=by, call_after_minutes=call_after_minutes,
        visit_after_minutes=visit_after_minutes,
    )  # fmt: skip
    # Only what ordering and asking need: every other column of the register is encrypted, and decrypting it for
    # thousands of people would slow the start for nothing.
    chosen = people_for(areas=areas, needs=needs).only("pk", "phone", "needs", "birth_year")
    people = sorted(chosen, key=lambda p: (urgency_of(p, now.year), p.pk))
    # Numbers are compared by their keyed hashes: the numbers themselves are stored encrypted.
    indexes = [phone_index(str(person.phone)) for person in people]
    wanted = sorted(set(indexes))
    for start in range(0, len(wanted), 1000):  # SQLite takes at most 32,766 values in one statement
        _settle_unanswered_questions_of_finished_campaigns(
            Q(phone_index__in=wanted[start : start + 1000], is_drill=is_drill)
        )
    busy = set(
        WelfareCheck.objects.filter(state__in=QUESTION_OPEN, is_drill=is_drill).values_list("phone_index", flat=True)
    )
    checks = []
    for person, index in zip(people, indexes, strict=True):
        phone = str(person.phone)
        held = index in busy
        busy.add(index)
        checks.append(WelfareCheck(
            campaign=campaign, person=person, phone=phone, is_drill=is_drill,  # phone_index: set by bulk_create
            urgency=urgency_of(person, now.year), state=CheckState.HELD if held else CheckState.QUEUED,
        ))  # fmt: skip
    WelfareCheck.objects.bulk_create(checks, batch_size=1000)
    _schedule(list(WelfareCheck.objects.filter(campaign=campaign, state=CheckState.QUEUED).order_by("urgency", "pk")),
              now)  # fmt: skip
    logger.info("welfare campaign %s started: %s people%s", campaign.pk, len(checks), " (drill)" if is_drill else "")
    return campaign


def _schedule(checks: list[WelfareCheck], now: dt.datetime) -> None:
    """Give each check its sending time, one sending interval apart, after everything already waiting to go (all
    campaigns share the account's rate). The last time is the campaign's estimate of when everyone is asked."""
    gap = sending.seconds_between_sends()
    for is_drill in (False, True):  # a drill goes to the drill backend: it never holds up a real campaign
        group = [check for check in checks if check.is_drill == is_drill]
        if not group:
            continue
        waiting = WelfareCheck.objects.filter(state=CheckState.QUEUED, send_at__isnull=False, is_drill=is_drill)
        last = waiting.aggregate(Max("send_at"))["send_at__max"]
        start = max(now, last + gap) if last else now
        for index, check in enumerate(group):
            check.send_at = start + gap * index
        WelfareCheck.objects.bulk_update(group, ["send_at"], batch_size=1000)


def finish_campaign(campaign: Campaign, *, by: AbstractBaseUser | None = None) -> Campaign:
    """Stop asking: people not yet asked or held are left as they are (the tally shows them), nobody new is
    asked, called or visited for this campaign; visits already sent still run. Records who finished it."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != CampaignStatus.FINISHED:
            locked.status, locked.finished_at, locked.finished_by = CampaignStatus.FINISHED, timezone.now(), by
            locked.save(update_fields=["status", "finished_at", "finished_by"])
            silent = WelfareCheck.objects.filter(campaign=locked, state__in=[CheckState.ASKED, CheckState.CALLED])
            # Queued and held numbers are freed for other campaigns.
            not_asked = WelfareCheck.objects.filter(
                campaign=locked, state__in=[CheckState.QUEUED, CheckState.HELD]
            ).update(state=CheckState.NOT_ASKED, send_at=None)
            logger.info("welfare campaign %s finished by user %s: %s asked and silent will not be called or visited, "
                        "%s never asked", locked.pk, getattr(by, "pk", None), silent.count(), not_asked)  # fmt: skip
    return locked


# --- The tick ---------------------------------------------------------------------------------------------------


@dataclass
class TickResult:
    asked: int = 0
    called: int = 0
    visits: int = 0
    released: int = 0
    escalated: int = 0


def advance_campaigns(now: dt.datetime | None = None, *, limit: int = 500) -> TickResult:
    """One idempotent pass: ask who is due, call who did not answer, send a visit to who still did not, release
    numbers whose earlier question is settled, run due visit escalations, and close finished campaigns."""
    now = now or timezone.now()
    result = TickResult()
    if not _anything_to_advance(now):
        return result
    result.asked = send_due_questions(now, limit=limit)
    result.called = call_the_silent(now, limit=limit)
    result.visits = visit_the_silent(now, limit=limit)
    if result.called or result.visits:
        logger.info("welfare checks without an answer: %s people called after the SMS, %s visits opened after the call",
                    result.called, result.visits)  # fmt: skip
    result.released = release_held(now)
    result.escalated = visits.run_due_visit_escalations(now)
    settle_visits_without_outcome(now)
    close_settled_campaigns(now)
    return result


# A visit someone took is expected to be reported within this. Taken and never reported, its question stayed open
# for good: the person's number was held back from every later campaign, never asked in the next flood.
VISIT_OUTCOME_EXPECTED_WITHIN = dt.timedelta(hours=12)


def settle_visits_without_outcome(now: dt.datetime, *, limit: int = 100) -> int:
    """Questions whose visit was taken VISIT_OUTCOME_EXPECTED_WITHIN ago with no outcome: settled as unreachable,
    saying why, so later campaigns ask the number again. The visit stays the worker's, whose outcome, when they
    record it, still settles the question. Returns how many."""
    stale = VisitTask.objects.filter(_taken_without_outcome(now)).values_list("welfare_check_id", flat=True)
    settled = 0
    for check_id in list(stale[:limit]):
        with transaction.atomic():
            check = WelfareCheck.objects.select_for_update().filter(pk=check_id).first()
            if check is None or check.state != CheckState.VISIT_PENDING:
                continue
            check.state = CheckState.UNREACHABLE
            hours = VISIT_OUTCOME_EXPECTED_WITHIN // dt.timedelta(hours=1)
            check.failure = f"the visit was taken, and no outcome recorded within {hours} hours"
            check.save(update_fields=["state", "failure", "updated_at"])
            transaction.on_commit(lambda: release_held(timezone.now()))
            settled += 1
    if settled:
        logger.warning("%s welfare visits taken without an outcome recorded in time; their questions settled",
                       settled)  # fmt: skip
    return settled


def _taken_without_outcome(now: dt.datetime) -> Q:
    """Visits taken VISIT_OUTCOME_EXPECTED_WITHIN ago whose question still waits for their outcome."""
    return Q(
        status=VisitStatus.TAKEN, taken_at__lt=now - VISIT_OUTCOME_EXPECTED_WITHIN,
        welfare_check__state=CheckState.VISIT_PENDING,
    )  # fmt: skip


def _anything_to_advance(now: dt.datetime) -> bool:
    """Every step works on running campaigns, but for the escalations of visits they sent. The tick runs every
    second, and most seconds of a year have neither: one or two reads then, not seventeen statements."""
    escalation_due = Q(status=VisitStatus.WAITING, escalation_due_at__lte=now)
    return (
        Campaign.objects.filter(status=CampaignStatus.RUNNING).exists()
        or VisitTask.objects.filter(escalation_due | _taken_without_outcome(now)).exists()
    )


def _claim(query: Q, order: tuple[str, ...], limit: int) -> list[WelfareCheck]:
    return list(
        WelfareCheck.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("person", "campaign")
        .filter(query, campaign__status=CampaignStatus.RUNNING)
        .order_by(*order)[:limit]
    )


def send_due_questions(now: dt.datetime, *, limit: int = 500) -> int:
    """Send each question whose time has come. The row is claimed (asked) in a short transaction, the provider is
    called outside it, and the outcome recorded: a wrong number is marked for the register to be corrected.
    From the helpline's own number no more are claimed than a tick can send (sending.may_ask_now)."""
    real = _ask_due(now, is_drill=False, limit=sending.questions_a_tick_can_send(limit))
    return real + _ask_due(now, is_drill=True, limit=limit)


def ask_due_drill_questions(now: dt.datetime, *, limit: int) -> int:
    """A drill's simulated clock asks drills' questions only: advancing every campaign to it put real people's
    questions, calls and visits into the drill's future, late by its length."""
    return _ask_due(now, is_drill=True, limit=limit)


def _ask_due(now: dt.datetime, *, is_drill: bool, limit: int) -> int:
    with transaction.atomic():
        due = _claim(Q(state=CheckState.QUEUED, send_at__lte=now, is_drill=is_drill), ("send_at", "pk"), limit)
        # Who texted STOP was told they would get no more SMS from us: no question by SMS, the call comes at once.
        opted_out = set(
            Caller.objects.filter(phone_index__in=[check.phone_index for check in due], has_opted_out=True)
            .values_list("phone_index", flat=True)
        )  # fmt: skip
        for check in due:
            check.state, check.asked_at = CheckState.ASKED, now
            wait = 0 if check.phone_index in opted_out else check.campaign.call_after_minutes
            check.call_due_at = now + dt.timedelta(minutes=wait)
        WelfareCheck.objects.bulk_update(due, ["state", "asked_at", "call_due_at"])
    asking = [check for check in due if check.phone_index not in opted_out]
    for position, check in enumerate(asking):
        if not sending.may_ask_now(is_drill=is_drill):
            # The second is taken (by the outbox, or a staff alert holds the line): this question and the ones
            # after it go back to the queue as they were, first in line at the next tick.
            _not_asked_yet(asking[position:])
            return len(due) - len(asking) + position
        person = check.person
        body = texts.question_sms(check.campaign, language=person.language, script=person.script)
        result = sending.send_question(check.pk, check.phone, body, is_drill=check.is_drill)
        if result.ok:
            WelfareCheck.objects.filter(pk=check.pk).update(provider_sid=result.provider_sid or None)
        elif result.transient and not _refused_while_others_go_out(check, now):
            logger.warning("welfare check %s (campaign %s): the question could not be sent (%s); tried again soon",
                           check.pk, check.campaign_id, result.error_code or "error")  # fmt: skip
            WelfareCheck.objects.filter(pk=check.pk, state=CheckState.ASKED).update(
                state=CheckState.QUEUED, send_at=now + RETRY_AFTER, asked_at=None, call_due_at=None,
                sms_failing_since=check.sms_failing_since or now,
            )  # fmt: skip
        elif result.transient:
            logger.warning("welfare check %s (campaign %s): the question could not be sent for %s min; calling instead",
                           check.pk, check.campaign_id, int(GIVE_UP_ON_SMS_AFTER.total_seconds() // 60))  # fmt: skip
            WelfareCheck.objects.filter(pk=check.pk, state=CheckState.ASKED).update(
                call_due_at=now, failure=f"SMS not sent ({result.error_code or 'error'}): called instead"[:200]
            )
        else:
            mark_unreachable(check.pk, f"SMS failed ({result.error_code or 'error'})")
    return len(due)


def _not_asked_yet(checks: list[WelfareCheck]) -> None:
    WelfareCheck.objects.filter(pk__in=[check.pk for check in checks], state=CheckState.ASKED).update(
        state=CheckState.QUEUED, asked_at=None, call_due_at=None
    )


def _refused_while_others_go_out(check: WelfareCheck, now: dt.datetime) -> bool:
    """This question has been refused for GIVE_UP_ON_SMS_AFTER while other questions got out meanwhile: something
    about this one. While the provider takes nothing at all (an outage), the question waits: the call would meet
    the same outage, and every person asked in it would get a home visit."""
    since = check.sms_failing_since
    if since is None or since > now - GIVE_UP_ON_SMS_AFTER:
        return False
    return WelfareCheck.objects.filter(asked_at__gte=since, provider_sid__isnull=False).exists()


def call_the_silent(now: dt.datetime, *, limit: int = 500) -> int:
    """Nobody answered the SMS in time: one call that speaks the question and takes a key press. No more real
    calls are claimed than a tick can place (sending.may_call_now)."""
    real = _call_due(now, is_drill=False, limit=sending.calls_a_tick_can_place(limit))
    return real + _call_due(now, is_drill=True, limit=limit)


def _call_due(now: dt.datetime, *, is_drill: bool, limit: int) -> int:
    with transaction.atomic():
        due = _claim(Q(state=CheckState.ASKED, call_due_at__lte=now, is_drill=is_drill), ("call_due_at", "pk"), limit)
        for check in due:
            check.state, check.called_at = CheckState.CALLED, now
            check.visit_due_at = now + dt.timedelta(minutes=check.campaign.visit_after_minutes)
        WelfareCheck.objects.bulk_update(due, ["state", "called_at", "visit_due_at"])
    for position, check in enumerate(due):
        if not sending.may_call_now(is_drill=is_drill):
            # Back to "asked", still due: called at the next tick.
            still_due = [later.pk for later in due[position:]]
            WelfareCheck.objects.filter(pk__in=still_due, state=CheckState.CALLED).update(
                state=CheckState.ASKED, called_at=None, visit_due_at=None
            )
            return position
        spoken = texts.question_spoken(check.campaign, language=check.person.language)
        result = sending.place_call(check.pk, check.phone, spoken, is_drill=check.is_drill)
        if result.ok:
            WelfareCheck.objects.filter(pk=check.pk).update(call_sid=result.provider_sid or None)
        elif not result.transient:
            mark_unreachable(check.pk, f"call failed ({result.error_code or 'error'})")
        # A transient call failure is not retried: the visit follows at visit_due_at anyway.
    return len(due)


def visit_the_silent(now: dt.datetime, *, limit: int = 500) -> int:
    """Still nothing after the call: a visit task for a worker on duty for the person's area."""
    opened = 0
    with transaction.atomic():
        due = _claim(Q(state=CheckState.CALLED, visit_due_at__lte=now), ("visit_due_at", "pk"), limit)
        for check in due:
            with transaction.atomic():
                check.state = CheckState.VISIT_PENDING
                check.save(update_fields=["state", "updated_at"])
                visits.open_visit(check, now, reason="no answer to the SMS or the call")
                opened += 1
    return opened


def _settle_unanswered_questions_of_finished_campaigns(wanted: Q | Exists) -> int:
    """A question a finished campaign asked and nobody answered is settled as unreachable once another campaign
    wants that number (`wanted`: the checks of those numbers, a drill's for a drill, a real campaign's for a real
    one). Left open, it held the person back from every later campaign for good (one open question per number),
    and nothing would ever settle it: a finished campaign's checks are not called or visited. Until then a late
    answer reaches the campaign that asked: a "2" opens a case of at least high priority, linked to the campaign;
    for a day after, so does a late answer to the settled question (`_late_answer_to`). So no campaign's start may
    settle a question it does not ask again (a drill, a campaign in another town).

    A question the tick put back in the queue (its second was taken, or the provider refused it for now) just as a
    supervisor finished the campaign was never asked: it is settled as not asked, as finishing does."""
    finished = Q(campaign__status=CampaignStatus.FINISHED)
    WelfareCheck.objects.filter(finished, state=CheckState.QUEUED).update(
        state=CheckState.NOT_ASKED, send_at=None, updated_at=timezone.now()
    )
    return WelfareCheck.objects.filter(wanted, finished, state__in=[CheckState.ASKED, CheckState.CALLED]).update(
        state=CheckState.UNREACHABLE, failure="no answer before the campaign was finished", updated_at=timezone.now()
    )


def release_held(now: dt.datetime) -> int:
    """A held person whose number has no open question any more is scheduled: the earlier campaign is settled."""
    waiting = WelfareCheck.objects.filter(state=CheckState.HELD, campaign__status=CampaignStatus.RUNNING)
    if not waiting.exists():
        return 0
    with transaction.atomic():
        # A campaign starting (seconds for thousands of people) or another release holds the turn: the next tick
        # releases them. Waiting here, for the turn or for the rows a start has settled, would keep an answer's
        # webhook (release runs after each answer) waiting.
        if not _take_the_turn_to_open_questions(wait=False):
            return 0
        _settle_unanswered_questions_of_finished_campaigns(
            Exists(waiting.filter(phone_index=OuterRef("phone_index"), is_drill=OuterRef("is_drill")))
        )
        held = list(
            WelfareCheck.objects.select_for_update(skip_locked=True)
            .filter(state=CheckState.HELD, campaign__status=CampaignStatus.RUNNING)
            .order_by("campaign__started_at", "urgency", "pk")
        )
        if not held:
            return 0
        busy = set(
            WelfareCheck.objects.filter(state__in=QUESTION_OPEN, phone_index__in={c.phone_index for c in held})
            .values_list("phone_index", "is_drill")
        )
        released = []
        for check in held:
            if (check.phone_index, check.is_drill) in busy:
                continue
            busy.add((check.phone_index, check.is_drill))
            check.state = CheckState.QUEUED
            released.append(check)
        WelfareCheck.objects.bulk_update(released, ["state"])
        _schedule(released, now)
    return len(released)


def close_settled_campaigns(now: dt.datetime) -> int:
    waiting = WelfareCheck.objects.filter(campaign=OuterRef("pk"), state__in=[*QUESTION_OPEN, CheckState.HELD])
    running = Campaign.objects.filter(status=CampaignStatus.RUNNING).exclude(Exists(waiting))
    return running.update(status=CampaignStatus.FINISHED, finished_at=now)


# --- Outcomes ---------------------------------------------------------------------------------------------------


def mark_unreachable(check_id: int, why: str) -> None:
    """A wrong number or a failed delivery: the check is settled as unreachable, the register entry is marked for
    correction, and (a person nobody can reach in a disaster is the one most at risk) a worker is sent to visit."""
    with transaction.atomic():
        check = WelfareCheck.objects.select_for_update().select_related("person").filter(pk=check_id).first()
        if check is None or check.state not in AWAITING_ANSWER:
            return
        check.state, check.failure = CheckState.UNREACHABLE, why[:200]
        check.save(update_fields=["state", "failure", "updated_at"])
        VulnerablePerson.objects.filter(pk=check.person_id).update(number_needs_checking=True, number_problem=why[:200])
        if not _has_visit(check):
            visits.open_visit(check, timezone.now(), reason=why)
    logger.warning("welfare check %s: %s (%s)", check_id, why, mask_phone(check.phone))


def _has_visit(check: WelfareCheck) -> bool:
    return visits.VisitTask.objects.filter(welfare_check=check).exists()


# How long a settled question still takes an answer: one settled as unreachable without an answer (a failed SMS,
# its finished campaign's number asked again), and a "2" to one answered "safe" (things change: the water rises).
# Either opens the campaign's case of at least high priority, not an ordinary SMS read from the text "2".
LATE_ANSWERS_TAKEN_FOR = dt.timedelta(days=1)


def _late_answer_to(index: str, *, is_drill: bool, settled_since: dt.datetime | None) -> Q:
    """Settled questions of this number that may take a late answer; `settled_since` None: whenever settled."""
    unanswered = Q(state=CheckState.UNREACHABLE, answered_at__isnull=True)
    answered_safe = Q(state=CheckState.SAFE)
    if settled_since is not None:
        unanswered &= Q(updated_at__gte=settled_since)
        answered_safe &= Q(answered_at__gte=settled_since)
    return Q(phone_index=index, is_drill=is_drill) & (unanswered | answered_safe)


def _open_check_for(phone_e164: str, *, is_drill: bool) -> WelfareCheck | None:
    """The number's open question, else the one most recently settled as unreachable (`_late_answer_to`)."""
    index = phone_index(phone_e164)
    checks = WelfareCheck.objects.select_for_update(of=("self",)).select_related("person", "campaign")
    open_question = checks.filter(phone_index=index, is_drill=is_drill, state__in=AWAITING_ANSWER).first()
    late = _late_answer_to(index, is_drill=is_drill, settled_since=timezone.now() - LATE_ANSWERS_TAKEN_FOR)
    return open_question or checks.filter(late).order_by("-updated_at").first()


def welfare_business_with(phone_e164: str, *, message_sid: str | None, is_drill: bool = False) -> QuerySet:
    """The welfare checks an SMS from this number may answer (an open question to it, or the check this very
    message answered before, when its webhook is retried), as a query: nearly always none."""
    return welfare_business_with_phone_index(phone_index(phone_e164), message_sid=message_sid, is_drill=is_drill)


def welfare_business_with_phone_index(index: str, *, message_sid: str | None, is_drill: bool = False) -> QuerySet:
    """`welfare_business_with`, by the number's blind index."""
    open_question = Q(phone_index=index, is_drill=is_drill, state__in=AWAITING_ANSWER)
    answered_before = Q(reply_sid=message_sid) if message_sid else Q(pk__in=[])
    # Without the day's limit: every citizen SMS asks this in a read compiled once a process, which would keep the
    # first call's time for good. An SMS from a person on the register who once answered then goes through
    # `answer_welfare_reply` (a short transaction, two locking reads), which applies the day.
    late_answer = _late_answer_to(index, is_drill=is_drill, settled_since=None)
    return WelfareCheck.objects.filter(open_question | late_answer | answered_before).values("pk")[:1]


def answer_welfare_reply(
    phone_e164: str, body: str, *, message_sid: str | None = None, is_drill: bool = False,
    reserved_reference: str | None = None,
) -> str | None:
    """The SMS to send back when this number has an open welfare question, None otherwise (normal intake then
    goes on). "1" or its words settle the person as safe; "2" or any other text becomes a case through the
    normal intake and triage, at least high priority, linked to the campaign and the register entry here. A bare
    "Da" is asked again (1 or 2), except from the spool, whose citizen was already given a reference: a person
    reads that one, as a case.
    A retried webhook (same MessageSid) is answered as the first time and stores nothing again. A spooled answer
    brings the reference it was answered with during the outage (`reserved_reference`): its case takes it."""
    phone = intake.normalise_phone(phone_e164)
    if phone is None or intake.sms_kind_of(body) == "opt_out":
        # STOP is the person's opt-out, for normal intake to record; their check goes on to the call and the visit.
        return None
    # Nearly every citizen SMS has no welfare question behind it: one unlocked read lets those go straight to
    # intake, without the transaction and the locking read below.
    if not welfare_business_with(phone, message_sid=message_sid, is_drill=is_drill).exists():
        return None
    with transaction.atomic():
        if message_sid:
            earlier = WelfareCheck.objects.select_related("person", "case").filter(reply_sid=message_sid).first()
            if earlier is not None:
                return _reply_text(earlier)
        check = _open_check_for(phone, is_drill=is_drill)
        if check is None:
            return None
        if check.state == CheckState.SAFE and not asks_for_help_again(body):
            return None  # after "I am safe", words are an ordinary message; only a "2" asks the campaign again
        reading = read_reply(body)
        if reading == Reading.UNCLEAR and reserved_reference is None:
            _note_unclear_answer(check)
            return texts.answer_with_a_digit(language=check.person.language, script=check.person.script)
        sid = message_sid or f"welfare-{check.pk}-{uuid.uuid4().hex[:12]}"
        if reading == Reading.SAFE:
            _settle(check, CheckState.SAFE, via="sms", reply_sid=sid)
        else:
            stored = intake.record_inbound_sms(
                message_sid=sid, from_number=phone, body=body, is_drill=check.is_drill,
                known_language=check.person.language, known_script=check.person.script,
                triage_queue=queue_for_text(body),  # "voda ulazi, djed ne diše" goes before the calm backlog
                reserved_reference=reserved_reference,
            )  # fmt: skip
            case = stored.case
            _raise_to_high(case, check, "answered 2" if reading == Reading.HELP else "answered in words")
            _settle(check, CheckState.NEEDS_HELP, via="sms", reply_sid=sid, case=case)
        return _reply_text(check)


# A person who wrote a bare "Da" has the phone in hand: the call, where one key press answers, follows soon.
CALL_AFTER_UNCLEAR_ANSWER = dt.timedelta(minutes=10)


def _note_unclear_answer(check: WelfareCheck) -> None:
    """Nothing is settled: the question stays open and the visit follows on time if no digit comes. The answer
    is on the tally, and a call not yet made comes within minutes instead of at the end of the wait."""
    now = timezone.now()
    check.unclear_answer_at = now
    fields = ["unclear_answer_at", "updated_at"]
    soon = now + CALL_AFTER_UNCLEAR_ANSWER
    if check.state == CheckState.ASKED and (check.call_due_at is None or check.call_due_at > soon):
        check.call_due_at = soon
        fields.append("call_due_at")
    check.save(update_fields=fields)


def record_key_press(check_id: int, digits: str, *, call_sid: str) -> str | None:
    """The person pressed a key on the welfare call: 1 safe, 2 a case (as a call, through the normal intake).
    Returns what to say back, or None when the key means nothing (the question is asked again)."""
    reading = read_key_press(digits)
    if reading is None:
        return None
    with transaction.atomic():
        check = (
            WelfareCheck.objects.select_for_update(of=("self",))
            .select_related("person", "case")
            .filter(pk=check_id)
            .first()
        )
        if check is None:
            return None
        # Settled while the call rang (a failed SMS, another campaign's start, a "1" by SMS): the person is on the
        # line now, and a "2" must reach someone, not be thanked for and dropped.
        unanswered = check.state == CheckState.UNREACHABLE and check.answered_at is None
        safe_until_now = check.state == CheckState.SAFE and reading != Reading.SAFE
        if check.state in AWAITING_ANSWER or unanswered or safe_until_now:
            if reading == Reading.SAFE:
                _settle(check, CheckState.SAFE, via="voice")
            else:
                case = intake.record_incoming_call(
                    call_sid=f"{call_sid}:welfare", from_number=check.phone, is_drill=check.is_drill,
                    known_language=check.person.language, known_script=check.person.script,
                )  # fmt: skip
                _raise_to_high(case, check, "pressed 2 on the welfare call")
                _settle(check, CheckState.NEEDS_HELP, via="voice", case=case)
        return _reply_text(check, spoken=True)


def record_question_delivery(*, check_id: int, provider_sid: str, status: str, error_code: str = "") -> None:
    """Twilio's status callback for a welfare question. Twilio tells a number that cannot take an SMS (switched
    off for good, a landline, unknown to the carrier) only here, after it accepted the message: the check is then
    unreachable at once, and the visit is opened now instead of after an hour's wait for an answer that cannot
    come. The SID must be the one this check sent."""
    if status not in ("undelivered", "failed"):
        return
    if WelfareCheck.objects.filter(pk=check_id, provider_sid=provider_sid).exists():
        mark_unreachable(check_id, f"SMS {status} ({error_code or 'no code'})")


def record_call_outcome(check_id: int, call_status: str) -> None:
    """Twilio's final status for the welfare call: a number that does not exist (failed) is unreachable; busy or
    no answer leaves the person to the visit that follows."""
    if call_status == "failed":
        mark_unreachable(check_id, "call failed: the number may be wrong")


def _raise_to_high(case: Case, check: WelfareCheck, why: str) -> None:
    """A welfare answer asking for help is at least high priority; triage, which never lowers a priority, still
    reads the text and may raise it to critical, and assigns the case as for any contact."""
    reason = f"welfare check (campaign {check.campaign_id}): {why}"
    case_services.record_triage(case, priority=Priority.HIGH, category=case.category, reasons=[reason],
                                up_to_message_id=None, read_all_written=False)  # fmt: skip


def _settle(
    check: WelfareCheck, state: str, *, via: str, reply_sid: str | None = None, case: Case | None = None
) -> None:
    now = timezone.now()
    check.state, check.answered_at, check.answered_via = state, now, via
    # The first answer's SID stays (a "2" after a "1"): a retried webhook of the "1" then still finds its check.
    check.reply_sid = check.reply_sid or reply_sid
    check.case = case or check.case
    check.save(update_fields=["state", "answered_at", "answered_via", "reply_sid", "case", "updated_at"])
    if state == CheckState.SAFE:  # nobody needs to go; a late "2" keeps the visit already on its way
        visits.close_visit_answered(check, now)
    # The earlier question is settled: a campaign waiting for this number may ask now.
    transaction.on_commit(lambda: release_held(timezone.now()))


def _reply_text(check: WelfareCheck, *, spoken: bool = False) -> str:
    person = check.person
    script = "latin" if spoken else person.script
    if check.state == CheckState.SAFE:
        return texts.thanks_safe(language=person.language, script=script)
    reference = check.case.reference if check.case_id else ""
    return texts.help_coming(reference, language=person.language, script=script)


def record_visit_outcome(check: WelfareCheck, *, is_safe: bool, note: str, by: AbstractBaseUser) -> WelfareCheck:
    """The worker who has the visit reports what they found: the person is safe or needs help (the worker is with
    them). Raises visits.VisitNotYours for anyone else but a supervisor."""
    with transaction.atomic():
        locked = WelfareCheck.objects.select_for_update().get(pk=check.pk)
        task = VisitTask.objects.select_for_update().filter(welfare_check=locked).first()
        if task is not None:
            visits.check_may(task, by, recording_outcome=True)
        visits.finish_visit(locked, note=note, by=by)
        if locked.state in (*AWAITING_ANSWER, CheckState.UNREACHABLE):
            locked.state = CheckState.SAFE if is_safe else CheckState.NEEDS_HELP
            locked.answered_at, locked.answered_via = timezone.now(), "visit"
            locked.save(update_fields=["state", "answered_at", "answered_via", "updated_at"])
        VulnerablePerson.objects.filter(pk=locked.person_id).update(last_checked_by=by, last_checked_at=timezone.now())
        transaction.on_commit(lambda: release_held(timezone.now()))
    return locked

