"""The citizen's side in Chromium on a small phone (360 px): danger answered first, a code people can type, a
conversation that shows replies as they come, and nothing sent twice. Screenshots of the form, the critical
confirmation and the conversation at 360 and 1280 px go to var/screenshots/ (and docs/screenshots/ with
UPDATE_DOCS_SCREENSHOTS=1, for the README)."""
from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.sync_api import expect

from helpline.cases.models import Case, Direction, EventKind
from notifications import outbox
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_console_flow import staff_member

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DOCS = SCREENSHOTS.parents[1] / "docs" / "screenshots"
PHONE = {"width": 360, "height": 740}  # a small Android phone's viewport, browser bars taken off
DANGER = "Muž mi prijeti nožem, upravo sada, ubiće me. Djeca su sa mnom."
MESSAGE_LABEL = "Šta se dešava? Kako vam možemo pomoći?"


@pytest.fixture
def quick_polling(settings):
    settings.CITIZEN_POLL_SECONDS = 1
    return settings


def write_to_us(page, base_url: str, message: str) -> None:
    page.goto(f"{base_url}/inquiry/")
    page.get_by_label(MESSAGE_LABEL).fill(message)
    page.get_by_role("button", name="Pošalji").click()
    page.wait_for_load_state()


def receipt(page) -> tuple[str, str]:
    return page.locator(".reference").inner_text().strip(), page.locator(".code").inner_text().strip()


def shoot(page, name: str, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"citizen-{name}-{width}.png"), full_page=False)


def assert_fits_the_width(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_critical_message_is_answered_first_with_what_to_do_now(page_for, live_server):
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, DANGER)

    call_now = page.locator(".call-now")
    expect(call_now).to_be_visible()
    police = call_now.get_by_role("link", name=re.compile("Policija"))
    assert police.get_attribute("href") == "tel:122"
    assert call_now.locator('a[href="tel:124"]').count() == 1 and call_now.locator('a[href="tel:1265"]').count() == 1
    box = police.bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"], "the police button must be on the first screen"
    # Danger first: the call-now block comes before the reference and the code.
    heading_y = page.get_by_role("heading", name="Ako ste sada u opasnosti, pozovite").bounding_box()["y"]
    assert heading_y < page.locator(".reference").bounding_box()["y"]
    assert_fits_the_width(page)
    assert page.csp_errors == []


def test_an_ordinary_question_gets_no_alarm_but_the_police_number_stays_on_the_first_screen(page_for, live_server):
    page = page_for(**PHONE)
    page.goto(f"{live_server.url}/inquiry/")
    police = page.locator(".danger-line a[href='tel:122']")
    box = police.bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"]
    # ...without pushing the form down: the message box still starts on the first screen.
    assert page.get_by_label(MESSAGE_LABEL).bounding_box()["y"] < PHONE["height"]
    write_to_us(page, live_server.url, "Kada radi centar subotom?")
    assert page.locator(".call-now").count() == 0
    expect(page.get_by_role("heading", level=1)).to_have_text("Vaša poruka je primljena")


def test_a_cyrillic_message_gives_cyrillic_pages(page_for, live_server):
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, "Муж ме туче, помозите, не смијем звати.")

    # It reads as danger: what to do now comes first, in the citizen's script too.
    expect(page.get_by_role("heading", level=1)).to_have_text("Ако сте сада у опасности, позовите")
    expect(page.get_by_role("heading", level=2).first).to_have_text("Ваша порука је примљена")
    expect(page.locator(".call-now a[href='tel:122']")).to_have_text("Полиција 122")
    assert page.locator("html").get_attribute("lang") == "bs-Cyrl"
    reference, code = receipt(page)
    assert re.fullmatch(r"SOS-\d{4}-\d{5}", reference)  # what the citizen types back stays as it is
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    assert Case.objects.get().language == "bs"

    page.get_by_role("button", name="Отвори разговор с нама").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Наш разговор")
    expect(page.locator(".messages .body")).to_have_text("Муж ме туче, помозите, не смијем звати.")
    expect(page.get_by_role("button", name="Пошаљи")).to_be_visible()
    assert_fits_the_width(page)
    shoot(page, "conversation-cyrillic", 360)
    assert page.csp_errors == []


