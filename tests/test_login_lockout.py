"""One lockout for every way in (admin, console, API token): per username at an address, per address across
usernames, per username across addresses (except where the person signed in before), in the database, and blind to
a client's own X-Forwarded-For. Across separate web processes: tests/test_lockout_across_processes.py."""
import datetime as dt

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client

from helpline.api.staff import LoginRateThrottle
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
ATTACKER = "198.51.100.66"
HOME = "192.0.2.10"


def _console(client, username, password, **extra):
    return client.post("/console/login/", {"username": username, "password": password}, **extra)


def _admin(client, username, password, **extra):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, **extra)


def _api(client, username, password, **extra):
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, content_type="application/json", **extra
    )


WAYS_IN = {"console": (_console, 302), "admin": (_admin, 302), "api": (_api, 200)}


@pytest.fixture(autouse=True)
def limits(settings, monkeypatch):
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 8
    settings.LOGIN_FAILURES_PER_ADDRESS_FOR_EVERYONE = 40
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "1000/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    # DRF copies the rates into the throttle class when it is first imported: once an earlier test has loaded the
    # API, the setting alone no longer reaches it, and the token login's own 10 a minute answered 429 first.
    monkeypatch.setattr(LoginRateThrottle, "THROTTLE_RATES", rates)
    return settings


def _staff_user():
    staff = StaffFactory()
    staff.user.set_password(PASSWORD)
    staff.user.is_staff = True  # every demo account may open the admin
    staff.user.save()
    return staff.user


@pytest.fixture
def worker():
    return _staff_user()


@pytest.fixture(params=sorted(WAYS_IN))
def way_in(request):
    return WAYS_IN[request.param]


def test_a_username_is_locked_out_after_the_configured_failures_even_with_the_right_password(client, worker, way_in):
    log_in, _ = way_in
    codes = [log_in(client, worker.username, f"guess{n}", REMOTE_ADDR=ATTACKER).status_code for n in range(5)]
    assert 429 not in codes[:4] and codes[4] == 429
    right = log_in(client, worker.username, PASSWORD, REMOTE_ADDR=ATTACKER)
    assert right.status_code == 429 and right["Retry-After"] == str(15 * 60)
    assert "_auth_user_id" not in client.session


def test_guessing_across_usernames_from_one_address_is_locked_out(client, worker, way_in):
    log_in, _ = way_in
    codes = [log_in(client, f"someone{n}", "guess", REMOTE_ADDR=ATTACKER).status_code for n in range(8)]
    assert 429 not in codes[:7] and codes[7] == 429
    assert log_in(client, worker.username, PASSWORD, REMOTE_ADDR=ATTACKER).status_code == 429


def test_guessing_at_many_names_from_the_office_address_does_not_lock_out_staff_who_sign_in_there(
    worker, way_in
):
    # One infected PC behind the centre's shared address failed at twenty names: every colleague was refused.
    log_in, success = way_in
    assert log_in(Client(), worker.username, PASSWORD, REMOTE_ADDR=HOME).status_code == success
    codes = [log_in(Client(), f"someone{n}", "guess", REMOTE_ADDR=HOME).status_code for n in range(8)]
    assert codes[7] == 429  # the names never used here are still stopped
    assert log_in(Client(), worker.username, PASSWORD, REMOTE_ADDR=HOME).status_code == success


def test_an_infected_pc_at_the_office_guessing_at_every_colleagues_name_locks_the_office_out_in_the_end(
    worker, way_in
):
    # Four guesses at each name that had signed in there stayed under every limit, every quarter of an hour, for ever.
    log_in, success = way_in
    colleagues = [worker, *(_staff_user() for _ in range(9))]
    for user in colleagues:
        assert log_in(Client(), user.username, PASSWORD, REMOTE_ADDR=HOME).status_code == success
    codes = [
        log_in(Client(), user.username, f"guess{n}", REMOTE_ADDR=HOME).status_code for user in colleagues
        for n in range(4)
    ]  # fmt: skip
    assert 429 not in codes[:39] and codes[39] == 429
    assert log_in(Client(), worker.username, PASSWORD, REMOTE_ADDR=HOME).status_code == 429
    assert log_in(Client(), worker.username, PASSWORD, REMOTE_ADDR=ATTACKER).status_code == success


def test_an_attackers_failures_do_not_lock_the_same_person_out_at_another_address(client, worker, way_in):
    log_in, success = way_in
    for n in range(10):
        log_in(client, worker.username, f"guess{n}", REMOTE_ADDR=ATTACKER)
    assert log_in(client, worker.username, PASSWORD, REMOTE_ADDR=HOME).status_code == success


def test_guesses_at_one_name_from_many_addresses_stop_where_the_person_never_signed_in(worker, way_in, settings):
    settings.LOGIN_FAILURES_PER_USERNAME_EVERYWHERE = 6
    log_in, success = way_in
    assert log_in(Client(), worker.username, PASSWORD, REMOTE_ADDR=HOME).status_code == success
    # A botnet: one guess from each address, far below each address's own limits.
    codes = [log_in(Client(), worker.username, f"guess{n}", REMOTE_ADDR=f"203.0.113.{n}").status_code for n in range(6)]
    assert 429 not in codes[:5] and codes[5] == 429
    assert log_in(Client(), worker.username, PASSWORD, REMOTE_ADDR="203.0.113.99").status_code == 429
    assert log_in(Client(), worker.username, PASSWORD, REMOTE_ADDR=HOME).status_code == success  # their usual place
    assert log_in(Client(), "someone-else", "guess", REMOTE_ADDR="203.0.113.99").status_code != 429


def test_a_rotating_x_forwarded_for_does_not_help_with_the_default_settings(client, worker, way_in):
    log_in, _ = way_in
    for n in range(5):
        log_in(client, worker.username, f"guess{n}", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"10.9.8.{n}")
    response = log_in(client, worker.username, PASSWORD, REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="10.9.8.200")
    assert response.status_code == 429


def test_behind_one_trusted_proxy_only_the_address_the_proxy_saw_counts(client, worker, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "172.18.0.2"
    for n in range(5):  # the client writes its own header; the proxy appends the address it saw
        forwarded = f"10.9.8.{n}, {ATTACKER}"
        _console(client, worker.username, f"guess{n}", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=forwarded)
    locked = _console(client, worker.username, PASSWORD, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {ATTACKER}")
    assert locked.status_code == 429
    elsewhere = _console(client, worker.username, PASSWORD, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=HOME)
    assert elsewhere.status_code == 302


def test_the_counters_are_shared_by_every_way_in_and_kept_in_the_database(client, worker):
    for n in range(2):
        _console(client, worker.username, f"guess{n}", REMOTE_ADDR=ATTACKER)
        _admin(client, worker.username, f"guess{n}", REMOTE_ADDR=ATTACKER)
    assert sum(a.failures_since_start for a in AccessAttempt.objects.filter(ip_address=ATTACKER)) == 4
    assert _api(client, worker.username, "guess", REMOTE_ADDR=ATTACKER).status_code == 429


def test_the_lockout_ends_after_the_cool_off(client, worker, settings):
    with time_machine.travel(dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC), tick=False) as traveller:
        for n in range(5):
            _console(client, worker.username, f"guess{n}", REMOTE_ADDR=ATTACKER)
        assert _console(client, worker.username, PASSWORD, REMOTE_ADDR=ATTACKER).status_code == 429
        traveller.shift(settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=1))
        assert _console(client, worker.username, PASSWORD, REMOTE_ADDR=ATTACKER).status_code == 302
