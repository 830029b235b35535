"""Contacts that arrive while the database cannot take them wait in a local spool, and are stored when it returns.

Twilio does not retry an SMS webhook that failed, and a citizen who sees an error page may not write again: a
contact is never answered 500. When storing fails, the intake writes the contact to one file in INTAKE_SPOOL_DIR
(written whole to a temporary file, fsynced, then linked into place, so a reader never sees half a contact, and
never overwritten, so a retried webhook finds its first copy and gets the same reference), and answers as usual.
`replay_spool()` (the beat task, `manage.py replay_intake_spool`, and every worker at start) stores each file
through the ordinary intake, which is idempotent on MessageSid, CallSid and the idempotency key, then deletes it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from helpline.cases import intake, selectors
from helpline.intake import error_pages, services

logger = logging.getLogger(__name__)

SPOOL_FORMAT = 1


@dataclass(frozen=True)
class SpooledContact:
    kind: str  # "sms", "call", "call_language", "voicemail", "call_status", "web", "web_again", "follow_up", or
    # "recovered_sms" and "recovered_call" (helpline.intake.recovery)
    key: str  # what makes a copy of the same contact the same: MessageSid, CallSid, idempotency key, ...
    reference: str  # the reference the citizen was given ("" where none was)
    received_at: str
    payload: dict = field(default_factory=dict)
    path: Path | None = None


def spool_directory() -> Path:
    directory = Path(settings.INTAKE_SPOOL_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # citizens' words: readable by the service only
    return directory


def _file_for(kind: str, key: str) -> Path:
    return spool_directory() / _file_name(kind, key)


def _file_name(kind: str, key: str) -> str:
    # A hash, so no caller-supplied text ever becomes part of a path.
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"


def _read(path: Path) -> SpooledContact | None:
    try:
        entry = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return SpooledContact(
        kind=entry["kind"], key=entry["key"], reference=entry["reference"], received_at=entry["received_at"],
        payload=entry["payload"], path=path,
    )  # fmt: skip


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def spool_contact(kind: str, key: str, payload: dict[str, Any], *, reference: str = "") -> SpooledContact:
    """Keep one contact on disk until the replay stores it; durable when this returns. A contact already spooled
    under the same kind and key is not written again: the first copy (and its reference) is returned."""
    return _spool(kind, key, payload, reference=reference)[0]


def _spool(kind: str, key: str, payload: dict[str, Any], *, reference: str) -> tuple[SpooledContact, bool]:
    """The contact kept, and whether this call wrote it (False: a copy was there first)."""
    path = _file_for(kind, key)
    existing = _read(path)
    if existing is not None:
        return existing, False
    entry = {
        "format": SPOOL_FORMAT, "kind": kind, "key": key, "reference": reference,
        "received_at": timezone.now().isoformat(), "payload": payload,
    }  # fmt: skip
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(json.dumps(entry, ensure_ascii=False).encode())
            stream.flush()
            os.fsync(stream.fileno())
        written = True
        try:
            os.link(temporary, path)  # atomic, and never replaces an existing file
        except FileExistsError:  # a concurrent copy of the contact was linked first: it stays
            written = False
    finally:
        os.unlink(temporary)
    _fsync_directory(path.parent)
    spooled = _read(path)
    if written:
        logger.warning("%s spooled as %s, to be stored by the replay", kind, spooled.reference or "(no reference)")
    return spooled, written


# What a citizen may say again about contacting them when they send the same form again (helpline.cases.intake
# applies a resend's answer where it makes contact safer, and only then).
CONTACT_PREFERENCES = ("safe_to_call", "safe_to_text", "safe_contact_note")


def spool_inquiry(key: str, inquiry: dict[str, Any], *, reference: str) -> tuple[SpooledContact, bool]:
    """Keep a web inquiry: the contact that will answer it, and whether it is new (False: the same form, with the
    same words, was spooled before, and this is a resend). A resend that answers the contact questions otherwise
    ("not safe to call" pressed after the first Send) is kept beside it, to be applied on replay as the healthy
    form applies it; only a safer answer is (`limit_contact`), so a resend is never a way to loosen it."""
    first, is_new = _spool("web", key, inquiry, reference=reference)
    if is_new:
        return first, True
    said_again = {name: inquiry.get(name) for name in CONTACT_PREFERENCES}
    if said_again != {name: first.payload.get(name) for name in CONTACT_PREFERENCES}:
        again_key = f"{key}\x00{json.dumps(said_again, sort_keys=True, ensure_ascii=False)}"
        _spool("web_again", again_key, {**inquiry, "idempotency_key": key}, reference=first.reference)
    return first, False


def key_for(kind: str, key: str, message: str) -> str:
    """The key to spool a contact under: its own, unless a contact spooled under it says something else (the page
    sent again with other words, as the live path tells by IdempotencyKeyReused). Then one made from the key and
    the words, the same for every resend of them, so the second message is kept, not answered as the first."""
    earlier = spooled(kind, key)
    if earlier is None or earlier.payload.get("message", message) == message:
        return key
    return key_and_words(key, message)


def key_and_words(key: str, message: str) -> str:
    """The key of a message sent under a key another message already took (the page rewritten and sent again):
    the same for every resend of these words, so each is stored once (the live form uses it as well)."""
    return hashlib.sha256(f"{key}\x00{message}".encode()).hexdigest()[:32]


def spooled(kind: str, key: str) -> SpooledContact | None:
    return _read(_file_for(kind, key))


def spooled_among(keys: list[str], kinds: tuple[str, ...]) -> set[str]:
    """The keys among `keys` that wait in the spool as a contact of one of these kinds. One listing of the folder,
    not a file opened per key and kind: a look at Twilio's log in a surge asks this of thousands of SIDs."""
    names = {path.name for path in spool_directory().glob("*.json")}
    return {key for key in keys if any(_file_name(kind, key) in names for kind in kinds)}


