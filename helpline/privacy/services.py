"""Actions of the privacy app: legal holds, the daily anonymisation of expired cases, and a person's rights on
request (export, erasure). Supervisors only; every action is on the cases' timelines with its reason.

Case rows change only through helpline.cases.services (`anonymise_case`, `record_event`, `record_read`); the texts
sent about a case are forgotten by notifications.outbox, the words kept with staff corrections of triage by
triage.services; voicemail is deleted at Twilio through its REST client.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from helpline.cases import services as case_services
from helpline.cases.models import Case, EventKind, Message
from helpline.privacy import selectors
from helpline.privacy.models import Anonymisation, Basis, LegalHold
from helpline.roster.selectors import is_supervisor
from notifications import outbox
from notifications.backends import RedirectedHttpClient
from triage import services as triage_services

logger = logging.getLogger(__name__)


class RequestRefused(Exception):
    """The request cannot be carried out as asked; the message says why, in the supervisor's language."""


def _require_supervisor(user: AbstractBaseUser) -> None:
    if not is_supervisor(user):
        raise PermissionDenied(_("Only a supervisor may do this."))


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RequestRefused(_("A reason is required: it is kept on the case's timeline."))
    return reason[:500]


# --- Legal holds -----------------------------------------------------------------------------------------------


@transaction.atomic
def set_legal_hold(case: Case, *, by: AbstractBaseUser, reason: str) -> LegalHold:
    """Keep the case whatever its retention says, until released. Setting it again updates the reason."""
    _require_supervisor(by)
    reason = _require_reason(reason)
    hold, _created = LegalHold.objects.select_for_update().get_or_create(
        case=case, defaults={"reason": reason, "set_by": by, "set_at": timezone.now()}
    )
    if not _created:
        hold.reason, hold.set_by, hold.set_at = reason, by, timezone.now()
        hold.released_at, hold.released_by, hold.release_reason = None, None, ""
        hold.save()
    case_services.record_event(case, EventKind.LEGAL_HOLD_SET, actor=by, reason=reason)
    return hold


@transaction.atomic
def release_legal_hold(case: Case, *, by: AbstractBaseUser, reason: str) -> LegalHold:
    _require_supervisor(by)
    reason = _require_reason(reason)
    hold = LegalHold.objects.select_for_update().filter(case=case, released_at__isnull=True).first()
    if hold is None:
        raise RequestRefused(_("This case has no legal hold."))
    hold.released_at, hold.released_by, hold.release_reason = timezone.now(), by, reason
    hold.save(update_fields=["released_at", "released_by", "release_reason"])
    case_services.record_event(case, EventKind.LEGAL_HOLD_RELEASED, actor=by, reason=reason)
    return hold


# --- Voicemail at Twilio -------------------------------------------------------------------------------------------

_RECORDING_SID = re.compile(r"/Recordings/(RE[0-9a-fA-F]+)")


def _twilio() -> Client:
    http_client = (
        RedirectedHttpClient(settings.TWILIO_API_BASE_URL) if settings.TWILIO_API_BASE_URL
        else TwilioHttpClient(timeout=10)
    )  # fmt: skip
    return Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)


def _recording_sids(case: Case) -> list[str]:
    sids = []
    for sid, url in Message.objects.filter(case=case).exclude(recording_sid="", recording_url="").values_list(
        "recording_sid", "recording_url"
    ):
        found = sid or (_RECORDING_SID.search(url).group(1) if _RECORDING_SID.search(url) else "")
        if found:
            sids.append(found)
    return sids


def delete_recordings_at_twilio(case: Case) -> bool:
    """Delete the case's voicemail recordings at Twilio. True when none is left there (a recording Twilio no longer
    has counts as deleted); False when Twilio could not be reached or refused, and the case waits for the next run.
    Called outside any transaction: a slow Twilio never holds a row lock."""
    sids = _recording_sids(case)
    if not sids:
        return True
    client = _twilio()
    for sid in sids:
        try:
            client.api.v2010.account.recordings(sid).delete()
        except TwilioRestException as error:
            if error.status != 404:
                logger.warning("recording of %s not deleted at Twilio: HTTP %s", case.reference, error.status)
                return False
        except (TwilioException, OSError) as error:
            logger.warning("recording of %s not deleted at Twilio: %s", case.reference, type(error).__name__)
            return False
    return True


# --- Anonymisation -----------------------------------------------------------------------------------------------


def _anonymise(case: Case, *, basis: str, by: AbstractBaseUser | None = None, reason: str = "", rule: str = "") -> None:
    """Within the caller's transaction: the case's personal data, the texts sent about it, and the record."""
    case_services.anonymise_case(case, basis=basis, actor=by, reason=reason, rule=rule)
    outbox.forget_case_messages(case)
    triage_services.forget_words_in_corrections(case)
    Anonymisation.objects.create(case=case, anonymised_at=timezone.now(), basis=basis, rule=rule, by=by)


@dataclass
class RetentionRun:
    anonymised: Counter = field(default_factory=Counter)  # (category, outcome) -> cases
    deferred: int = 0  # voicemail could not be deleted at Twilio: tried again next run
    stopped_by_time_limit: bool = False  # the task's soft time limit came first: the next run carries on

    @property
    def total(self) -> int:
        return sum(self.anonymised.values())


