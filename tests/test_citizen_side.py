"""The citizen's side of the web form: nothing refused for rate, a code that survives being read aloud and typed
on a phone, pages in the script the citizen wrote in, and a conversation that never sends anything twice."""
from __future__ import annotations

import datetime as dt
import os
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
import redis
import time_machine
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from helpline.cases import citizen_code, intake, selectors
from helpline.cases.models import Case, CaseStatus, Direction, EventKind
from helpline.intake.cyrillic_pages import html_in_cyrillic
from tests.encrypted import case_saying
from tests.factories import CaseFactory, MessageFactory, StaffFactory

SHELTER = "10.20.30.40"  # one address for a whole shelter, school or carrier


def form_data(**overrides) -> dict:
    return {"message": "Trebam pomoć.", "name": "", "phone": "", "email": "", "safe_to_call": "",
            "safe_to_text": "", "safe_contact_note": "", "leave_this_empty": "", **overrides}  # fmt: skip


def code_in(response) -> str:
    return re.search(r'class="code">([^<]+)<', response.content.decode()).group(1)


# --- Nothing refused for rate --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_hundred_messages_from_one_address_in_a_minute_are_all_stored_and_answered_the_extra_ones_flagged(client):
    started = time.perf_counter()
    with time_machine.travel(dt.datetime(2026, 12, 3, 20, 0, tzinfo=dt.UTC), tick=False) as clock:
        statuses = []
        for n in range(100):
            response = client.post("/inquiry/", form_data(message=f"Poruka {n}: muz me tuce, pomozite"),
                                   REMOTE_ADDR=SHELTER, follow=True)  # fmt: skip
            statuses.append(response.status_code)
            assert "Vaša tajna šifra" in response.content.decode()  # answered like any other
            clock.shift(dt.timedelta(seconds=0.5))
    elapsed = time.perf_counter() - started

    assert statuses == [200] * 100
    cases = list(Case.objects.order_by("pk"))
    assert len(cases) == 100 and {case.messages.count() for case in cases} == {1}
    assert [case.over_address_limit for case in cases] == [False] * 10 + [True] * 90
    assert not any(case.suspected_automated for case in cases)  # a shared address is not a bot
    flags = [case.timeline.filter(kind=EventKind.FLAGGED).first() for case in cases[10:]]
    assert all(flag is not None and flag.details["limit"] == "10/minute" for flag in flags)
    print(f"100 inquiries from one address: {elapsed:.2f} s, {100 / elapsed:.0f} a second")


@pytest.mark.django_db
def test_with_the_counts_in_redis_as_in_production_the_eleventh_message_in_a_minute_is_flagged(client, settings):
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.skip("needs Redis (CELERY_BROKER_URL=redis://...)")
    location = urlsplit(broker)._replace(path="/14").geturl()  # a database of its own, emptied before and after
    redis.Redis.from_url(location).flushdb()
    settings.CACHES = {"default": {"BACKEND": "helpline.project.cache.FailOpenRedisCache", "LOCATION": location}}
    try:
        for n in range(11):
            sent = client.post("/inquiry/", form_data(message=f"m{n}"), REMOTE_ADDR=SHELTER, follow=True)
            assert sent.status_code == 200
        assert [case_saying(f"m{n}").over_address_limit for n in range(11)] == [False] * 10 + [True]
        assert redis.Redis.from_url(location).dbsize() > 0  # counted in Redis, not in the fail-open local cache
    finally:
        redis.Redis.from_url(location).flushdb()


@pytest.mark.django_db
def test_another_address_is_not_flagged_for_a_busy_one(client):
    for n in range(12):
        client.post("/inquiry/", form_data(message=f"m{n}"), REMOTE_ADDR=SHELTER, follow=True)
    client.post("/inquiry/", form_data(message="Ja sam neko drugi."), REMOTE_ADDR="10.99.99.99")
    assert not case_saying("Ja sam neko drugi.").over_address_limit


