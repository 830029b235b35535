"""Crisis events: a supervisor declares one ("Poplava Maglaj"), contacts that name its places or keywords are
grouped into it in the worker's triage step (never on the request path), each grouped citizen gets the event's
automatic answer once, and the whole group can be answered with one broadcast, once per citizen however often the
button is pressed.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone, translation
from django.utils.translation import gettext

from helpline.cases import selectors as case_selectors
from helpline.cases import services as case_services
from helpline.cases.dispatch import NOTIFICATIONS_QUEUE, enqueue_after_commit
from helpline.cases.kept_reads import kept_for_a_second
from helpline.cases.language import latin_to_cyrillic
from helpline.cases.models import OPEN_STATUSES, Case, Channel, Direction, EventKind, Script
from helpline.cases.selectors import by_urgency
from notifications.models import (
    BroadcastRecipient,
    CrisisBroadcast,
    CrisisContact,
    CrisisEvent,
    DeliveryStatus,
    Notification,
    NotificationKind,
)
from notifications.outbox import queue_notification
from triage.normalise import fold

logger = logging.getLogger(__name__)

BROADCAST_TASK = "notifications.tasks.send_crisis_broadcast"
_SEPARATORS = re.compile(r"[\n,;]+")


def _terms(text: str) -> list[str]:
    """One folded term per line or comma: "Maglaj, Novi Šeher" → ["maglaj", "novi seher"]."""
    return [" ".join(fold(term).split()) for term in _SEPARATORS.split(text or "") if term.strip()]


def _for_matching(text: str) -> str:
    """Folded (Cyrillic as Latin, no diacritics), and "dj" as "d": people type đ as either."""
    return " ".join(fold(text).replace("dj", "d").split())


SHORT_TERM = 4  # letters: a one-word term this short must be the whole word ("Bare" is not "barem")


def _stem(word: str) -> str:
    """A word without its last vowel: Bosnian case endings change it (Tuzla, u Tuzli; Novi, u Novom)."""
    return word[:-1] if len(word) > 2 and word[-1] in "aeiou" else word


def _mentions(text: str, term: str) -> bool:
    """Whether a text (as _for_matching gives it) names a term, in any case ending, simply: a one-word term of
    up to SHORT_TERM letters must be a whole word; a longer one is its stem starting a word ("poplav" finds
    "poplave", "tuzl" finds "u Tuzli"); a name of several words needs each word's stem, in order and next to each
    other ("u Novom Šeheru" is "Novi Šeher"; "Novi auto" or "Stari Šeher" are not), words of one or two letters
    ("u", "na") as they are."""
    words = _for_matching(term).split()
    if not words:
        return False
    if len(words) == 1 and len(words[0]) <= SHORT_TERM:
        pattern = rf"\b{re.escape(words[0])}\b"
    else:
        pattern = r"\b" + r"\W+".join(
            re.escape(word) if len(word) <= 2 else rf"{re.escape(_stem(word))}\w*" for word in words
        ) + r"\b"
    return re.search(pattern, text) is not None


@dataclass(frozen=True)
class EventMatch:
    event: CrisisEvent
    matched: str


def matching_events(text: str, category: str, events: Sequence[CrisisEvent]) -> list[EventMatch]:
    """The events a contact belongs to: its text names one of the event's places or keywords (Latin or Cyrillic,
    with or without diacritics, any ending), and, when the event lists triage categories, its category is one."""
    folded = _for_matching(text)
    found = []
    for event in events:
        if event.categories and category not in event.categories:
            continue
        hits = [term for term in _terms(event.places) + _terms(event.keywords) if _mentions(folded, term)]
        if hits:
            found.append(EventMatch(event, ", ".join(hits)[:200]))
    return found


# --- Declaring and ending -------------------------------------------------------------------------------------


def declare_event(
    *, by: AbstractBaseUser, title: str, keywords: str = "", places: str = "", categories: list[str] | None = None,
    answer: str, answer_cyrillic: str = "", answer_english: str = "",
) -> CrisisEvent:
    """A clear error, nothing stored, when there is nothing to group by or nothing to say, or when the answer would
    not fit in one SMS."""
    title, keywords, places = _text(title), _text(keywords), _text(places)
    answer, answer_cyrillic, answer_english = _text(answer), _text(answer_cyrillic), _text(answer_english)
    if not title:
        raise ValueError(gettext("Give the event a title."))
    if not _terms(keywords) and not _terms(places):
        raise ValueError(gettext("Give at least one place or keyword, so contacts can be grouped."))
    if not answer:
        raise ValueError(gettext("Write the automatic answer for citizens."))
    _refuse_what_does_not_fit_in_an_sms(answer, answer_cyrillic, answer_english)
    with transaction.atomic():
        _take_the_turn_to_declare()
        _refuse_an_event_already_active(title[:120], places)
        event = CrisisEvent.objects.create(
            title=title[:120], keywords=keywords.strip(), places=places.strip(), categories=list(categories or []),
            answer=answer, answer_cyrillic=answer_cyrillic, answer_english=answer_english, declared_by=by,
        )  # fmt: skip
    logger.warning("crisis event declared: %s", event.title)
    return event


# An advisory lock's number (any 64-bit value no other lock uses): see `_take_the_turn_to_declare`.
DECLARING_TURN = 0x6372697369733031  # "crisis01"


def _take_the_turn_to_declare() -> None:
    """Declarations one at a time, until the transaction ends: two at once (a double-click, two supervisors) would
    each find no such event active and both be stored. SQLite serialises writers already."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DECLARING_TURN])