def pending() -> list[SpooledContact]:
    """Every spooled contact, oldest first (a call before its voicemail, an inquiry before its follow-up)."""
    contacts = [contact for path in spool_directory().glob("*.json") if (contact := _read(path)) is not None]
    return sorted(contacts, key=lambda contact: (contact.received_at, contact.path.name))


# --- Answering although storing failed -------------------------------------------------------------------------


class NothingToSpool(Exception):
    """Raised by a fallback for a request that carried no contact (a page view, a status check)."""


def spool_on_failure(fallback: Callable[..., HttpResponse]):
    """The last resort of an intake view: any exception becomes `fallback(request, ...)`, which spools the contact
    and answers as the view would have. Should the spool fail too (the disk), or the request carry no contact (a
    status check), the answer is a 503: plain for Twilio, which then tries the number's fallback URL; for a
    citizen the public page with the emergency numbers (helpline.intake.error_pages)."""

    def decorate(view):
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except SuspiciousOperation:
                raise  # bad input (a body over the cap), not a storage failure: Django answers it (400/413)
            except Exception as error:
                # The class only: a database error's text can quote the citizen's number or words.
                logger.error("intake %s failed (%s); spooling the contact", request.path, type(error).__name__)
            try:
                return fallback(request, *args, **kwargs)
            except NothingToSpool:
                pass
            except Exception as error:
                logger.critical("could not spool a contact on %s (%s)", request.path, type(error).__name__)
            return error_pages.unavailable(request)  # the public page with the numbers; plain for Twilio

        guarded.spools_its_contact = True  # helpline.project.outage: reached even while sessions cannot be read
        return guarded

    return decorate


# --- Replay ----------------------------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    stored: int = 0
    dropped: int = 0  # follow-ups whose case and code did not match: a 404 had the database been there
    failed: int = 0
    remaining: int = 0
    references: list[str] = field(default_factory=list)


def _replay_sms(contact: SpooledContact) -> str:
    received = services.receive_spooled_sms(**contact.payload, reserved_reference=contact.reference)
    return received.intake.case.reference if received.intake and received.intake.case else ""


def _replay_call(contact: SpooledContact) -> str:
    return intake.record_incoming_call(**contact.payload, reserved_reference=contact.reference).reference


def _replay_call_language(contact: SpooledContact) -> str:
    case = intake.record_call_language(**contact.payload)
    return case.reference if case else ""


def _replay_voicemail(contact: SpooledContact) -> str:
    case = intake.attach_voicemail(**contact.payload)
    return case.reference if case else ""


def _replay_call_status(contact: SpooledContact) -> str:
    case = intake.record_call_status(**contact.payload)
    return case.reference if case else ""


def _store_inquiry(inquiry: dict[str, Any], *, key: str, reference: str) -> str:
    try:
        received = services.receive_web_inquiry(**inquiry, idempotency_key=key, reserved_reference=reference)
    except intake.IdempotencyKeyReused:
        # The key was used before the outage for another message (the page rewritten and sent again): this one is
        # its own inquiry, opened by the code the citizen was given for it (the key's), and stored once however
        # often the replay runs (under the key and its words).
        received = services.receive_web_inquiry(
            **inquiry, idempotency_key=key_and_words(key, inquiry.get("message", "")),
            citizen_token=intake.token_for_idempotency_key(key), reserved_reference=reference,
        )  # fmt: skip
    return received.case.reference