@pytest.mark.django_db
def test_a_flagged_case_waits_behind_an_unflagged_one_of_the_same_priority_but_never_behind_a_lower_one():
    flagged_critical = CaseFactory(priority="critical", suspected_automated=True)
    trapped_normal = CaseFactory(priority="normal", suspected_automated=True)
    normal = CaseFactory(priority="normal")
    busy_address_normal = CaseFactory(priority="normal", over_address_limit=True)
    later_normal = CaseFactory(priority="normal")
    order = list(selectors.by_urgency(Case.objects.all()))
    assert order == [flagged_critical, normal, later_normal, busy_address_normal, trapped_normal]


@pytest.mark.django_db
def test_a_follow_up_over_the_limit_is_stored_and_flagged(client):
    created = client.post("/inquiry/", form_data(), REMOTE_ADDR=SHELTER, follow=True)
    case, code = Case.objects.get(), code_in(created)
    for n in range(11):
        response = client.post("/inquiry/status/", {"reference": case.reference, "code": code,
                                                    "message": f"Još {n}"}, REMOTE_ADDR=SHELTER)  # fmt: skip
        assert response.status_code == 302
    assert case.messages.filter(direction=Direction.INBOUND).count() == 12
    assert case.timeline.filter(kind=EventKind.FLAGGED, details__limit="10/minute").count() == 2


# --- A code people can use ---------------------------------------------------------------------------------


@given(st.binary(min_size=8, max_size=32))
def test_a_code_reads_back_however_it_is_typed(digest):
    code = citizen_code.code_from_bytes(digest)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", code)
    plain = citizen_code.normalise_code(code)
    misread = code.replace("0", "o").replace("1", "l")
    for typed in (code.lower(), code.replace("-", " "), f"  {plain.lower()} ", misread):
        assert citizen_code.normalise_code(typed) == plain


def test_new_codes_do_not_repeat():
    assert len({citizen_code.new_code() for _ in range(1000)}) == 1000


@pytest.mark.parametrize("typed", ["SOS-2026-00042", "sos-2026-00042", "sos 2026 42", " SOS2026 00042 ", "sos.2026.42",
                                   "SOS-2026-OOO42", "sos 2026 ooo42"])  # fmt: skip
def test_a_reference_reads_back_however_it_is_typed(typed):
    assert citizen_code.normalise_reference(typed) == "SOS-2026-00042"


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["SOS-2026-ABC", "SOS-2026-1234X", "sos 2026 marko"])
def test_a_reference_with_letters_in_its_number_finds_nothing_and_fails_nowhere(client, typed):
    # int() of it raised: the status page failed, the API answered 500, a follow-up was spooled and failed its
    # replay every ten seconds for good.
    client.raise_request_exception = False
    status = client.post("/inquiry/status/", {"reference": typed, "code": "AAAA-BBBB-CCCC"})
    api = client.get(f"/api/v1/inquiries/{typed.replace(' ', '-')}/", HTTP_X_INQUIRY_TOKEN="AAAABBBBCCCC")
    assert status.status_code in (200, 400, 404) and api.status_code == 404


def test_a_spool_reference_keeps_its_letters():
    assert citizen_code.normalise_reference("sos 2026 s7kx3m") == "SOS-2026-S7KX3M"


# Cyrillic letters that look like the code's Latin ones (А В Е К М Н О Р С Т Х Ј), as a Serbian phone's keyboard
# types them when the citizen copies the code or the reference from paper.
CYRILLIC_FOR_LATIN = str.maketrans("ABEKMHOPCTXJabekmhopctxj", "АВЕКМНОРСТХЈавекмнорстхј")


@given(st.binary(min_size=8, max_size=32))
def test_a_code_typed_on_a_cyrillic_keyboard_reads_back(digest):
    code = citizen_code.code_from_bytes(digest)
    plain = citizen_code.normalise_code(code)
    for typed in (code.translate(CYRILLIC_FOR_LATIN), code.lower().translate(CYRILLIC_FOR_LATIN)):
        assert citizen_code.normalise_code(typed) == plain


