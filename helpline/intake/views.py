"""The public web pages: the contact form, the confirmation, and the citizen's conversation with us. A message sent
while the database is away is spooled and answered as usual (helpline.intake.spool): the citizen never meets an
error page, and a message is never refused for rate (helpline.intake.throttles)."""
from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from helpline.cases import intake, selectors
from helpline.cases.citizen_code import format_code, normalise_code, normalise_reference
from helpline.cases.language import detect_language, detect_script
from helpline.cases.models import OPEN_STATUSES, Case, Channel, Direction, Priority
from helpline.drill.marker import is_drill_request
from helpline.intake import services, spool
from helpline.intake.cyrillic_pages import html_in_cyrillic
from helpline.intake.forms import FollowUpForm, InquiryForm, StatusCheckForm, new_idempotency_key
from helpline.intake.spool import spool_on_failure
from helpline.intake.throttles import InquiryStatusRateThrottle, limit_reached

logger = logging.getLogger(__name__)

# The case a citizen opened with their code stays open in this browser while they use it, and no longer: the
# phone may be shared with the person they are afraid of.
CITIZEN_CASE_KEY = "citizen_case"
CITIZEN_FLASH_KEY = "citizen_flash"
CITIZEN_IDLE_SECONDS = 30 * 60
# The receipt of an inquiry just stored (its reference and code), kept until its page is shown once: the form is
# answered with a redirect, so neither Back nor a reload, after the quick exit, brings the code back.
CITIZEN_RECEIPT_KEY = "citizen_receipt"
# How long a receipt not yet shown may be shown to a resend of its form, from another session: Send pressed twice
# on a slow line drops the first answer, and with it the session cookie that held the receipt.
UNSHOWN_RECEIPT_SECONDS = 10 * 60
# How long the code of a form's key, once shown, is remembered as shown where the database cannot tell: a resend
# while the database is away (Back after the quick exit, then Send) is spooled, and must not show it again.
SHOWN_RECEIPT_SECONDS = 30 * 24 * 60 * 60


def _page_context() -> dict:
    return {"emergency": settings.EMERGENCY_NUMBERS, "quick_exit_url": settings.QUICK_EXIT_URL}


def _page_language(request: HttpRequest, written_in: str | None) -> str:
    """The language a page about a citizen's message is in: the one they chose with the page's switch, else the
    one they wrote in (a tourist whose browser asks for German, writing in English, reads English; someone writing
    Bosnian on a phone set to English reads Bosnian), else what their browser asked for."""
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    offered = {code for code, _name in settings.LANGUAGES}
    if chosen in offered:
        return chosen
    if written_in in offered:
        return written_in
    return translation.get_language() or settings.LANGUAGE_CODE


def _render(
    request: HttpRequest, template: str, context: dict, *, script: str = "latin", status: int = 200,
    written_in: str | None = None,
) -> HttpResponse:  # fmt: skip
    """A public page, in the language the citizen wrote in (`written_in`: the case's, or read from their message)
    unless they chose another; in Bosnian Cyrillic when they wrote in Cyrillic (unless they switched to English)."""
    language = _page_language(request, written_in)
    if script != "cyrillic" or language == "en":
        with translation.override(language):
            return render(request, template, {**_page_context(), **context}, status=status)
    with translation.override("bs"):
        response = render(request, template, {**_page_context(), **context, "html_lang": "bs-Cyrl"}, status=status)
    response.content = html_in_cyrillic(response.content.decode()).encode()
    return response


def _too_many_code_checks(request: HttpRequest, form) -> HttpResponse | None:
    """Codes typed by hand may be guesses, so they are limited per address. Over the limit the page comes back
    with everything typed still in it (a follow-up's text too), to be sent again in a minute: nothing is lost."""
    throttle = InquiryStatusRateThrottle()
    if throttle.allow_request(request, None):
        return None
    script = detect_script(request.POST.get("message", ""))
    response = _render(request, "helpline/inquiry_status.html", {"form": form, "too_many": True}, script=script,
                       status=429)  # fmt: skip
    wait = throttle.wait()
    if wait:
        response["Retry-After"] = str(int(wait) + 1)
    return response


def _inquiry(request: HttpRequest, form: InquiryForm, *, over_address_limit: str = "") -> dict:
    data = form.cleaned_data
    return {
        "message": data["message"],
        "name": data["name"],
        "phone": str(data["phone"] or ""),
        "email": data["email"],
        "safe_to_call": data["safe_to_call"],
        "safe_to_text": data["safe_to_text"],
        "safe_contact_note": data["safe_contact_note"],
        "suspected_automated": bool(data["leave_this_empty"]),
        "over_address_limit": over_address_limit,
        "is_drill": is_drill_request(request),
    }