def _replay_web(contact: SpooledContact) -> str:
    return _store_inquiry(contact.payload, key=contact.key, reference=contact.reference)


def _replay_web_again(contact: SpooledContact) -> str:
    # Replayed after its first copy (oldest first), it finds that inquiry and applies what it says that is safer;
    # should the first copy still wait (a bad file), it stores the inquiry, and the first then changes nothing less
    # safe.
    inquiry = dict(contact.payload)
    return _store_inquiry(inquiry, key=inquiry.pop("idempotency_key"), reference=contact.reference)


class _NotTheirCase(Exception):
    pass


def _replay_follow_up(contact: SpooledContact) -> str:
    case = selectors.case_by_reference(contact.reference)
    if case is None or not intake.citizen_token_matches(case, contact.payload["code"]):
        raise _NotTheirCase
    services.receive_follow_up(case, contact.payload["message"], idempotency_key=contact.key)
    return case.reference


def _keep_the_time_it_came(contact: SpooledContact) -> None:
    """A contact stored from the spool is dated when it came in, not when the database came back: a critical SMS
    from 10:05 replayed at 10:35 must not read "0 min ago" to its worker or wait behind newer ones."""
    came_at = parse_datetime(contact.received_at)
    if came_at is None:
        return
    if contact.kind in ("sms", "call"):
        intake.date_contact_as_received(contact.payload.get("message_sid") or contact.payload.get("call_sid"), came_at)
    elif contact.kind == "web":
        intake.date_inquiry_as_received(contact.key, came_at)


def _replay_recovered(contact: SpooledContact) -> str:
    # Imported here: recovery keeps its contacts in this spool, so it imports this module.
    from helpline.intake import recovery

    return recovery.store_recovered(contact.payload)


REPLAYERS: dict[str, Callable[[SpooledContact], str]] = {
    "sms": _replay_sms,
    "call": _replay_call,
    "call_language": _replay_call_language,
    "voicemail": _replay_voicemail,
    "call_status": _replay_call_status,
    "web": _replay_web,
    "web_again": _replay_web_again,
    "follow_up": _replay_follow_up,
    # Found in Twilio's log by helpline.intake.recovery and failed to store there: stored, dated and answered.
    "recovered_sms": _replay_recovered,
    "recovered_call": _replay_recovered,
}


@contextmanager
def _only_replayer() -> Iterator[bool]:
    """One replay at a time on this spool (beat, a worker starting, an operator's command may overlap)."""
    with open(spool_directory() / ".replay.lock", "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _forget(contact: SpooledContact) -> None:
    contact.path.unlink(missing_ok=True)
    _fsync_directory(contact.path.parent)


def replay_spool() -> ReplayResult:
    """Store every spooled contact, oldest first, exactly once; stop at the first sign the database is still
    away. A contact is deleted only after its transaction committed; a crash in between replays it again, and the
    intake's idempotency (MessageSid, CallSid, idempotency key) stores it once."""
    result = ReplayResult()
    with _only_replayer() as is_replayer:
        if not is_replayer:
            return result
        contacts = pending()
        for position, contact in enumerate(contacts):
            try:
                reference = REPLAYERS[contact.kind](contact)
                _keep_the_time_it_came(contact)
            except _NotTheirCase:
                logger.warning("spooled follow-up for %s did not match its case; dropped", contact.reference)
                result.dropped += 1
                _forget(contact)
                continue
            except (OperationalError, InterfaceError) as error:
                logger.warning("database still unavailable (%s); replay stopped", type(error).__name__)
                result.remaining = len(contacts) - position
                return result
            except Exception as error:  # one bad file must not hold back the others; it stays for a later try
                logger.error(
                    "could not store a spooled %s given reference %s (%s); it stays in %s, and /healthz/ says so",
                    contact.kind, contact.reference or "-", type(error).__name__,
                    contact.path.name if contact.path else "-",
                )  # fmt: skip
                result.failed += 1
                continue
            _forget(contact)
            result.stored += 1
            result.references.append(reference)
            logger.info("spooled %s stored on %s", contact.kind, reference or "(no case)")
        result.remaining = result.failed
    return result