def test_in_english_the_call_now_block_is_in_english(page_for, live_server):
    page = page_for(**PHONE)
    page.goto(f"{live_server.url}/inquiry/")
    page.get_by_role("button", name="English").click()
    page.get_by_label("What is happening? How can we help?").fill("He is hitting me right now, help, he has a knife")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("If you are in danger now, call")
    expect(page.locator(".call-now a[href='tel:122']")).to_have_text("Police 122")
    assert Case.objects.get().language == "en"
    assert_fits_the_width(page)
    shoot(page, "critical-english", 360)


def test_the_conversation_shows_a_workers_reply_without_a_reload(page_for, live_server, quick_polling):
    worker = staff_member(user__first_name="Amra")
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, "Trebam savjet oko skrbništva nad unukom.")
    page.get_by_role("button", name="Otvori razgovor s nama").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Naš razgovor")
    page.evaluate("window.stillTheSamePage = true")

    outbox.reply_to_citizen(Case.objects.get(), "Dobar dan, javljam se sutra u 10 sati.", by=worker.user)

    expect(page.locator(".messages .from-us .body")).to_have_text("Dobar dan, javljam se sutra u 10 sati.",
                                                                  timeout=10000)  # fmt: skip
    assert page.evaluate("window.stillTheSamePage") is True  # shown by polling, not by a reload
    assert page.csp_errors == []


def test_reloading_after_a_follow_up_stores_it_once(page_for, live_server):
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, "Sin ne dolazi kući već dva dana.")
    page.get_by_role("button", name="Otvori razgovor s nama").click()
    page.get_by_label("Pišite nam ponovo").fill("Javio se, ali ne želi reći gdje je.")
    page.get_by_role("button", name="Pošalji").click()
    expect(page.get_by_role("status")).to_have_text("Vaša poruka je dodana vašem slučaju.")

    page.reload()
    page.reload()
    page.go_back()
    page.go_forward()

    case = Case.objects.get()
    assert case.messages.filter(direction=Direction.INBOUND).count() == 2
    assert case.timeline.filter(kind=EventKind.MESSAGE_RECEIVED).count() == 1
    expect(page.locator(".messages .from-you")).to_have_count(2)


def test_the_code_typed_in_lower_case_with_spaces_opens_the_case(page_for, live_server):
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, "Komšinica je stara i sama, nema šta jesti.")
    reference, code = receipt(page)

    later = page_for(**PHONE)  # another day, another browser: only what was written down on paper
    later.goto(f"{live_server.url}/inquiry/status/")
    typed_reference = reference.lower().replace("-", " ").replace(" 0000", " ")  # "sos 2026 1"
    later.get_by_label("Broj slučaja").fill(typed_reference)
    later.get_by_label("Vaša tajna šifra").fill(" ".join(code.replace("-", "").lower()[i:i + 4] for i in (0, 4, 8)))
    later.get_by_role("button", name="Prikaži moj slučaj").click()

    expect(later.get_by_role("heading", level=1)).to_contain_text(reference)
    expect(later.locator(".messages .body")).to_have_text("Komšinica je stara i sama, nema šta jesti.")

    later.get_by_role("button", name="Zatvori razgovor na ovom telefonu").click()
    expect(later.get_by_label("Vaša tajna šifra")).to_be_visible()  # the next person needs the code again


def test_the_quick_exit_closes_the_conversation_in_this_browser(page_for, live_server, settings):
    settings.QUICK_EXIT_URL = f"{live_server.url}/healthz/"  # a neutral page; the test has no internet
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, "Ne smijem da pričam, on je kod kuće.")
    page.get_by_role("button", name="Otvori razgovor s nama").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Naš razgovor")

    page.get_by_role("link", name=re.compile("Brzi izlaz")).click()
    page.wait_for_url(f"{live_server.url}/healthz/")

    page.goto(f"{live_server.url}/inquiry/status/")  # whoever picks up the phone next
    expect(page.get_by_label("Vaša tajna šifra")).to_be_visible()
    assert "Ne smijem da pričam" not in page.content()


