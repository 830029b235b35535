"""In a real browser: a supervisor starts a welfare campaign as a drill, and the tally moves as people are asked
and answer, without a reload. The screenshot goes to var/screenshots (and to docs/screenshots for the README with
UPDATE_DOCS_SCREENSHOTS=1)."""
from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from helpline.welfare import services
from helpline.welfare.models import Campaign, VulnerablePerson
from tests.browser.conftest import PASSWORD, SCREENSHOTS, log_in
from tests.factories import ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
DOCS = SCREENSHOTS.parents[1] / "docs" / "screenshots"


def test_a_supervisor_starts_a_campaign_and_watches_the_tally_move(page_for, live_server, fast_polling, settings):
    settings.SMS_PER_SECOND = 50  # everyone asked at once: the test watches the answers, not the rate
    supervisor = StaffFactory(user__username="sefica", role="supervisor", phone="+38761200309")
    supervisor.user.set_password(PASSWORD)
    supervisor.user.save()
    ShiftFactory(staff=supervisor)
    areas = ["Maglaj", "Doboj", "Šamac"]
    VulnerablePerson.objects.bulk_create([
        VulnerablePerson(full_name=f"Osoba {n}", phone=f"+38761{n:06d}", municipality=areas[n % 3],
                         legal_basis="public_task", birth_year=1930 + n, needs=["lives_alone"] if n % 2 else [])
        for n in range(12)
    ])  # fmt: skip

    page = page_for()
    log_in(page, live_server.url, "sefica")
    page.goto(f"{live_server.url}/console/welfare/")
    page.get_by_label("Naziv").first.fill("Poplava: provjera dobrobiti")  # the console speaks Bosnian
    page.locator("input[name=areas][value=Maglaj]").check()
    page.locator("input[name=areas][value=Doboj]").check()
    page.locator("input[name=is_drill]").check()
    page.locator("#start-campaign").click()
    page.wait_for_url(f"{live_server.url}/console/welfare/*/")
    campaign = Campaign.objects.get()
    assert campaign.is_drill and campaign.checks.count() == 8

    not_asked = page.locator('#welfare-tally tr.total td[data-column="not_yet_asked"]')
    expect(not_asked).to_have_text("8")
    # The beat's tick a second later: everyone asked (drill backend). The questions go out SMS_PER_SECOND apart, so
    # a tick at once (a fast run) would find the last one not yet due.
    services.advance_campaigns(timezone.now() + dt.timedelta(seconds=1))
    expect(page.locator('#welfare-tally tr.total td[data-column="no_answer"]')).to_have_text("8")

    phones = list(campaign.checks.order_by("pk").values_list("phone", flat=True))
    for phone, answer in zip(phones, ["1", "dobro sam", "сигуран сам", "2", "1"], strict=False):
        services.answer_welfare_reply(phone, answer, is_drill=True)
    expect(page.locator('#welfare-tally tr.total td[data-column="safe"]')).to_have_text("4")  # polls: no reload
    expect(page.locator('#welfare-tally tr.total td[data-column="needs_help"]')).to_have_text("1")
    expect(page.locator('#welfare-tally tr.total td[data-column="no_answer"]')).to_have_text("3")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "welfare-campaign.png"), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # a test run must not change tracked files unasked
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCREENSHOTS / "welfare-campaign.png", DOCS / "welfare-campaign.png")
    page.locator('#welfare-tally tr.total td[data-column="needs_help"] a').click()
    expect(page.locator("table.welfare-people")).to_contain_text("Osoba")
    assert page.csp_errors == []