def _refuse_an_event_already_active(title: str, places: str) -> None:
    """The same flood declared twice (a double-click, a second supervisor) would answer each citizen twice. The
    same means the same title and the same places, in any order, case, spacing or diacritics."""
    same = (" ".join(fold(title).split()), frozenset(_terms(places)))
    for event in CrisisEvent.objects.filter(ended_at__isnull=True):
        if (" ".join(fold(event.title).split()), frozenset(_terms(event.places))) == same:
            raise ValueError(
                gettext("The event %(title)s is already active with these places: open it instead.")
                % {"title": event.title}
            )


def _text(value: str) -> str:
    """A supervisor's text as stored: trimmed, without NUL characters (PostgreSQL refuses them, with a 500)."""
    return (value or "").replace("\x00", "").strip()


def _refuse_what_does_not_fit_in_an_sms(latin: str, cyrillic: str = "", english: str = "") -> None:
    """The text as each citizen will get it (the helpline's name and the emergency numbers added, in each
    language and script) must fit in one SMS: Twilio refuses a longer one, for every citizen at once."""
    longest = max(
        len(for_citizen(Case(language=language, script=script), latin, cyrillic, english))
        for language in ("bs", "en") for script in (Script.LATIN, Script.CYRILLIC)
    )  # fmt: skip
    if longest > settings.SMS_MAX_LENGTH:
        raise ValueError(
            gettext("The text is too long for one SMS: shorten it by %(count)s characters.")
            % {"count": longest - settings.SMS_MAX_LENGTH}
        )


def end_event(event: CrisisEvent, *, by: AbstractBaseUser) -> CrisisEvent:
    """No more grouping, and nothing more sent: its answers and broadcasts still in the outbox are cancelled when
    their turn comes (outbox._why_not_send), and a running broadcast stops. The board and its broadcasts stay."""
    ended = CrisisEvent.objects.filter(pk=event.pk, ended_at__isnull=True).update(ended_at=timezone.now(), ended_by=by)
    active_events.forget()  # an UPDATE sends no signal
    if ended:
        logger.info("crisis event %s ended by user %s", event.pk, getattr(by, "pk", None))
    event.refresh_from_db()
    return event