@pytest.mark.parametrize("typed", ["СОС-2026-00042", "сос 2026 42", "SОS-2026-ООО42", "СОС2026-00042"])
def test_a_reference_typed_in_cyrillic_reads_back(typed):
    assert citizen_code.normalise_reference(typed) == "SOS-2026-00042"


def test_a_spool_reference_typed_in_cyrillic_keeps_its_letters():
    assert citizen_code.normalise_reference("СОС-2026-С7КХ3М") == "SOS-2026-S7KX3M"
    assert citizen_code.normalise_reference("сос 2026 сhрр84ј") == "SOS-2026-SHPP84J"


@pytest.mark.django_db
def test_a_case_opens_with_its_reference_and_code_typed_on_a_cyrillic_keyboard(client):
    created = client.post("/inquiry/", form_data(), follow=True)
    case, code = Case.objects.get(), code_in(created)
    page = client.post("/inquiry/status/", {
        "reference": case.reference.translate(CYRILLIC_FOR_LATIN).replace("S", "С"),
        "code": code.translate(CYRILLIC_FOR_LATIN),
    }, follow=True)  # fmt: skip
    assert page.status_code == 200 and "Trebam pomoć." in page.content.decode()


@pytest.mark.django_db
def test_the_code_typed_in_lower_case_with_spaces_opens_the_case(client):
    created = client.post("/inquiry/", form_data(), follow=True)
    case, code = Case.objects.get(), code_in(created)
    typed = code.lower().replace("-", " ")
    reference = case.reference.lower().replace("-", " ")
    page = client.post("/inquiry/status/", {"reference": reference, "code": typed}, follow=True)
    assert page.status_code == 200 and "Trebam pomoć." in page.content.decode()


@pytest.mark.django_db
def test_a_code_handed_out_before_readable_codes_still_opens_its_case():
    case = CaseFactory(channel="web", citizen_token_hash=intake._hash_token("aB3_x-Yz9Q"))
    assert intake.citizen_token_matches(case, "aB3_x-Yz9Q")
    assert not intake.citizen_token_matches(case, "AB3_X-YZ9Q")


# --- The conversation ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_conversation_is_a_get_after_a_post_and_its_messages_can_be_polled(client):
    created = client.post("/inquiry/", form_data(), follow=True)
    case, code = Case.objects.get(), code_in(created)
    assert client.get("/inquiry/status/messages/").status_code == 286  # nothing open: htmx stops asking

    opened = client.post("/inquiry/status/", {"reference": case.reference, "code": code})
    assert opened.status_code == 302 and opened["Location"] == "/inquiry/status/"
    MessageFactory(case=case, direction=Direction.OUTBOUND, channel="web", body="Javit ćemo se danas.")
    MessageFactory(case=case, direction=Direction.OUTBOUND, channel="web", body="interno", is_visible_to_citizen=False)

    polled = client.get("/inquiry/status/messages/").content.decode()
    assert "Javit ćemo se danas." in polled and "interno" not in polled and 'hx-trigger="every' in polled

    client.post("/inquiry/status/leave/")
    assert client.get("/inquiry/status/messages/").status_code == 286
    assert "Javit ćemo" not in client.get("/inquiry/status/").content.decode()


@pytest.mark.django_db
def test_the_conversation_promises_only_a_time_still_ahead(client):
    # It kept saying "should take up your case by 14:05" at 15:00, and after a worker had taken the case.
    client.cookies["django_language"] = "en"
    code = code_in(client.post("/inquiry/", form_data(message="Trebam savjet oko alimentacije."), follow=True))
    case, now = Case.objects.get(), dt.datetime.now(tz=dt.UTC)
    Case.objects.filter(pk=case.pk).update(acknowledge_by=now + dt.timedelta(minutes=15))
    client.post("/inquiry/status/", {"reference": case.reference, "code": code})
    assert "should take up your case by" in client.get("/inquiry/status/messages/").content.decode()

    Case.objects.filter(pk=case.pk).update(acknowledge_by=now - dt.timedelta(minutes=5))
    page = client.get("/inquiry/status/messages/").content.decode()
    assert "should take up your case by" not in page and "taking longer than it should" in page

    Case.objects.filter(pk=case.pk).update(acknowledged_at=now)
    page = client.get("/inquiry/status/messages/").content.decode()
    assert "has taken up your case" in page and "taking longer" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("status", [CaseStatus.RESOLVED, CaseStatus.CLOSED])