def test_the_board_and_the_campaign_pages_fit_a_phone_while_a_campaign_runs_and_a_visit_has_a_long_address(
    page_for, live_server
):
    # At 360 px the board was 614 px wide while a campaign ran and 696 px with a long visit address: the Overdue
    # badges and the Reassign buttons were off screen. The campaign page, its people list and the register too.
    from helpline.visits import services as visit_services
    from tests.factories import CaseFactory

    supervisor = StaffFactory(user__username="sefica", role="supervisor", phone="+38761200309")
    supervisor.user.set_password(PASSWORD)
    supervisor.user.save()
    ShiftFactory(staff=supervisor)
    worker = StaffFactory(phone="+38761200301")
    ShiftFactory(staff=worker)
    VulnerablePerson.objects.bulk_create([
        VulnerablePerson(full_name=f"Osoba Sa Vrlo Dugim Prezimenom{n}", phone=f"+38761{n:06d}",
                         municipality="Maglaj" if n % 2 else "Novi Grad Sarajevo", legal_basis="public_task",
                         birth_year=1930 + n, address="Ulica Hasana Kikića bb, zgrada 4, ulaz 2, stan 17",
                         needs=["power_device", "lives_alone"] if n % 2 else ["dialysis"])
        for n in range(6)
    ])  # fmt: skip
    campaign = services.start_campaign(
        title="Poplava Maglaj i Novi Grad: provjera dobrobiti", question="Jeste li?",
        areas=["Maglaj", "Novi Grad Sarajevo"], needs=[], by=supervisor.user,
    )  # fmt: skip
    visit_services.start_visit(worker, minutes=30, via="console",
                               address="Ulica_Maršala_Tita_bb_zgrada_Energoinvest_ulaz_3_stan_42_Sarajevo_Centar")
    CaseFactory(priority="critical")

    page = page_for(width=360, height=780)
    log_in(page, live_server.url, "sefica")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in [("board", "/console/board/"), ("campaign", f"/console/welfare/{campaign.pk}/"),
                       ("people", f"/console/welfare/{campaign.pk}/people/?column=not_yet_asked"),
                       ("register", "/console/welfare/register/")]:  # fmt: skip
        page.goto(f"{live_server.url}{path}")
        page.screenshot(path=str(SCREENSHOTS / f"fit-360-{name}.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{name} is {width} px wide at 360 px"


def test_the_welfare_visits_page_fits_a_phone_a_page_at_a_time_with_each_persons_needs(page_for, live_server):
    # Every open visit on one page, hundreds at night, scrolled through at 360 px without what decides who to go to
    # first; a long address or a long name must wrap, not widen the page.
    from helpline.welfare import visits

    supervisor = StaffFactory(user__username="sefica", role="supervisor", phone="+38761200309")
    supervisor.user.set_password(PASSWORD)
    supervisor.user.save()
    ShiftFactory(staff=supervisor)
    VulnerablePerson.objects.bulk_create([
        VulnerablePerson(full_name=f"Osoba Sa Vrlo Dugim Prezimenom-Dvostrukim{n}", phone=f"+38761{n:06d}",
                         municipality="Novi Grad Sarajevo", legal_basis="public_task", birth_year=1930 + n % 50,
                         address="Ulica_Maršala_Tita_bb_zgrada_Energoinvest_ulaz_3_stan_42_Sarajevo_Centar",
                         trusted_contact_name="Kćerka Amra Hadžiahmetović-Zukić", trusted_contact_phone="+38761777777",
                         needs=["power_device", "lives_alone", "mobility", "dementia"] if n % 2 else ["dialysis"])
        for n in range(60)
    ])  # fmt: skip
    campaign = services.start_campaign(title="Poplava", question="Jeste li?", areas=[], needs=[], by=None)
    for check in campaign.checks.all():
        visits.open_visit(check, timezone.now(), reason="no answer to the SMS or the call")

    page = page_for(width=360, height=780)
    log_in(page, live_server.url, "sefica")
    page.goto(f"{live_server.url}/console/welfare/visits/")
    expect(page.locator("section.welfare-visit")).to_have_count(50)
    expect(page.locator("section.welfare-visit").first).to_contain_text("Dijaliza")  # the oldest on dialysis
    expect(page.locator("nav.pages")).to_contain_text("Stranica 1 od 2")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "fit-360-welfare-visits.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the welfare visits page is {width} px wide at 360 px"
    assert page.csp_errors == []