@kept_for_a_second(CrisisEvent)
def active_events() -> tuple[CrisisEvent, ...]:
    """The events contacts are grouped into, asked for every triage: seen at once in the process that declared or
    ended one, within a second in the others."""
    return tuple(CrisisEvent.objects.filter(ended_at__isnull=True).order_by("pk"))


# --- What citizens read ---------------------------------------------------------------------------------------


def for_citizen(case: Case, latin: str, cyrillic: str = "", english: str = "") -> str:
    """The supervisor's words in the citizen's language and script (English when they wrote in English and the
    supervisor gave an English text), followed by the emergency numbers in their language."""
    with translation.override(case.language or settings.LANGUAGE_CODE):
        numbers = gettext(
            "If you are in immediate danger, call the police on %(police)s or an ambulance on %(ambulance)s."
        ) % {"helpline": settings.HELPLINE_NAME, **settings.EMERGENCY_NUMBERS}
    if case.language == "en":  # never transliterated, whatever script the citizen also typed
        return f"{settings.HELPLINE_NAME}: {(english.strip() or latin.strip())} {numbers}"
    text = f"{settings.HELPLINE_NAME}: {latin.strip()} {numbers}"
    if case.script == Script.CYRILLIC:
        return f"{latin_to_cyrillic(settings.HELPLINE_NAME)}: {cyrillic.strip()} {latin_to_cyrillic(numbers)}" \
            if cyrillic.strip() else latin_to_cyrillic(text)
    return text


def _citizen(case: Case) -> str:
    """One citizen, however many cases: by the blind index of their number (a caller's, or the one a web form
    gave), else the case. By caller alone, someone who texted and also wrote through the form, or wrote twice,
    was several citizens: the same reply reached them three times, and the figures counted them three times."""
    index = _citizen_number_index(case)
    return f"phone:{index}" if index else f"case:{case.pk}"


def _citizen_number(case: Case) -> str:
    return str(case.caller.phone) if case.caller_id else str(case.contact_phone or "")


def _citizen_number_index(case: Case) -> str:
    return case.caller.phone_index if case.caller_id else case.contact_phone_index


def _why_not_reach(case: Case) -> str:
    """Why the citizen gets nothing through this case. A call or SMS case is answered by SMS alone, so a withheld
    number, a case whose citizen may not be texted (a caller who never said SMS is safe, a STOP), or a number that
    may not be (a STOP, or "texts are not safe" on any of its cases) gets nothing; a web case still has its status
    page."""
    if case.channel == Channel.WEB:
        return ""
    if not _citizen_number(case):
        return "no number to text"
    return case_selectors.why_the_case_may_not_be_texted(case) or case_selectors.why_the_number_may_not_be_texted(
        _citizen_number_index(case)
    )


def _may_take_an_sms(case: Case) -> bool:
    """What the case itself says (the number's other cases are asked in `_reply`): it has a number, and the one
    rule of citizen SMS allows it (texted us, or said SMS is safe)."""
    return bool(_citizen_number(case)) and not case_selectors.why_the_case_may_not_be_texted(case)


def _reply(case: Case, text: str, *, key: str, kind: str, by: AbstractBaseUser | None) -> None:
    """A message on the case the citizen can read (their status page), and an SMS when the case came by phone or
    the citizen said SMS is safe, and nothing the number's other cases say forbids it (a STOP, "texts are not
    safe"); the outbox checks all of that again right before sending."""
    number = _citizen_number(case)
    by_sms = _may_take_an_sms(case) and not case_selectors.why_the_number_may_not_be_texted(
        _citizen_number_index(case)
    )
    if not by_sms:
        case_services.record_reply(case, text, by=by, channel=Channel.WEB)
        return
    notification = queue_notification(key=key, to_number=number, body=text, kind=kind, case=case)
    if notification is None:
        return  # the citizen had it through another case of theirs: no copy on this one, "queued" for ever
    message = case_services.record_reply(
        case, text, by=by, channel=Channel.SMS, delivery_status=DeliveryStatus.QUEUED
    )  # fmt: skip
    notification.message = message
    Notification.objects.filter(pk=notification.pk).update(message=message)


