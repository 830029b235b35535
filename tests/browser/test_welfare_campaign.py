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