def test_a_case_closed_without_a_reply_says_so_and_how_to_write_again_not_that_it_is_late(client, status):
    # A case closed without anyone taking it said "this is taking longer than it should: the people on duty have
    # been reminded" for ever.
    client.cookies["django_language"] = "en"
    code = code_in(client.post("/inquiry/", form_data(message="Trebam savjet oko alimentacije."), follow=True))
    case = Case.objects.get()
    Case.objects.filter(pk=case.pk).update(status=status, acknowledge_by=timezone.now() - dt.timedelta(hours=3))
    client.post("/inquiry/status/", {"reference": case.reference, "code": code})
    page = client.get("/inquiry/status/messages/").content.decode()
    assert "taking longer" not in page and "being alerted" not in page
    assert "This case is closed" in page and "write again below" in page


@pytest.mark.django_db
def test_the_conversation_closes_itself_after_half_an_hour_unused(client):
    created = client.post("/inquiry/", form_data(), follow=True)
    case, code = Case.objects.get(), code_in(created)
    client.post("/inquiry/status/", {"reference": case.reference, "code": code})
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=31)):
        assert client.get("/inquiry/status/messages/").status_code == 286


@pytest.mark.django_db
def test_too_many_code_checks_from_one_address_wait_a_minute_but_keep_what_was_typed(client):
    created = client.post("/inquiry/", form_data(), follow=True)
    case, code = Case.objects.get(), code_in(created)
    for n in range(60):  # INQUIRY_STATUS_THROTTLE_RATE: 60 a minute
        guess = {"reference": case.reference, "code": f"AAAA-AAAA-{n:04d}"}
        assert client.post("/inquiry/status/", guess).status_code == 404
    follow_up = {"reference": case.reference, "code": code, "message": "Molim vas, javite se."}
    refused = client.post("/inquiry/status/", follow_up)
    assert refused.status_code == 429 and "Molim vas, javite se." in refused.content.decode()
    assert "Retry-After" in refused
    # Once the case is open in this browser, the citizen's own follow-ups are never limited.
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=2)):
        assert client.post("/inquiry/status/", follow_up).status_code == 302
        for n in range(3):
            assert client.post("/inquiry/status/", {**follow_up, "message": f"Još {n}"}).status_code == 302
    assert case.messages.filter(direction=Direction.INBOUND).count() == 5


@pytest.mark.django_db
def test_an_empty_follow_up_is_answered_in_the_conversation_with_a_clear_error(client):
    created = client.post("/inquiry/", form_data(), follow=True)
    case, code = Case.objects.get(), code_in(created)
    client.post("/inquiry/status/", {"reference": case.reference, "code": code})
    response = client.post("/inquiry/status/", {"reference": case.reference, "code": code, "message": ""})
    html = response.content.decode()
    assert response.status_code == 400 and "Naš razgovor" in html and "Ovo polje je obavezno." in html
    assert case.messages.count() == 1


@pytest.mark.django_db
def test_a_follow_up_sent_twice_with_the_same_key_is_stored_once(client):
    created = client.post("/inquiry/", form_data(), follow=True)
    case, code = Case.objects.get(), code_in(created)
    follow_up = {"reference": case.reference, "code": code, "message": "Opet.", "idempotency_key": "k" * 32}
    assert client.post("/inquiry/status/", follow_up).status_code == 302
    assert client.post("/inquiry/status/", follow_up).status_code == 302
    assert list(case.messages.values_list("body", flat=True)).count("Opet.") == 1


# --- Pages in the citizen's script; HEAD; safe to call ------------------------------------------------------


