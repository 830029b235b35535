"""The login lockout holds across web processes: two real gunicorn servers, each with its own in-process cache (the
`locmemcache://` default), share one database. Failures made on one count on the other for the admin, the
console and the API token login alike, per username and per address; another address stays open; and a burst of
parallel guesses spread over both processes loses no count.

What "several web processes" needs: the counters in a store every process reads (axes' database handler, not a
per-process cache), the same address for the same client in each (helpline.access.lockout.client_ip), and a
failure counted by an atomic update, not a read-then-write that two processes could interleave."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from axes.models import AccessAttempt
from django.db import connection
from django.db.models import Sum

from tests.factories import StaffFactory

# serialized_rollback: flushed without it, the tables are refilled by post_migrate, and the next test that
# restores the serialized rows (test_notifications.py's concurrent sweeps) would find them there already.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "correct horse battery staple"
ATTACKER, HOME = "198.51.100.66", "192.0.2.10"
REPOSITORY = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("two processes on one database: PostgreSQL (SQLite's test database lives in memory)")
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def servers(django_db_setup, tmp_path_factory):
    """Two gunicorn processes behind one (pretend) reverse proxy, so X-Forwarded-For's last address counts.
    Started once for the module: each test's rows are committed (transaction=True) and flushed after it."""
    tmp_path = tmp_path_factory.mktemp("var")
    env = {
        **os.environ, "DATABASE_URL": _database_url(), "CACHE_URL": "locmemcache://", "VAR_DIR": str(tmp_path),
        "SECRET_KEY": "lockout-test-" + "x" * 40, "NUM_PROXIES": "1", "SECOND_FACTOR_REQUIRED": "false",
        "LOGIN_FAILURES_PER_USERNAME": "5", "LOGIN_FAILURES_PER_ADDRESS": "8", "LOGIN_THROTTLE_RATE": "1000/minute",
        "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    ports = [_free_port(), _free_port()]
    command = [sys.executable, "-m", "gunicorn", "helpline.project.wsgi:application", "--workers", "1"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen([*command, "--bind", f"127.0.0.1:{port}"], cwd=REPOSITORY, env=env, **quiet)
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    requests.get(f"{url}/console/login/", timeout=10)
                    break
                except requests.RequestException:
                    assert time.monotonic() < deadline, "the test servers did not start"
                    time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


@pytest.fixture
def worker():
    staff = StaffFactory()
    staff.user.set_password(PASSWORD)
    staff.user.is_staff = True
    staff.user.save()
    return staff.user


def _form_login(server: str, page: str, username: str, password: str, address: str) -> int:
    session = requests.Session()
    headers = {"X-Forwarded-For": address}
    form = session.get(f"{server}{page}", headers=headers, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = session.post(
        f"{server}{page}", data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        headers={**headers, "Referer": f"{server}{page}"}, allow_redirects=False, timeout=10,
    )  # fmt: skip
    return response.status_code


def _console(server, username, password, address):
    return _form_login(server, "/console/login/", username, password, address)


def _admin(server, username, password, address):
    return _form_login(server, "/admin/login/", username, password, address)


def _api(server, username, password, address):
    response = requests.post(
        f"{server}/api/v1/auth/token/", json={"username": username, "password": password},
        headers={"X-Forwarded-For": address}, timeout=10,
    )  # fmt: skip
    return response.status_code


WAYS_IN = {"console": (_console, 302), "admin": (_admin, 302), "api": (_api, 200)}


def _failures_from(address: str) -> int:
    return AccessAttempt.objects.filter(ip_address=address).aggregate(n=Sum("failures_since_start"))["n"] or 0


def test_failures_on_one_process_count_on_the_other_on_every_way_in(servers, worker):
    first, second = servers
    for name, (log_in, success) in WAYS_IN.items():
        address = f"198.51.100.{10 + list(WAYS_IN).index(name)}"
        codes = [log_in(servers[n % 2], worker.username, f"guess{n}", address) for n in range(5)]
        assert 429 not in codes[:4] and codes[4] == 429, (name, codes)
        assert log_in(first, worker.username, PASSWORD, address) == 429, name
        assert log_in(second, worker.username, PASSWORD, address) == 429, name
        assert log_in(second, worker.username, PASSWORD, HOME) == success, name  # the person, from elsewhere


def test_guessing_across_usernames_is_counted_per_address_across_processes(servers, worker):
    codes = [_api(servers[n % 2], f"someone{n}", "guess", ATTACKER) for n in range(8)]
    assert 429 not in codes[:7] and codes[7] == 429, codes
    assert _console(servers[0], worker.username, PASSWORD, ATTACKER) == 429
    assert _admin(servers[1], worker.username, PASSWORD, ATTACKER) == 429
    assert _console(servers[1], worker.username, PASSWORD, HOME) == 302


def test_a_burst_of_parallel_guesses_over_both_processes_loses_no_count(servers, worker):
    attempts = [(servers[n % 2], f"someone{n}") for n in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(lambda attempt: _api(attempt[0], attempt[1], "guess", ATTACKER), attempts))
    assert codes == [400] * 6  # below the limit of 8: every guess was checked and refused
    assert _failures_from(ATTACKER) == 6
    assert [_api(servers[n % 2], worker.username, "guess", ATTACKER) for n in range(2)] == [400, 429]