# --- Grouping (the worker's triage step) ----------------------------------------------------------------------


def group_case(case: Case, events: Sequence[CrisisEvent] | None = None) -> list[CrisisContact]:
    """Put a triaged case into the active events it belongs to, and answer the citizen once per event. Runs inside
    the triage transaction, with the case row locked. Costs one query when no event is active, none when the
    caller read the `events` for a batch of cases."""
    events = active_events() if events is None else events
    if not events or case.is_drill:  # a drill rehearses; it never joins, nor counts in, a real event
        return []
    text = "\n".join(
        body for body in case.messages.filter(direction=Direction.INBOUND).values_list("body", flat=True) if body
    )
    grouped = []
    for match in matching_events(text, case.category, events):
        try:
            with transaction.atomic():
                contact = CrisisContact.objects.create(event=match.event, case=case, matched=match.matched)
        except IntegrityError:
            continue  # grouped by an earlier triage of this case (a follow-up)
        grouped.append(contact)
        case_services.record_event(case, EventKind.NOTE, text=f"grouped into crisis event {match.event.title}")
        if not _why_not_reach(case):
            answer = for_citizen(case, match.event.answer, match.event.answer_cyrillic, match.event.answer_english)
            # The outbox reads the event from this key: an answer of an event ended meanwhile is not sent.
            _reply(case, answer, key=f"crisis-answer:{match.event.pk}:{_citizen(case)}",
                   kind=NotificationKind.CRISIS_ANSWER, by=None)  # fmt: skip
    return grouped


# --- Broadcast ------------------------------------------------------------------------------------------------


def start_broadcast(
    event: CrisisEvent, *, by: AbstractBaseUser, token: str, text: str, text_cyrillic: str = "", text_english: str = ""
) -> CrisisBroadcast:
    """Record the broadcast and ring the sender after commit. The same token (a re-click, the form sent again)
    returns the broadcast already started: it is never sent twice."""
    text, text_cyrillic, text_english = _text(text), _text(text_cyrillic), _text(text_english)
    token = _text(token)  # the form's, as sent: a NUL in it was a 500
    if not text:
        raise ValueError(gettext("Write the reply to send."))
    _refuse_what_does_not_fit_in_an_sms(text, text_cyrillic, text_english)
    if not token:
        raise ValueError(gettext("The form has expired: open the event again."))
    with transaction.atomic():
        broadcast, created = CrisisBroadcast.objects.get_or_create(
            token=token[:64],
            defaults={
                "event": event, "text": text, "text_cyrillic": text_cyrillic, "text_english": text_english,
                "sent_by": by,
            },
        )
        if created:
            enqueue_after_commit(BROADCAST_TASK, broadcast.pk, queue=NOTIFICATIONS_QUEUE)
    return broadcast


# A broadcast not finished this long after it was started lost its doorbell (the broker was down or dropped it, a
# worker died mid-way): it is rung again. Delivering twice is harmless (each citizen is claimed once), only slower.
BROADCAST_STALLED_AFTER = dt.timedelta(minutes=2)


def ring_stalled_broadcasts(now: dt.datetime | None = None) -> int:
    """Ring the sender again for broadcasts that should have finished by now; each is rung at most once per
    BROADCAST_STALLED_AFTER (the time it was last rung is kept on it). Returns how many were rung."""
    now = now or timezone.now()
    stalled = CrisisBroadcast.objects.filter(finished_at__isnull=True, rung_at__lt=now - BROADCAST_STALLED_AFTER)
    rung = 0
    for broadcast_id in stalled.values_list("pk", flat=True)[:50]:
        with transaction.atomic():
            if CrisisBroadcast.objects.filter(pk=broadcast_id, finished_at__isnull=True).update(rung_at=now):
                logger.warning("crisis broadcast %s had not finished: its sending is started again", broadcast_id)
                enqueue_after_commit(BROADCAST_TASK, broadcast_id, queue=NOTIFICATIONS_QUEUE)
                rung += 1
    return rung


