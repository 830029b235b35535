"""Staff API tokens expire, belong to one device, and end with logout, a password change or a deactivation; an
open console session of a deactivated person ends on its next request."""
import datetime as dt

import pytest
import time_machine
from rest_framework.test import APIClient

from tests.factories import StaffFactory
from tests.tokens import api_token

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def worker():
    staff = StaffFactory()
    staff.user.set_password(PASSWORD)
    staff.user.save()
    return staff


def _log_in(username: str, password: str = PASSWORD) -> str:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["expiry"]
    return response.json()["token"]


def _me(token: str) -> int | str:
    """200, or "refused" (DRF answers 403 rather than 401 while session sign-in is the first way it tries)."""
    status = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code
    return "refused" if status in (401, 403) else status


def test_a_token_from_the_login_opens_the_api(worker):
    assert _me(_log_in(worker.user.username)) == 200


def test_a_wrong_password_gets_no_token(worker):
    credentials = {"username": worker.user.username, "password": "x"}
    response = APIClient().post("/api/v1/auth/token/", credentials, format="json")
    assert response.status_code == 400 and "token" not in response.json()


def test_an_expired_token_is_refused(worker, settings):
    with time_machine.travel(dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC), tick=False) as traveller:
        token = _log_in(worker.user.username)
        traveller.shift(settings.REST_KNOX["TOKEN_TTL"] - dt.timedelta(minutes=1))
        assert _me(token) == 200
        traveller.shift(dt.timedelta(minutes=2))
        assert _me(token) == "refused"


def test_logging_out_revokes_that_devices_token_only(worker):
    phone, laptop = _log_in(worker.user.username), _log_in(worker.user.username)
    assert APIClient().post("/api/v1/auth/logout/", HTTP_AUTHORIZATION=f"Token {phone}").status_code == 204
    assert _me(phone) == "refused"
    assert _me(laptop) == 200


def test_logging_out_everywhere_revokes_every_token(worker):
    phone, laptop = _log_in(worker.user.username), _log_in(worker.user.username)
    client = APIClient()
    assert client.post("/api/v1/auth/logout-everywhere/", HTTP_AUTHORIZATION=f"Token {phone}").status_code == 204
    assert (_me(phone), _me(laptop)) == ("refused", "refused")


def test_a_password_change_revokes_every_token_and_ends_every_session(worker, client):
    token = _log_in(worker.user.username)
    client.post("/console/login/", {"username": worker.user.username, "password": PASSWORD})
    assert client.get("/console/").status_code == 200
    worker.user.set_password("a new and different passphrase")
    worker.user.save()
    assert _me(token) == "refused"
    assert client.get("/console/").status_code == 302


def test_a_staff_profile_deactivated_through_the_api_loses_its_tokens_and_console_session(worker, client):
    token = _log_in(worker.user.username)
    client.post("/console/login/", {"username": worker.user.username, "password": PASSWORD})
    supervisor = APIClient()
    supervisor.force_authenticate(StaffFactory(role="supervisor").user)
    response = supervisor.patch(f"/api/v1/staff/{worker.pk}/", {"is_active": False}, format="json")
    assert response.status_code == 200
    assert _me(token) == "refused"
    assert client.get("/console/").status_code == 302
    assert APIClient().post(
        "/api/v1/auth/token/", {"username": worker.user.username, "password": PASSWORD}, format="json"
    ).status_code == 400


def test_a_user_made_inactive_loses_its_tokens_and_sessions(worker, client):
    token = _log_in(worker.user.username)
    client.force_login(worker.user)
    worker.user.is_active = False
    worker.user.save()  # as the admin's user form saves it
    assert _me(token) == "refused"
    assert client.get("/console/").status_code == 302


def test_an_open_console_session_of_a_deactivated_worker_ends_on_its_next_request(worker, client):
    client.force_login(worker.user)
    assert client.get("/console/").status_code == 200
    # A change that reaches the database without the model's save (a bulk update): the request check still holds.
    type(worker).objects.filter(pk=worker.pk).update(is_active=False)
    assert client.get("/console/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_a_token_of_a_profile_deactivated_without_a_save_is_refused(worker):
    token = api_token(worker.user)
    type(worker).objects.filter(pk=worker.pk).update(is_active=False)
    assert _me(token) == "refused"


def test_a_workers_token_stops_working_when_they_become_a_supervisor_without_a_second_factor(worker, settings):
    # The second factor was asked only when a token was issued: the worker's token, made without one, kept its
    # full supervisor access for its twelve hours after the promotion.
    settings.SECOND_FACTOR_REQUIRED = True
    token = _log_in(worker.user.username)  # a worker needs no second factor
    assert _me(token) == 200

    worker.role = "supervisor"
    worker.save()

    response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code in (401, 403)
    assert "second factor" in response.json()["detail"] or "drugi faktor" in response.json()["detail"]
    assert APIClient().get("/api/v1/cases/", HTTP_AUTHORIZATION=f"Token {token}").status_code in (401, 403)