def _received(
    request: HttpRequest, *, reference: str, code: str, in_danger: bool, script: str, status: int, notice: str = "",
    written_in: str | None = None, spooled: bool = False,
) -> HttpResponse:  # fmt: skip
    """The receipt with the reference and code, rendered (never in a URL or the browser's history). `spooled`: the
    message waits in the spool, and nobody can be alerted until it is stored; the page says so."""
    context = {
        "reference": reference, "code": format_code(code), "in_danger": in_danger, "notice": notice,
        "spooled": spooled,
        "hide_language_switch": True,  # it reloads the page, and the code is not shown twice
    }  # fmt: skip
    return _render(
        request, "helpline/inquiry_received.html", context, script=script, status=status, written_in=written_in
    )


def _unshown_receipt(case_id: int) -> str:
    return f"helpline:unshown-receipt:{case_id}"


def _shown_receipt(form_key: str, message: str) -> str:
    """What names the receipt of a form's key and words (other words under the key are an inquiry of their own,
    with a receipt of its own). Hashed: the key derives the secret code, and the cache is no place for it."""
    return f"helpline:shown-receipt:{spool.key_and_words(form_key, message)}"


def _remember_receipt_shown(shown: str) -> None:
    if not shown:
        return
    try:
        cache.set(shown, True, SHOWN_RECEIPT_SECONDS)
    except Exception:  # the receipt is on its way to the citizen: a cache fault must not turn it into an error
        logger.warning("could not remember a receipt as shown")


def _receipt_was_shown(form_key: str, message: str) -> bool:
    if not form_key:
        return False
    try:
        return bool(cache.get(_shown_receipt(form_key, message)))
    except Exception:  # not known: the citizen sees their code rather than lose it
        logger.warning("could not read whether a receipt was shown")
        return False


def _keep_receipt(request: HttpRequest, received: services.WebInquiryReceived, *, shown: str) -> None:
    """`shown`: what remembers the receipt as shown once it is (`_shown_receipt`)."""
    case = received.case
    request.session[CITIZEN_RECEIPT_KEY] = {
        "reference": case.reference, "code": received.token, "in_danger": received.in_danger,
        "script": case.script, "language": case.language, "case": case.pk,
        "notice": services.surge_notice(case.script, case.language), "shown": shown,
    }  # fmt: skip
    if received.is_new:
        cache.set(_unshown_receipt(case.pk), True, UNSHOWN_RECEIPT_SECONDS)


