"""Playwright against Debian's Chromium (no browser download here) and pytest-django's live server."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):  # .ci/run installs it: a missing browser there is a failure, not a skip
            pytest.fail(f"no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which makes Django refuse ORM calls from the
    # test itself; the test's own queries are synchronous, so the guard is lifted for these tests only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page_for(browser, live_server):
    """A fresh browser context (cookies of its own) per person, with CSP violations collected."""
    contexts = []

    def open_page(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height}, locale="bs-BA")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.csp_errors = []
        page.on("console", lambda message: "Content Security Policy" in message.text
                and page.csp_errors.append(message.text))  # fmt: skip
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def fast_polling(settings):
    settings.CONSOLE_POLL_SECONDS = 1
    return settings


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/console/login/")
    page.get_by_label("Korisničko ime").fill(username)
    page.get_by_label("Lozinka").fill(PASSWORD)
    page.get_by_role("button", name="Prijava").click()
    page.wait_for_url(f"{base_url}/console/")


@pytest.fixture(autouse=True)
def one_thread_at_a_time_on_shared_sqlite(live_server):
    """On the embedded test database (SQLite in memory) the live server's request threads and the test itself share
    one connection, and SQLite's module does not guard it: a board that polls while the test reads can hang both
    threads inside execute (seen once in a `make test` that never ended). So each request runs whole under one lock,
    and each statement of the test takes the same lock. On PostgreSQL every thread has its own connection, and
    nothing changes."""
    shared = list(live_server.thread.connections_override.values())
    if not shared:
        yield
        return
    lock = threading.RLock()
    server = live_server.thread.httpd
    application = server.get_app()

    def one_request_at_a_time(environ, start_response):
        with lock:
            response = application(environ, start_response)
            try:
                return list(response)  # the body is made under the lock too: templates query lazily
            finally:
                if hasattr(response, "close"):
                    response.close()

    def one_statement_at_a_time(execute, sql, params, many, context):
        with lock:
            return execute(sql, params, many, context)

    server.set_app(one_request_at_a_time)
    wrappers = [connection.execute_wrapper(one_statement_at_a_time) for connection in shared]
    for wrapper in wrappers:
        wrapper.__enter__()
    try:
        yield
    finally:
        for wrapper in reversed(wrappers):
            wrapper.__exit__(None, None, None)
        server.set_app(application)


@pytest.fixture(autouse=True)
def triage_rules(live_server, one_thread_at_a_time_on_shared_sqlite):
    """The shipped triage rules, as a fresh installation has them. serialized_rollback restores them too, but
    not when another test module ran first in the session (the connection then lacks the serialized copy)."""
    from triage.services import install_default_rules

    install_default_rules()