def _anonymise_if_still_expired(case_id: int, now: dt.datetime, run: RetentionRun) -> bool:
    """One case: voicemail deleted at Twilio first, then, under the row lock and only if it is still expired and
    still without a hold (a supervisor may have set one meanwhile), its data removed. False if deferred."""
    case = selectors.expired_cases(now).filter(pk=case_id).first()
    if case is None:
        return True
    if not delete_recordings_at_twilio(case):
        run.deferred += 1
        return False
    with transaction.atomic():
        locked = selectors.expired_cases(now).for_change(skip_locked=True).filter(pk=case_id).first()
        if locked is None:
            return True  # held, reopened, anonymised or locked by another run meanwhile
        rule = f"{locked.category or '-'}/{locked.outcome}: {locked.retention_days} days"
        _anonymise(locked, basis=Basis.RETENTION, rule=rule)
    run.anonymised[(locked.category or "-", locked.outcome)] += 1
    return True


def anonymise_expired(now: dt.datetime | None = None, *, batch_size: int | None = None,
                      max_batches: int | None = None) -> RetentionRun:  # fmt: skip
    """The hourly job: anonymise every ended case past its retention and without a legal hold, in batches (each case
    its own transaction), so a run stopped half-way loses nothing and the next run carries on. Logs counts only,
    also when the task's soft time limit stops it."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    run = RetentionRun()
    deferred: set[int] = set()
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            batch = list(
                selectors.expired_cases(now).exclude(pk__in=deferred).values_list("pk", flat=True)[:batch_size]
            )
            if not batch:
                break
            batches += 1
            for case_id in batch:
                if not _anonymise_if_still_expired(case_id, now, run):
                    deferred.add(case_id)
    except SoftTimeLimitExceeded:
        # Raised wherever the task was (a case's transaction is rolled back; a voicemail deleted at Twilio for a
        # case not yet anonymised counts as deleted next time). Without this line nobody would know how far it got.
        run.stopped_by_time_limit = True
    logger.info(
        "retention: %s cases anonymised (%s), %s waiting for Twilio to delete voicemail%s",
        run.total, ", ".join(f"{cat}/{outcome} {n}" for (cat, outcome), n in sorted(run.anonymised.items())) or "-",
        run.deferred, "; stopped by its time limit; the next run continues" if run.stopped_by_time_limit else "",
    )  # fmt: skip
    return run


# --- A person's rights on request ----------------------------------------------------------------------------


def has_cases_about(phone: str = "", email: str = "") -> bool:
    return bool(selectors.cases_about_person(phone=phone, email=email))


def _find_person(phone: str, email: str) -> list[Case]:
    cases = selectors.cases_about_person(phone=phone, email=email)
    if not cases:
        raise RequestRefused(_("No case holds this number or e-mail address."))
    return cases


@transaction.atomic
def export_person(*, by: AbstractBaseUser, reason: str, phone: str = "", email: str = "") -> dict:
    """Everything held about the person, with the export on each case's timeline and in the read log."""
    _require_supervisor(by)
    reason = _require_reason(reason)
    cases = _find_person(phone, email)
    data = selectors.person_export(cases)
    for case in cases:
        case_services.record_event(case, EventKind.DATA_EXPORTED, actor=by, reason=reason)
        case_services.record_read(case, reader=by, via="export")
    return data


@dataclass
class ErasureResult:
    erased: list[str] = field(default_factory=list)  # references
    already_anonymous: list[str] = field(default_factory=list)
    waiting_for_twilio: list[str] = field(default_factory=list)
    # Reopened (the person wrote again) or put under a legal hold while the erasure ran: left whole, to erase by a
    # new request once resolved or released.
    reopened: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


def erase_person(*, by: AbstractBaseUser, reason: str, phone: str = "", email: str = "") -> ErasureResult:
    """Anonymise every case about the person. Refused as a whole, with the reasons, while any of them is under a
    legal hold or still open: a partly erased person would still be recognisable from what is left."""
    _require_supervisor(by)
    reason = _require_reason(reason)
    cases = _find_person(phone, email)
    holds = selectors.holds_of(cases)
    if holds:
        listed = "; ".join(f"{hold.case.reference}: {hold.reason}" for hold in holds.values())
        raise RequestRefused(
            _("Nothing was erased: a legal hold keeps %(cases)s.") % {"cases": listed}
        )
    still_open = [case.reference for case in cases if case.is_open]
    if still_open:
        raise RequestRefused(
            _("Nothing was erased: %(cases)s still open; resolve it first.") % {"cases": ", ".join(still_open)}
        )
    result = ErasureResult()
    for case in cases:
        if case.was_anonymised:
            result.already_anonymous.append(case.reference)
            continue
        if not delete_recordings_at_twilio(case):
            result.waiting_for_twilio.append(case.reference)
            continue
        with transaction.atomic():
            # The checks above were made before Twilio was asked, which takes seconds: meanwhile the person may have
            # written again (a follow-up reopens a case) or a supervisor set a hold. Under the row lock, again.
            locked = Case.objects.for_change().get(pk=case.pk)
            if Anonymisation.objects.filter(case=locked).exists():
                result.already_anonymous.append(case.reference)
            elif locked.is_open:
                result.reopened.append(case.reference)
            elif selectors.legal_hold_of(locked) is not None:
                result.held.append(case.reference)
            else:
                _anonymise(locked, basis=Basis.REQUEST, by=by, reason=reason)
                result.erased.append(case.reference)
    logger.info("erasure on request: %s cases anonymised, %s waiting for Twilio, %s reopened and %s held meanwhile",
                len(result.erased), len(result.waiting_for_twilio), len(result.reopened), len(result.held))
    return result
