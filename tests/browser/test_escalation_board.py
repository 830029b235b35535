"""In a real browser: the supervisor's board shows a critical case still inside its deadline with its countdown,
then, once it escalates, the step, who was told and what Twilio reported; escalation policies are edited in the
admin, with their history."""
from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from playwright.sync_api import expect

from helpline.cases.models import Case
from helpline.casework import actions
from notifications import ladder, outbox
from notifications.models import EscalationPolicy, Notification
from tests.browser.conftest import PASSWORD, SCREENSHOTS, log_in
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def staff_member(**fields):
    staff = StaffFactory(**fields)
    staff.user.set_password(PASSWORD)
    staff.user.save()
    ShiftFactory(staff=staff)
    return staff


def test_the_board_shows_a_critical_case_before_and_after_its_deadline(page_for, live_server, fast_polling):
    worker = staff_member(user__username="amra", user__first_name="Amra", phone="+38761200301", languages=["bs"])
    staff_member(user__username="sefica", user__first_name="Šefica", role="supervisor", phone="+38761200309")
    case = CaseFactory()
    MessageFactory(case=case, body="ubit će me, ima nož")
    case = actions.do_triage_case(case.pk)
    assert case.priority == "critical" and case.assigned_to == worker.user

    page = page_for(width=360, height=780)
    log_in(page, live_server.url, "sefica")
    page.goto(f"{live_server.url}/console/board/")
    row = page.locator(f"#board-case-link-{case.pk}").locator("xpath=ancestor::li[1]")
    expect(row).to_be_visible()
    expect(row.locator("time.countdown")).to_be_visible()  # still inside its two minutes
    expect(row.locator(".notification-log")).to_contain_text("Amra")

    # Two minutes pass: the ladder's first step runs and Twilio (the console backend here) takes the messages.
    past = timezone.now() - dt.timedelta(seconds=1)
    Case.objects.filter(pk=case.pk).update(acknowledge_by=past, escalation_due_at=past)
    ladder.run_due_escalations()
    for notification_id in Notification.objects.filter(status="queued").values_list("pk", flat=True):
        outbox.deliver(notification_id)

    expect(row.locator(".badge.level")).to_be_visible()  # the board polls: no reload
    expect(row.locator(".badge.escalated")).to_be_visible()
    expect(row.locator(".notification-log")).to_contain_text("Amra")
    expect(row.locator(".notification-log .delivery-sent").first).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "board-escalated-360.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.csp_errors == []


def test_a_poll_over_fields_with_a_style_attribute_breaks_no_content_security_policy(page_for, live_server,
                                                                                   fast_polling):
    # A field can carry a style attribute our templates never wrote: a screenshot hides the caret with
    # el.style (Playwright leaves style="" behind), and password managers and other extensions style fields the
    # same way. htmx used to copy that attribute onto the polled copy with setAttribute('style'), which the CSP
    # refuses: "Applying inline style violates ... 'style-src 'self''" once per field with an id (the surge
    # form's three), and test_home_visits failed now and then, whenever a poll landed between its screenshot and
    # its next click.
    staff_member(user__username="sefica", user__first_name="Šefica", role="supervisor", phone="+38761200309")
    page = page_for(width=360, height=780)
    log_in(page, live_server.url, "sefica")
    page.goto(f"{live_server.url}/console/board/")
    expect(page.locator("#surge-name")).to_be_visible()
    page.screenshot()
    page.evaluate("document.getElementById('surge-notice').style.outline = '2px solid red'")  # as an extension
    assert page.locator("#surge-name").get_attribute("style") is not None  # the screenshot's leftover
    page.evaluate("""() => { window.settled = 0;
        document.addEventListener("htmx:afterSettle", () => { window.settled += 1; }); }""")
    page.wait_for_function("() => window.settled >= 2")  # two polls, swapped and settled
    assert page.csp_errors == []


def shipped_escalation_policies() -> None:
    """The four policies a fresh installation has (serialized_rollback does not restore them when another
    transactional test module ran first in the session)."""
    shipped = importlib.import_module("notifications.migrations.0002_default_escalation_policies")
    shipped.create_policies(django_apps, None)


def test_a_supervisor_edits_an_escalation_policy_in_the_admin(page_for, live_server, django_user_model):
    shipped_escalation_policies()
    django_user_model.objects.create_superuser("voditelj", "voditelj@example.test", PASSWORD)
    page = page_for()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "voditelj")
    page.fill("#id_password", PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(f"{live_server.url}/admin/")  # signed in: a navigation now would cancel the login post
    page.goto(f"{live_server.url}/admin/notifications/escalationpolicy/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(4)

    critical = EscalationPolicy.objects.get(priority="critical")
    page.goto(f"{live_server.url}/admin/notifications/escalationpolicy/{critical.pk}/change/")
    page.fill("#id_acknowledge_within_minutes", "3")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_be_visible()
    critical.refresh_from_db()
    assert critical.acknowledge_within_minutes == 3

    page.goto(f"{live_server.url}/admin/notifications/escalationpolicy/{critical.pk}/history/")
    expect(page.locator("body")).to_contain_text("voditelj")