def test_back_after_the_quick_exit_shows_neither_the_code_nor_the_case(page_for, live_server, settings):
    # The form's POST was answered with the page itself: Back (then "Continue") sent it again and the same
    # reference and code came back, and "Open the conversation" showed everything written.
    settings.QUICK_EXIT_URL = f"{live_server.url}/healthz/"
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, "Ne smijem da pričam, on je kod kuće.")
    reference, code = receipt(page)
    page.get_by_role("button", name="Otvori razgovor s nama").click()
    page.get_by_role("link", name=re.compile("Brzi izlaz")).click()
    page.wait_for_url(f"{live_server.url}/healthz/")

    for _step in range(2):  # whoever picks up the phone: Back, and Back again, reloading each page
        page.go_back()
        page.reload()
        html = page.content()
        assert code not in html and reference not in html and "Ne smijem da pričam" not in html
    assert Case.objects.count() == 1


@pytest.mark.parametrize("width", [360, 1280])
def test_screenshots_of_the_citizens_pages(page_for, live_server, width):
    worker = staff_member(user__first_name="Amra")
    page = page_for(width=width, height=PHONE["height"] if width == 360 else 900)
    page.goto(f"{live_server.url}/inquiry/")
    assert_fits_the_width(page)
    shoot(page, "form", width)

    write_to_us(page, live_server.url, DANGER)
    assert_fits_the_width(page)
    shoot(page, "critical", width)

    case = Case.objects.get()
    outbox.reply_to_citizen(case, "Jeste li sada na sigurnom? Policija je obaviještena i dolazi. Ako možete, "
                                  "zaključajte se u sobu s djecom.", by=worker.user)  # fmt: skip
    page.get_by_role("button", name="Otvori razgovor s nama").click()
    expect(page.locator(".messages .from-us")).to_have_count(1)
    assert_fits_the_width(page)
    shoot(page, "conversation", width)
    assert page.csp_errors == []
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # a test run must not change tracked files unasked
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in ("form", "critical", "conversation"):
            shutil.copyfile(SCREENSHOTS / f"citizen-{name}-{width}.png", DOCS / f"citizen-{name}-{width}.png")


def overlaps(one: dict, other: dict) -> bool:
    return not (one["x"] + one["width"] <= other["x"] or other["x"] + other["width"] <= one["x"]
                or one["y"] + one["height"] <= other["y"] or other["y"] + other["height"] <= one["y"])  # fmt: skip


def test_at_360px_the_reference_is_one_line_and_the_quick_exit_never_covers_the_receipt(page_for, live_server):
    # The reference broke as "SOS-2026-" / "00007", and scrolled a little, the fixed quick exit covered the
    # receipt's label and the top of the reference.
    page = page_for(**PHONE)
    write_to_us(page, live_server.url, "Trebam savjet oko alimentacije.")
    reference = page.locator(".reference")
    assert reference.evaluate("e => e.getClientRects().length === 1 && e.scrollWidth <= e.clientWidth")
    line = reference.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    assert reference.bounding_box()["height"] <= line * 1.2, "the reference is on one line"
    assert_fits_the_width(page)
    quick_exit = page.locator(".quick-exit")
    label = page.locator(".receipt p").first
    for scrolled in range(0, 400, 20):
        page.evaluate(f"window.scrollTo(0, {scrolled})")
        exit_box = quick_exit.bounding_box()
        for part in (label, reference):
            box = part.bounding_box()
            if box["y"] >= exit_box["y"] + exit_box["height"] or box["y"] + box["height"] <= exit_box["y"]:
                continue  # wholly below or above it
            # Under the quick exit, a line is hidden whole (a bar across the page), never half beside it.
            assert exit_box["x"] <= 0.5 and exit_box["width"] >= PHONE["width"] - 1, (scrolled, box, exit_box)
    assert page.csp_errors == []


def test_a_form_sent_back_with_errors_puts_the_focus_on_what_to_correct(page_for, live_server):
    page = page_for(**PHONE)
    page.goto(f"{live_server.url}/inquiry/")
    page.get_by_role("button", name="Pošalji").click()
    page.wait_for_load_state()
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    box, exit_box = summary.bounding_box(), page.locator(".quick-exit").bounding_box()
    assert not overlaps(box, exit_box) and box["y"] < PHONE["height"]
    assert page.csp_errors == []