@pytest.mark.django_db
def test_a_cyrillic_message_gets_a_cyrillic_confirmation_with_the_reference_and_code_as_typed(client):
    response = client.post("/inquiry/", form_data(message="Треба ми савјет о старатељству."), follow=True)
    html = response.content.decode()
    case = Case.objects.get()
    assert case.script == "cyrillic" and case.language == "bs"
    assert 'lang="bs-Cyrl"' in html and "Ваша порука је примљена" in html
    assert case.reference in html and re.search(r'class="code">[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}<', html)


@pytest.mark.django_db
def test_a_citizen_who_chose_english_keeps_english_even_after_writing_in_cyrillic(client):
    client.cookies["django_language"] = "en"
    html = client.post("/inquiry/", form_data(message="Треба ми савјет."), follow=True).content.decode()
    assert "Your message was received" in html


def test_only_text_between_tags_is_transliterated():
    html = ('<a href="/inquiry/status/" title="Pošalji">Pošalji</a><p translate="no" class="code">K7QM-NJ4L</p>'
            "<textarea>ljubav</textarea><p>&quot;Džep&quot; &amp; nož</p>")  # fmt: skip
    assert html_in_cyrillic(html) == (
        '<a href="/inquiry/status/" title="Pošalji">Пошаљи</a><p translate="no" class="code">K7QM-NJ4L</p>'
        "<textarea>ljubav</textarea><p>&quot;Џеп&quot; &amp; нож</p>"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/inquiry/", "/inquiry/status/"])
def test_head_works_on_the_public_pages_for_uptime_checkers(client, path):
    assert client.head(path).status_code == 200


@pytest.mark.django_db
def test_safe_to_call_without_a_number_is_refused_with_a_clear_message_and_nothing_stored(client):
    response = client.post("/inquiry/", form_data(safe_to_call="yes"), follow=True)
    assert response.status_code == 400
    assert "napišite broj na koji da vas zovemo" in response.content.decode()
    assert "Trebam pomoć." in response.content.decode() and not Case.objects.exists()
    assert client.post("/inquiry/", form_data(safe_to_call="yes", phone="061 123 456"), follow=True).status_code == 200


@pytest.mark.django_db
def test_a_message_that_reads_as_danger_is_answered_first_with_the_numbers_to_call(client):
    html = client.post("/inquiry/", form_data(message="Muž mi prijeti nožem, ubiće me"), follow=True).content.decode()
    assert html.index('class="call-now"') < html.index('class="reference"')
    assert 'href="tel:122"' in html and 'href="tel:124"' in html
    calm = client.post("/inquiry/", form_data(message="Kada radite subotom?"), follow=True).content.decode()
    assert 'class="call-now"' not in calm


@pytest.mark.django_db
def test_staff_see_in_the_console_why_a_case_is_flagged(client):
    for n in range(11):
        client.post("/inquiry/", form_data(message=f"Poruka {n}"), REMOTE_ADDR=SHELTER, follow=True)
    flagged = case_saying("Poruka 10")
    supervisor = StaffFactory(role="supervisor")
    client.force_login(supervisor.user)
    html = client.get(f"/console/cases/{flagged.pk}/").content.decode()
    assert "mnogo poruka s jedne adrese" in html
    assert "moguće automatski poslano" not in html  # a shared address is not a bot
    assert "Više poruka s jedne adrese nego što ograničenje dopušta (10/minute)" in html


# --- The receipt, shown once: nothing for whoever picks up the phone after the quick exit ---------------------


def received_page(client, form: dict, **extra):
    """The form sent, and the page its redirect leads to."""
    sent = client.post("/inquiry/", form, **extra)
    assert sent.status_code == 303 and sent["Location"] == "/inquiry/received/"
    return client.get("/inquiry/received/")


@pytest.mark.django_db
def test_after_the_quick_exit_back_and_resend_show_neither_the_code_nor_the_reference(client):
    # The form's POST was answered by rendering the code; Back (then "Continue") resent it and the same case and
    # code came back, so whoever picked up the phone opened the conversation, days later too.
    form = form_data(message="Muž me tuče, ne smije znati", idempotency_key=uuid.uuid4().hex)
    receipt = received_page(client, form)
    case, code = Case.objects.get(), code_in(receipt)
    assert intake.citizen_token_matches(case, code) and case.reference in receipt.content.decode()

    back = client.get("/inquiry/received/")  # Back from the conversation, or a reload
    resent = client.post("/inquiry/", form, follow=True)  # the form restored by Back, sent again
    for page in (back, resent):
        html = page.content.decode()
        assert page.status_code == 200 and "Vaša poruka je primljena" in html
        assert code not in html and case.reference not in html and 'class="code"' not in html
    assert Case.objects.count() == 1 and case.messages.count() == 1


@pytest.mark.django_db
def test_a_resend_whose_first_answer_never_arrived_still_shows_the_code_once(client):
    # Send pressed twice on a slow line: the browser drops the first answer (and the session cookie it set).
    form = form_data(idempotency_key=uuid.uuid4().hex)
    client.post("/inquiry/", form)
    client.cookies.clear()
    receipt = received_page(client, form)
    assert intake.citizen_token_matches(Case.objects.get(), code_in(receipt))
    assert 'class="code"' not in client.get("/inquiry/received/").content.decode()


@pytest.mark.django_db
def test_the_receipt_of_a_message_that_reads_as_danger_starts_with_the_numbers_to_call(client):
    html = received_page(client, form_data(message="Muž mi prijeti nožem, ubiće me")).content.decode()
    assert html.index('class="call-now"') < html.index('class="reference"') and 'href="tel:122"' in html


@pytest.mark.django_db
def test_the_receipt_offers_no_language_switch_that_would_lose_the_code(client):
    # The switch reloaded the page it was on: with the code shown once, that reload showed no code.
    html = received_page(client, form_data()).content.decode()
    assert 'class="code"' in html and 'class="language-switch"' not in html
    assert 'class="language-switch"' in client.get("/inquiry/").content.decode()


@pytest.mark.django_db
def test_sending_again_with_not_safe_to_call_and_a_note_is_applied_and_on_the_timeline(client):
    # On a slow line the citizen sent, then switched "safe to call" to No and wrote why, and sent again: the
    # resend was answered with the first case, still safe to call, and a worker could ring the abuser's house.
    form = form_data(message="Treba mi pomoć", phone="061 123 456", safe_to_call="yes", safe_to_text="yes",
                     idempotency_key=uuid.uuid4().hex)  # fmt: skip
    client.post("/inquiry/", form)
    client.post("/inquiry/", {**form, "safe_to_call": "no", "safe_contact_note": "Ne zovite, on je kod kuće"})
    case = Case.objects.get()
    assert (case.safe_to_call, case.safe_to_text) == (False, True)
    assert case.safe_contact_note == "Ne zovite, on je kod kuće"
    event = case.timeline.get(kind=EventKind.CONTACT_LIMITED)
    assert event.actor_kind == "citizen" and event.details["safe_to_call"] is False

    client.post("/inquiry/", {**form, "safe_to_call": "yes", "safe_to_text": "no", "safe_contact_note": ""})
    case.refresh_from_db()  # back to "yes" is not safer: ignored; "no SMS" is
    assert (case.safe_to_call, case.safe_to_text) == (False, False)
    assert case.safe_contact_note == "Ne zovite, on je kod kuće" and case.messages.count() == 1


@pytest.mark.django_db
def test_reloading_a_rewritten_message_stores_it_once_and_it_opens_with_the_forms_code(client):
    # The same key with other words was stored as a new case with a random code, and every reload of that page
    # stored (and triaged, and for a critical message alerted staff about) yet another case.
    key = uuid.uuid4().hex
    client.post("/inquiry/", form_data(message="Treba mi pomoć oko ogrjeva", idempotency_key=key))
    rewritten = form_data(message="Muž je pijan i razbija stvari", idempotency_key=key)
    for _reload in range(3):
        client.post("/inquiry/", rewritten)
    assert Case.objects.count() == 2
    second = case_saying("Muž je pijan i razbija stvari")
    assert intake.citizen_token_matches(second, intake.token_for_idempotency_key(key))
