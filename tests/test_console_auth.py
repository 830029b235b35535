"""Logging in to the console: locked-out guessing (more in test_login_lockout), and sessions that end when nobody
uses them."""
import datetime as dt

import pytest
import time_machine

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def worker():
    staff = StaffFactory()
    staff.user.set_password(PASSWORD)
    staff.user.save()
    return staff.user


def test_a_worker_logs_in_and_lands_on_their_queue(client, worker):
    response = client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_login_goes_back_to_the_page_asked_for_but_never_to_another_site(client, worker):
    data = {"username": worker.username, "password": PASSWORD}
    assert client.post("/console/login/?next=/console/roster/", data)["Location"] == "/console/roster/"
    client.logout()
    assert client.post("/console/login/?next=https://evil.example/", data)["Location"] == "/console/"


def test_a_wrong_password_is_a_field_error_not_a_login(client, worker):
    response = client.post("/console/login/", {"username": worker.username, "password": "nope"})
    assert response.status_code == 400 and "error-summary" in response.content.decode()
    assert client.get("/console/").status_code == 302


def test_guessing_is_stopped_after_five_failures_even_with_the_right_password(client, worker, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    codes = [client.post("/console/login/", {"username": worker.username, "password": f"guess{n}"}).status_code
             for n in range(5)]  # fmt: skip
    assert codes == [400] * 4 + [429]  # the fifth failure is answered with the lockout page
    response = client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
    assert response.status_code == 429 and "Retry-After" in response
    assert client.get("/console/").status_code == 302


def test_failures_at_other_usernames_leave_a_worker_free_to_log_in(client, worker):
    for n in range(4):
        client.post("/console/login/", {"username": "someone-else", "password": f"guess{n}"})
    response = client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
    assert response.status_code == 302
    client.logout()
    other_address = client.post(
        "/console/login/", {"username": "someone-else", "password": "x"}, REMOTE_ADDR="10.0.0.9"
    )
    assert other_address.status_code == 400


def test_logging_out_needs_a_post_and_ends_the_session(client, worker):
    client.force_login(worker)
    client.get("/console/")
    assert client.get("/console/logout/").status_code == 405
    assert client.post("/console/logout/").status_code == 302
    assert client.get("/console/").status_code == 302


def test_a_session_ends_after_half_an_hour_without_activity_however_often_the_queue_polls(client, worker, settings):
    settings.CONSOLE_IDLE_MINUTES = 30
    start = dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
        for _ in range(7):  # 35 minutes of polling every 5 minutes, and nobody clicks
            traveller.shift(dt.timedelta(minutes=5))
            response = client.get("/console/queue/live/", HTTP_HX_REQUEST="true")
        assert response.status_code == 204 and response["HX-Redirect"].startswith("/console/login/")
        login_page = client.get("/console/").url
        assert login_page.startswith("/console/login/")


def test_a_click_keeps_the_session_alive(client, worker, settings):
    settings.CONSOLE_IDLE_MINUTES = 30
    with time_machine.travel(dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC), tick=False) as traveller:
        client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
        for _ in range(4):
            traveller.shift(dt.timedelta(minutes=20))
            assert client.get("/console/").status_code == 200


def test_the_login_page_says_why_the_session_ended(client, worker, settings):
    with time_machine.travel(dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC), tick=False) as traveller:
        client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
        traveller.shift(dt.timedelta(minutes=settings.CONSOLE_IDLE_MINUTES + 1))
        response = client.get("/console/", follow=True)
    assert response.status_code == 200 and 'class="notice"' in response.content.decode()


def test_typing_a_long_reply_keeps_the_session_alive(client, worker, settings):
    """The page reports key presses now and then (POST still-here); that counts as activity, polling does not."""
    settings.CONSOLE_IDLE_MINUTES = 30
    with time_machine.travel(dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC), tick=False) as traveller:
        client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
        for _ in range(3):
            traveller.shift(dt.timedelta(minutes=20))
            client.get("/console/queue/live/", HTTP_HX_REQUEST="true")
            assert client.post("/console/still-here/").status_code == 204
        assert client.get("/console/").status_code == 200


def test_after_signing_in_again_the_worker_is_back_on_the_same_search_with_all_its_filters(client, worker, settings):
    with time_machine.travel(dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC), tick=False) as traveller:
        client.post("/console/login/", {"username": worker.username, "password": PASSWORD})
        traveller.shift(dt.timedelta(minutes=settings.CONSOLE_IDLE_MINUTES + 1))
        to_login = client.get("/console/search/?status=new&priority=high")
        assert to_login.status_code == 302
        signed_in = client.post(to_login.url, {"username": worker.username, "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in.url == "/console/search/?status=new&priority=high"
