"""In a real browser: a worker sees a new SMS case arrive, takes it and replies; a supervisor reassigns an
overdue case from the board."""
from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from helpline.cases.models import Case, CaseStatus, Direction
from helpline.casework import actions
from notifications.models import Notification, NotificationKind
from tests.browser.conftest import PASSWORD, log_in
from tests.conftest import sign
from tests.factories import CaseFactory, ShiftFactory, StaffFactory

# Restores the migrations' data (triage rules, escalation policies) that the live server's flush removes.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def staff_member(**fields):
    staff = StaffFactory(**fields)
    staff.user.set_password(PASSWORD)
    staff.user.save()
    return staff


def send_signed_sms(base_url: str, body: str, *, sid: str, from_number: str = "+38761777888") -> int:
    """What Twilio does: a form POST signed over the public URL."""
    path = "/webhooks/twilio/sms/"
    params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": from_number, "To": "+38733000111",
              "Body": body, "NumMedia": "0"}  # fmt: skip
    response = requests.post(base_url + path, data=params, headers={"X-Twilio-Signature": sign(path, params)},
                             timeout=10)  # fmt: skip
    return response.status_code


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_worker_sees_a_new_sms_case_arrive_acknowledges_it_and_replies(page_for, live_server, fast_polling, queues):
    worker = staff_member(user__username="amra", user__first_name="Amra", languages=["bs"])
    ShiftFactory(staff=worker)
    page = page_for()
    log_in(page, live_server.url, "amra")
    expect(page.locator("#queue-live")).to_contain_text("Nemate otvorenih slučajeva")
    page.get_by_role("button", name="Uključi zvuk").click()

    assert send_signed_sms(live_server.url, "Muž mi prijeti nožem, ubiće me", sid="SM" + "1" * 32) == 200
    case = wait_for(lambda: Case.objects.filter(messages__twilio_sid="SM" + "1" * 32).first())
    # No reload: the waiting list polls and shows the new, not yet triaged case.
    expect(page.locator("#unassigned-title + ol")).to_contain_text(case.reference)

    # The triage worker's job (its task only calls this service): critical, and assigned by the roster.
    actions.do_triage_case(case.pk)
    case.refresh_from_db()
    assert case.priority == "critical" and case.assigned_to == worker.user
    alert = page.locator("#critical-alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(case.reference)
    expect(page.locator("#mine-title + ol")).to_contain_text(case.reference)
    assert int(page.evaluate("document.documentElement.dataset.beeps || 0")) >= 2  # the test beep and the alert
    countdown = page.locator(f'#mine-title + ol [data-critical="{case.pk}"] .countdown')
    expect(countdown).to_have_text(re.compile(r"\d\d:\d\d"))

    alert.get_by_role("link", name=case.reference).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(case.reference)
    expect(page.locator("#conversation")).to_contain_text("prijeti nožem")
    page.get_by_role("button", name="Preuzmi", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("Preuzeto")
    case.refresh_from_db()
    assert case.status == CaseStatus.ACKNOWLEDGED and case.acknowledged_at is not None

    page.get_by_label("Odgovor osobi").fill("Pozovite 122 ako ste u opasnosti. Zovemo vas za 5 minuta.")
    page.get_by_role("button", name="Pošalji odgovor").click()
    expect(page.locator("#conversation")).to_contain_text("Zovemo vas za 5 minuta")
    reply = case.messages.get(direction=Direction.OUTBOUND)
    outbox = Notification.objects.get(message=reply, kind=NotificationKind.CITIZEN_REPLY)
    assert str(outbox.to_number) == "+38761777888" and "Zovemo vas" in outbox.body
    assert page.csp_errors == []


def test_a_supervisor_sees_an_overdue_case_on_the_board_and_reassigns_it(page_for, live_server, fast_polling):
    slow = staff_member(user__username="dario", user__first_name="Dario")
    free = staff_member(user__username="jelena", user__first_name="Jelena")
    staff_member(role="supervisor", user__username="sanja", user__first_name="Sanja")
    ShiftFactory(staff=free)
    calm = CaseFactory(assigned_to=slow.user, status=CaseStatus.ASSIGNED, priority="normal",
                       acknowledge_by=timezone.now() + dt.timedelta(minutes=10))  # fmt: skip
    page = page_for()
    log_in(page, live_server.url, "sanja")
    page.get_by_role("link", name="Pregled").click()
    board = page.locator("#board-live")
    expect(board).to_contain_text("Niko ne čeka osobu.")

    overdue = CaseFactory(assigned_to=slow.user, status=CaseStatus.ASSIGNED, priority="high",
                          acknowledge_by=timezone.now() - dt.timedelta(minutes=4))  # fmt: skip
    expect(board).to_contain_text(overdue.reference)  # arrives by polling
    assert calm.reference not in board.inner_text()
    choice = page.get_by_label(f"Dodijeli {overdue.reference}")
    choice.focus()
    choice.select_option(value=str(free.pk))
    page.wait_for_timeout(2500)  # two polls: the list must not be replaced under a choice being made
    expect(choice).to_have_value(str(free.pk))
    page.locator(f"form:has(#reassign-{overdue.pk})").get_by_role("button", name="Dodijeli drugome").click()
    expect(page.locator(".flash")).to_contain_text("dodijeljen nekom drugom")
    overdue.refresh_from_db()
    assert overdue.assigned_to == free.user and overdue.acknowledge_by > timezone.now()
    assert page.url.endswith("/console/board/")
    # Still waiting for its new worker to take it, but no longer overdue: a fresh deadline.
    row = board.locator(f"#board-case-link-{overdue.pk}").locator("xpath=ancestor::li[1]")
    expect(row.locator(".badge.late")).to_have_count(0)
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Supervisor board")
    assert page.csp_errors == []


def test_an_idle_queue_page_goes_back_to_the_login_page_by_itself(page_for, live_server, fast_polling):
    staff_member(user__username="amra")
    page = page_for()
    log_in(page, live_server.url, "amra")
    fast_polling.CONSOLE_IDLE_MINUTES = 0  # any second without a click is too long
    page.wait_for_url(re.compile(r"/console/login/"), timeout=10000)  # the next poll is told to leave
    expect(page.locator(".notice")).to_contain_text("bez aktivnosti")