def deliver_broadcast(broadcast_id: int, *, batch: int = 200) -> int:
    """Reply to every citizen grouped into the event, once each: one per caller (two cases of the same person get
    one message), opted-out callers skipped. Safe to run twice or in two workers at once: each citizen is claimed by
    a unique row in the same transaction as their reply. Returns how many this run reached."""
    broadcast = CrisisBroadcast.objects.select_related("event").filter(pk=broadcast_id).first()
    if broadcast is None:
        return 0
    reached = skipped = 0
    contacts = (
        CrisisContact.objects.filter(event=broadcast.event).select_related("case__caller").order_by("case_id")
    )
    # A citizen is claimed through the first case of theirs that is reached: one that can take an SMS when any
    # can, not a web form without SMS consent that happens to be older. "Can" includes what the number's other
    # cases say: a woman whose form said texts are unsafe, and who then called, is reached on her status page,
    # her one safe channel, not skipped on the call's case.
    textable = {
        _citizen(contact.case) for contact in contacts.iterator()
        if _may_take_an_sms(contact.case)
        and not case_selectors.why_the_number_may_not_be_texted(_citizen_number_index(contact.case))
    }  # fmt: skip
    last_case_id = 0
    while True:
        # An ended event sends nothing more (the outbox also holds back what this run queued before the end).
        if CrisisEvent.objects.filter(pk=broadcast.event_id, ended_at__isnull=False).exists():
            logger.warning("crisis broadcast %s stopped: its event has ended", broadcast.pk)
            break
        chunk = list(contacts.filter(case_id__gt=last_case_id)[:batch])
        if not chunk:
            break
        last_case_id = chunk[-1].case_id
        for contact in chunk:
            case = contact.case
            citizen = _citizen(case)
            if citizen in textable and not _may_take_an_sms(case):
                continue  # another case of theirs in the event can take the SMS, and claims them
            reason = _why_not_reach(case)
            try:
                with transaction.atomic():
                    BroadcastRecipient.objects.create(
                        broadcast=broadcast, citizen=citizen, case=case, skipped_because=reason
                    )
                    if not reason:
                        text = for_citizen(case, broadcast.text, broadcast.text_cyrillic, broadcast.text_english)
                        _reply(case, text,  # the outbox reads the broadcast from the key, as for an answer
                               key=f"crisis-broadcast:{broadcast.pk}:{citizen}",
                               kind=NotificationKind.CRISIS_BROADCAST, by=broadcast.sent_by)  # fmt: skip
            except IntegrityError:
                continue  # this citizen was reached already (an earlier run, another worker, another case of theirs)
            if reason:
                skipped += 1
            else:
                reached += 1
    recipients = BroadcastRecipient.objects.filter(broadcast=broadcast)
    CrisisBroadcast.objects.filter(pk=broadcast.pk).update(
        finished_at=timezone.now(), reached=recipients.filter(skipped_because="").count(),
        skipped=recipients.exclude(skipped_because="").count(),
    )  # fmt: skip
    logger.info("crisis broadcast %s: %s reached, %s skipped", broadcast.pk, reached, skipped)
    return reached


# --- Reads for the event's board ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFigures:
    grouped: int
    open: int
    by_priority: dict[str, int]


def event_cases(event: CrisisEvent):
    """The event's cases, most urgent first (the one urgency order)."""
    return by_urgency(Case.objects.filter(crisis_contacts__event=event)).select_related("assigned_to")


def event_figures(event: CrisisEvent) -> EventFigures:
    cases = Case.objects.filter(crisis_contacts__event=event, is_drill=False)
    by_priority = dict(cases.values_list("priority").annotate(n=Count("pk")))
    return EventFigures(sum(by_priority.values()), cases.filter(status__in=OPEN_STATUSES).count(), by_priority)
