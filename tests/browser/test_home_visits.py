"""In a real browser: a worker starts a home visit in the console, the supervisor sees it with its countdown,
it goes overdue, the ladder calls the worker and then the supervisor, and the supervisor takes it on the page."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from helpline.visits import services
from helpline.visits.models import Visit
from notifications import outbox
from notifications.models import Notification
from tests.browser.conftest import PASSWORD, SCREENSHOTS, log_in
from tests.factories import CaseFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def staff_member(**fields):
    staff = StaffFactory(**fields)
    staff.user.set_password(PASSWORD)
    staff.user.save()
    ShiftFactory(staff=staff)
    return staff


def run_due_step() -> None:
    """The due time moves to the past (as if the minutes had passed), the tick runs, Twilio takes the messages."""
    past = timezone.now() - dt.timedelta(seconds=1)
    Visit.objects.filter(escalation_due_at__isnull=False).update(escalation_due_at=past)
    services.run_due_visit_escalations()
    for notification_id in Notification.objects.filter(status="queued").values_list("pk", flat=True):
        outbox.deliver(notification_id)


def test_a_visit_started_in_the_console_goes_overdue_and_the_supervisor_takes_it(page_for, live_server,
                                                                                fast_polling):
    staff_member(user__username="amra", user__first_name="Amra", phone="+38761200301")
    staff_member(user__username="sefica", user__first_name="Šefica", role="supervisor", phone="+38761200309")

    worker_page = page_for(width=360, height=780)
    log_in(worker_page, live_server.url, "amra")
    worker_page.goto(f"{live_server.url}/console/visits/")
    worker_page.locator("#visit_minutes").fill("30")
    worker_page.locator("#visit_address").fill("Maglaj, Ulica Maršala Tita 5")
    worker_page.locator("#visit-start-button").click()
    expect(worker_page.locator("#my-visit")).to_contain_text("Maršala Tita 5")
    expect(worker_page.locator("#my-visit time.countdown")).to_be_visible()
    visit = Visit.objects.get(worker__user__username="amra")

    board = page_for(width=360, height=780)
    log_in(board, live_server.url, "sefica")
    board.goto(f"{live_server.url}/console/visits/")
    row = board.locator(f"#visit-{visit.pk}")
    expect(row).to_contain_text("Maršala Tita 5")
    expect(row.locator("time.countdown")).to_be_visible()
    expect(row).to_have_attribute("data-visit-status", "active")

    run_due_step()  # overdue: Amra is called and texted
    expect(row).to_have_attribute("data-visit-status", "overdue")  # the panel polls: no reload
    expect(row.locator(".visit-step")).to_be_visible()
    expect(row.locator(".visit-told")).to_contain_text("Amra")

    run_due_step()  # five minutes later: the supervisor on duty, with the address
    expect(row.locator(".visit-told")).to_contain_text("Šefica")
    expect(row.locator(".visit-told .delivery-sent").first).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    board.screenshot(path=str(SCREENSHOTS / "visit-overdue-360.png"), full_page=True)

    row.locator("button.visit-acknowledge").click()
    expect(board.locator(f"#visit-{visit.pk} .badge.taken")).to_be_visible()
    expect(board.locator("h1")).to_be_visible()  # back on the whole page, not the polled fragment
    assert board.url == f"{live_server.url}/console/visits/"
    visit.refresh_from_db()
    assert visit.acknowledged_by.username == "sefica" and visit.escalation_due_at is None
    assert board.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert board.csp_errors == [] and worker_page.csp_errors == []


def test_a_duress_alarm_opens_the_busy_board_with_a_banner_and_a_beep_and_ends_only_after_a_confirmed_take(
    page_for, live_server, fast_polling
):
    # With eighteen cases waiting, the alarm used to sit 9,000 px down a 360 px board, grey and silent, and one
    # tap under "Take it" ended it.
    worker = staff_member(user__username="amra", user__first_name="Amra", phone="+38761200301")
    services.set_pins(worker, checkout_pin="2468", duress_pin="1357")
    staff_member(user__username="sefica", user__first_name="Šefica", role="supervisor", phone="+38761200309")
    for _ in range(18):
        CaseFactory(priority="critical")
    services.start_visit(worker, minutes=30, address="Maglaj, Rudarska 12, stan 3", via="console")

    board = page_for(width=360, height=780)
    log_in(board, live_server.url, "sefica")
    board.goto(f"{live_server.url}/console/board/")
    expect(board.locator("#waiting-title")).to_be_visible()
    services.check_out_with_pin(worker, "1357", via="SMS")
    visit = Visit.objects.get(worker=worker)

    banner = board.locator("#critical-alert")
    expect(banner).to_contain_text("Uzbuna s kućne posjete: Amra")  # the board polls: no reload
    assert int(board.evaluate("document.documentElement.dataset.beeps || 0")) >= 1
    row = board.locator(f"#visit-alarms #visit-{visit.pk}")
    expect(row).to_contain_text("Uzbuna od")
    assert row.bounding_box()["y"] < board.locator("#waiting-title").bounding_box()["y"]
    board.evaluate("window.scrollTo(0, 0)")
    assert board.locator("#visit-alarms").bounding_box()["y"] < 780  # on the first screen
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    board.screenshot(path=str(SCREENSHOTS / "board-visit-alarm-360.png"))
    expect(row.locator("button.visit-end")).to_have_count(0)  # nobody has taken it yet

    row.locator("button.visit-acknowledge").click()
    row = board.locator(f"#visit-{visit.pk}")
    expect(row.locator(".badge.taken")).to_be_visible()
    row.locator("summary").click()
    board.wait_for_timeout(1500)  # a poll comes and goes: the step stays open
    row.locator("textarea[name=note]").fill("Razgovarala s Amrom, sigurna je")
    board.screenshot(path=str(SCREENSHOTS / "board-visit-end-confirm-360.png"))
    with board.expect_navigation():
        row.locator("button.visit-end").click()
    expect(board.locator(".flash-success")).to_contain_text("Posjeta je završena")
    assert board.url == f"{live_server.url}/console/board/"
    visit.refresh_from_db()
    assert visit.status == "ended"
    assert Notification.objects.filter(idempotency_key__contains=":clear:").exists()
    assert not Notification.objects.filter(to_number="+38761200301").exists()
    assert board.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert board.csp_errors == []