def _spool_inquiry(request: HttpRequest) -> HttpResponse:
    """The inquiry kept in the spool: the citizen gets the reference reserved for it and the code that will open
    it (derived from the form's idempotency key), with 202, since it is not yet in the database."""
    form = InquiryForm(request.POST)
    if request.method != "POST" or not form.is_valid():
        raise spool.NothingToSpool
    message, form_key = form.cleaned_data["message"], form.cleaned_data["idempotency_key"]
    key = spool.key_for("web", form_key or uuid.uuid4().hex, message)
    contact, is_new = spool.spool_inquiry(key, _inquiry(request, form), reference=intake.reserve_spool_reference())
    script, written_in = detect_script(message), detect_language(message)
    if not is_new or _receipt_was_shown(form_key, message):
        # A resend of a form whose code was shown (by the spool, or by the receipt before the outage): "received",
        # as the healthy form answers it, and nothing that opens the case.
        context = {"already_shown": True, "spooled": True, "in_danger": services.reads_as_danger(message)}
        return _render(
            request, "helpline/inquiry_received.html", context, script=script, status=202, written_in=written_in
        )
    if form_key:
        _remember_receipt_shown(_shown_receipt(form_key, message))
    return _received(
        request, reference=contact.reference, code=intake.token_for_idempotency_key(key),
        in_danger=services.reads_as_danger(message), script=script, status=202, written_in=written_in, spooled=True,
    )  # fmt: skip


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@spool_on_failure(_spool_inquiry)
def inquiry_form(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        form = InquiryForm(initial={"idempotency_key": new_idempotency_key()})
        return _render(request, "helpline/inquiry_form.html", {"form": form})
    form = InquiryForm(request.POST)
    if not form.is_valid():
        script = detect_script(request.POST.get("message", ""))
        return _render(request, "helpline/inquiry_form.html", {"form": form}, script=script, status=400)
    inquiry = _inquiry(request, form, over_address_limit=limit_reached(request))
    key = form.cleaned_data["idempotency_key"]
    try:
        received = services.receive_web_inquiry(**inquiry, idempotency_key=key)
    except intake.IdempotencyKeyReused:
        # The page was sent again with other words (Back, a new message): a new inquiry, not a retry, stored once
        # however often it is reloaded (under the key and its words, as the spool does) and opened by the code of
        # the form it came from.
        received = services.receive_web_inquiry(
            **inquiry, idempotency_key=spool.key_and_words(key, inquiry["message"]),
            citizen_token=intake.token_for_idempotency_key(key),
        )  # fmt: skip
    # A resend (the form restored by Back after the quick exit, then sent) shows the code only while its receipt
    # has not been shown yet (here, or by the spool while the database was away); otherwise the receipt page says
    # "received", and nothing more.
    unshown = received.is_new or cache.get(_unshown_receipt(received.case.pk))
    if unshown and not _receipt_was_shown(key, inquiry["message"]):
        _keep_receipt(request, received, shown=_shown_receipt(key, inquiry["message"]) if key else "")
    return HttpResponseRedirect(reverse("inquiry-received"), status=303)


@never_cache
@require_http_methods(["GET", "HEAD"])
def inquiry_received(request: HttpRequest) -> HttpResponse:
    """The receipt, shown once; then (Back, a reload, the form sent again) only that the message was received."""
    try:
        receipt = request.session.pop(CITIZEN_RECEIPT_KEY, None) if request.method == "GET" else None
    except DatabaseError:  # sessions live in the database
        receipt = None
    if receipt is None:
        return _render(request, "helpline/inquiry_received.html", {"already_shown": True})
    cache.delete(_unshown_receipt(receipt["case"]))
    _remember_receipt_shown(receipt.get("shown", ""))  # a receipt kept before this field existed has none
    return _received(
        request, reference=receipt["reference"], code=receipt["code"], in_danger=receipt["in_danger"],
        script=receipt["script"], status=200, notice=receipt["notice"], written_in=receipt["language"],
    )  # fmt: skip


# Like the form, reached while sessions cannot be read (helpline.project.outage): then it says "received".
inquiry_received.spools_its_contact = True


# --- The conversation -----------------------------------------------------------------------------------------


def _open_in_this_browser(request: HttpRequest, case: Case, code: str) -> None:
    # The code is kept so the follow-up form can carry it: a follow-up sent while the database is away is spooled
    # with it and checked when replayed. The session lives in the database, like the case itself.
    request.session[CITIZEN_CASE_KEY] = {"reference": case.reference, "code": normalise_code(code),
                                         "seen": int(time.time())}  # fmt: skip


def _case_open_in_this_browser(request: HttpRequest) -> tuple[Case, str] | None:
    opened = request.session.get(CITIZEN_CASE_KEY)
    if not opened:
        return None
    if time.time() - opened.get("seen", 0) > CITIZEN_IDLE_SECONDS:
        request.session.pop(CITIZEN_CASE_KEY, None)
        return None
    case = selectors.case_by_reference(opened["reference"])
    if case is None or not intake.citizen_token_matches(case, opened["code"]):
        request.session.pop(CITIZEN_CASE_KEY, None)
        return None
    if time.time() - opened["seen"] > 60:  # refreshed at most once a minute: a poll is not a write
        _open_in_this_browser(request, case, opened["code"])
    return case, opened["code"]


def _reads_as_danger(case: Case, messages: list) -> bool:
    """Triage's priority once it has one; until then (a second or so) the quick danger check of what they wrote."""
    if case.priority:
        return case.priority in (Priority.CRITICAL, Priority.HIGH)
    return any(services.reads_as_danger(m.body) for m in messages if m.direction == Direction.INBOUND)


def _conversation_context(case: Case) -> dict:
    messages = list(selectors.conversation_for_citizen(case))
    return {
        "case": case,
        "messages": messages,
        "has_reply": any(message.direction == Direction.OUTBOUND for message in messages),
        "in_danger": _reads_as_danger(case, messages),
        # What the page may promise: a time still ahead, never one already past or kept.
        "taken": case.acknowledged_at is not None,
        # A closed case is late for no one: writing again below opens it again (intake.add_citizen_follow_up).
        "closed": case.status not in OPEN_STATUSES,
        "late": case.status in OPEN_STATUSES and case.acknowledge_by is not None
        and case.acknowledge_by <= timezone.now(),
        "poll_seconds": settings.CITIZEN_POLL_SECONDS,
    }


def _conversation(
    request: HttpRequest, case: Case, code: str, *, follow_up_form: FollowUpForm | None = None, status: int = 200
) -> HttpResponse:
    flash = request.session.pop(CITIZEN_FLASH_KEY, {})
    conversation = _conversation_context(case)
    context = {
        **conversation,
        "sent": flash.get("sent", False),
        "in_danger": conversation["in_danger"] or flash.get("in_danger", False),
        "follow_up_form": follow_up_form or FollowUpForm(initial={"idempotency_key": new_idempotency_key()}),
        "code": code,
    }
    return _render(
        request, "helpline/inquiry_status.html", context, script=case.script, status=status, written_in=case.language
    )


def _spool_follow_up(request: HttpRequest) -> HttpResponse:
    """A follow-up kept in the spool; its case and code are checked when it is replayed."""
    form = FollowUpForm(request.POST)
    if request.method != "POST" or not form.is_valid():
        raise spool.NothingToSpool  # a status check cannot be answered without the database
    data = form.cleaned_data
    reference = normalise_reference(data["reference"])
    key = spool.key_for("follow_up", data["idempotency_key"] or uuid.uuid4().hex, data["message"])
    spool.spool_contact("follow_up", key, {"code": data["code"], "message": data["message"]}, reference=reference)
    script = detect_script(data["message"])
    context = {"reference": reference, "in_danger": services.reads_as_danger(data["message"]), "spooled": True}
    return _render(
        request, "helpline/follow_up_received.html", context, script=script, status=202,
        written_in=detect_language(data["message"]),
    )  # fmt: skip


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@spool_on_failure(_spool_follow_up)
def inquiry_status(request: HttpRequest) -> HttpResponse:
    """The citizen's own view of their web case. A code check or a follow-up is a POST answered with a redirect to
    the conversation (post/redirect/get): reloading the conversation never sends anything again."""
    if request.method != "POST":
        opened = _case_open_in_this_browser(request)
        if opened is not None:
            return _conversation(request, *opened)
        return _render(request, "helpline/inquiry_status.html", {"form": StatusCheckForm()})
    writing_again = "message" in request.POST
    form = (FollowUpForm if writing_again else StatusCheckForm)(request.POST)
    opened = _case_open_in_this_browser(request)
    if not form.is_valid():
        if writing_again and opened is not None:  # an empty box sent from the open conversation: say so there
            return _conversation(request, *opened, follow_up_form=form, status=400)
        script = detect_script(request.POST.get("message", ""))
        return _render(request, "helpline/inquiry_status.html", {"form": form}, script=script, status=400)
    case, code = selectors.case_by_reference(form.cleaned_data["reference"]), form.cleaned_data["code"]
    already_open = opened is not None and case is not None and opened[0].pk == case.pk
    if not already_open:
        # A citizen's own follow-up from the conversation open in their browser is never limited.
        throttled = _too_many_code_checks(request, form)
        if throttled:
            return throttled
    if case is None or case.channel != Channel.WEB or not intake.citizen_token_matches(case, code):
        context = {"form": form, "not_found": True}
        script = detect_script(request.POST.get("message", ""))
        return _render(request, "helpline/inquiry_status.html", context, script=script, status=404)
    if writing_again:
        message = form.cleaned_data["message"]
        services.receive_follow_up(
            case, message, idempotency_key=form.cleaned_data["idempotency_key"] or None,
            over_address_limit=limit_reached(request),
        )  # fmt: skip
        request.session[CITIZEN_FLASH_KEY] = {"sent": True, "in_danger": services.reads_as_danger(message)}
    _open_in_this_browser(request, case, code)
    return redirect("inquiry-status")


@never_cache
@require_http_methods(["GET", "HEAD"])
def conversation_messages(request: HttpRequest) -> HttpResponse:
    """The conversation's messages, for the open page to poll. 286 tells htmx to stop asking: the case is no
    longer open in this browser (left, or idle too long)."""
    opened = _case_open_in_this_browser(request)
    if opened is None:
        return HttpResponse(status=286)
    case, _code = opened
    return _render(
        request, "helpline/_conversation.html", _conversation_context(case), script=case.script,
        written_in=case.language,
    )  # fmt: skip


conversation_messages.is_polling = True


@require_POST
def leave_conversation(request: HttpRequest) -> HttpResponse:
    """"Close my case on this phone": the next person to pick up the phone needs the code again."""
    request.session.pop(CITIZEN_CASE_KEY, None)
    request.session.pop(CITIZEN_FLASH_KEY, None)
    request.session.pop(CITIZEN_RECEIPT_KEY, None)
    return redirect("inquiry-status")
