"""Every console page at a phone's width (360 px) and a desk's (1280 px): no sideways scrolling, no blocked
script or style, and a screenshot under var/screenshots/ to look at (queue and board also go to docs/)."""
from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from helpline.cases import intake
from helpline.cases import services as case_services
from helpline.cases.models import Case, CaseStatus
from helpline.casework import actions
from notifications import acknowledgement, outbox
from tests.browser.conftest import SCREENSHOTS, log_in
from tests.browser.test_console_flow import staff_member
from tests.factories import CaseFactory, ShiftFactory

DOCS = SCREENSHOTS.parents[1] / "docs" / "screenshots"

MESSAGES = [
    ("+38761555001", "Muž mi prijeti nožem, ubiće me večeras"),
    ("+38761555002", "Sin mi se drogira i krade novac od bake"),
    ("+38761555003", "Komšinica je stara i sama, nema šta jesti"),
    ("+38761555004", "Kako da se prijavim za dječiji doplatak?"),
    ("+38761555005", "Ne mogu više, hoću da se ubijem"),
]

# Restores the migrations' data (triage rules, escalation policies) that the live server's flush removes.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def a_busy_evening() -> dict:
    amra = staff_member(user__username="amra", user__first_name="Amra", user__last_name="Hodžić",
                        languages=["bs", "en"], skills=["domestic_violence", "child_protection"])  # fmt: skip
    dario = staff_member(user__username="dario", user__first_name="Dario", user__last_name="Marić")
    sanja = staff_member(role="supervisor", user__username="sanja", user__first_name="Sanja",
                         user__last_name="Kovač")  # fmt: skip
    for profile in (amra, dario, sanja):
        ShiftFactory(staff=profile)
    ShiftFactory(staff=dario, starts_at=timezone.now() + dt.timedelta(days=1))
    cases = []
    for n, (number, body) in enumerate(MESSAGES):
        stored = intake.record_inbound_sms(message_sid=f"SM{n:032d}", from_number=number, body=body)
        cases.append(actions.do_triage_case(stored.case.pk))
    first = Case.objects.get(pk=cases[0].pk)
    acknowledgement.acknowledge_case(first, by=first.assigned_to, via="console")
    outbox.reply_to_citizen(first, "Jeste li sada na sigurnom? Možete li razgovarati?",
                                           by=first.assigned_to)  # fmt: skip
    case_services.add_note(first, "Policija obaviještena (122), patrola na putu.", by=first.assigned_to)
    Case.objects.filter(pk=cases[1].pk).update(acknowledge_by=timezone.now() - dt.timedelta(minutes=6))
    Case.objects.filter(pk=cases[4].pk).update(is_escalated=True)
    CaseFactory(status=CaseStatus.TRIAGED, priority="high", category="child_protection")
    CaseFactory(status=CaseStatus.NEW)
    flood = actions.do_declare_crisis_event(
        by=sanja.user, title="Poplava Maglaj", places="Maglaj, Novi Šeher", keywords="poplava",
        answer="Zbog poplave odgovaramo sporije. Prihvatni centar: OŠ Maglaj.",
        answer_english="Answers are slow because of the flood. Shelter: Maglaj primary school.",
    )  # fmt: skip
    return {"amra": amra, "sanja": sanja, "case": first, "flood": flood}


def shoot(page, name: str, width: int) -> None:
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
    unlabelled = page.evaluate("""Array.from(document.querySelectorAll(
        'input:not([type=hidden]), select, textarea, button'))
        .filter(el => el.labels ? (el.labels.length === 0 && !el.getAttribute('aria-label')
                                   && !(el.tagName === 'BUTTON' && el.textContent.trim())) : false)
        .map(el => el.outerHTML.slice(0, 80))""")
    assert unlabelled == [], f"{name}: form controls without a label: {unlabelled}"
    assert page.locator("main").count() == 1 and page.locator("h1").count() == 1, name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link", f"{name}: Tab does not reach the skip link"


def test_every_page_fits_a_phone_and_a_desk(page_for, live_server, queues):
    scene = a_busy_evening()
    base = live_server.url
    for width in (360, 1280):
        anonymous = page_for(width=width, height=800)
        anonymous.goto(f"{base}/console/login/")
        shoot(anonymous, "login", width)

        worker = page_for(width=width, height=800)
        log_in(worker, base, "amra")
        shoot(worker, "queue", width)
        worker.goto(f"{base}/console/cases/{scene['case'].pk}/")
        shoot(worker, "case", width)

        supervisor = page_for(width=width, height=800)
        log_in(supervisor, base, "sanja")
        supervisor.goto(f"{base}/console/board/")
        shoot(supervisor, "board", width)
        supervisor.goto(f"{base}/console/roster/")
        shoot(supervisor, "roster", width)
        supervisor.goto(f"{base}/console/events/")
        shoot(supervisor, "crisis-events", width)
        supervisor.goto(f"{base}/console/events/{scene['flood'].pk}/")
        shoot(supervisor, "crisis-event", width)
        supervisor.goto(f"{base}/console/search/?priority=critical&priority=high")
        shoot(supervisor, "search", width)
        supervisor.get_by_role("button", name="English").click()
        expect(supervisor.get_by_role("heading", level=1)).to_have_text("Search cases")
        supervisor.goto(f"{base}/console/cases/{scene['case'].pk}/")
        shoot(supervisor, "case-en", width)
        for page in (anonymous, worker, supervisor):
            assert page.csp_errors == []
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # a test run must not change tracked files unasked
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in ("queue", "board"):
            shutil.copyfile(SCREENSHOTS / f"{name}-1280.png", DOCS / f"{name}.png")
