"""What a citizen sees when something goes wrong: a page not found, a server error, the database away, a form
refused for its security token. Never Django's English developer page, never a bare line of text: the page in their
language, with the emergency numbers and the quick exit, and what they wrote kept."""
from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from django.utils import translation

from helpline.cases.models import Case
from helpline.project import errors
from tests.factories import StaffFactory
from tests.intake_faults import database_unreachable

ON_POSTGRESQL = "postgresql" in django_settings.DATABASES["default"]["ENGINE"]
# A database server that stops: the embedded SQLite test database is gone once its last connection closes.
database_server = pytest.mark.skipif(not ON_POSTGRESQL, reason="simulates PostgreSQL stopping")
concurrent = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def assert_public_page(response, *, status: int) -> str:
    """The public layout: HTML, the police number on the first screen, the quick exit, no Django error page."""
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'href="tel:122"' in html and "data-quick-exit" in html
    assert "Not Found" not in html and "Server Error" not in html and "CSRF" not in html
    return html


# --- Not found, server error, the database away --------------------------------------------------------------


@pytest.mark.django_db
def test_a_page_not_found_is_the_public_page_in_the_readers_language():
    client = Client()
    html = assert_public_page(client.get("/inquiry/nema-toga/"), status=404)
    assert "Stranica nije pronađena" in html
    client.cookies["django_language"] = "en"
    assert "Page not found" in assert_public_page(client.get("/nowhere/"), status=404)


@pytest.mark.django_db
def test_the_api_still_answers_not_found_in_json(client):
    response = client.get("/api/v1/nowhere/")
    assert response.status_code == 404 and response.json() == {"detail": "Nije pronađeno."}


def test_a_server_error_is_the_public_page_with_the_numbers():
    request = RequestFactory().get("/inquiry/")
    with translation.override("bs"):
        try:
            raise RuntimeError("a fault")
        except RuntimeError:
            response = errors.server_error(request)
            api = errors.server_error(RequestFactory().get("/api/v1/cases/"))
    html = assert_public_page(response, status=500)
    assert "Nešto nije u redu" in html
    assert api.status_code == 500 and api["Content-Type"] == "application/json"


@concurrent
@database_server
def test_opening_the_conversation_or_checking_a_case_during_an_outage_is_the_public_503_page():
    # "Otvori razgovor" on the receipt, during a database outage, was a plain-text English "Temporarily unavailable."
    client = Client()
    with database_unreachable():
        opened = client.post("/inquiry/status/", {"reference": "SOS-2026-00007", "code": "M6N8-RE4P-K04R"})
        client.cookies["django_language"] = "en"
        in_english = client.post("/inquiry/status/", {"reference": "SOS-2026-00007", "code": "M6N8-RE4P-K04R"})
    html = assert_public_page(opened, status=503)
    assert opened["Retry-After"] == "10"
    assert "Usluga je nakratko nedostupna" in html
    assert "briefly unavailable" in assert_public_page(in_english, status=503)


@concurrent
@database_server
def test_a_console_page_during_an_outage_is_a_translated_503_and_the_api_json():
    client = Client()
    client.force_login(StaffFactory().user)
    client.raise_request_exception = False
    with database_unreachable():
        page = client.get("/console/")
        api = client.get("/api/v1/cases/", HTTP_AUTHORIZATION="Token nothing")
    assert page.status_code == 503 and "nedostupna" in page.content.decode()
    assert api.status_code == 503 and "detail" in api.json()


# --- A form refused for its security token ---------------------------------------------------------------------


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def token_in(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.django_db
def test_a_form_refused_for_its_token_comes_back_with_the_message_kept_and_sends_on_the_second_press():
    # Cookies blocked or cleared (as safety advice suggests): Django's English "CSRF verification failed" page, and
    # the message was gone.
    client = csrf_client()
    refused = client.post("/inquiry/", {"message": "Muž mi prijeti, bojim se.", "name": "Amra", "phone": "",
                                        "safe_to_call": "no", "idempotency_key": "k" * 32})  # fmt: skip
    html = assert_public_page(refused, status=403)
    assert "Muž mi prijeti, bojim se." in html and 'value="Amra"' in html
    assert "Vaša poruka još nije poslana" in html
    assert Case.objects.count() == 0

    sent = client.post("/inquiry/", {"message": "Muž mi prijeti, bojim se.", "idempotency_key": "k" * 32,
                                     "csrfmiddlewaretoken": token_in(html)})  # fmt: skip
    assert sent.status_code == 303 and Case.objects.count() == 1


@pytest.mark.django_db
def test_a_follow_up_refused_for_its_token_keeps_its_text_in_the_writers_script():
    client = csrf_client()
    refused = client.post("/inquiry/status/", {"reference": "SOS-2026-00007", "code": "M6N8-RE4P-K04R",
                                               "message": "Опет је ту, прети ми"})  # fmt: skip
    html = assert_public_page(refused, status=403)
    assert "Опет је ту, прети ми" in html and 'value="SOS-2026-00007"' in html
    assert "Ваша порука још није послана" in html and 'lang="bs-Cyrl"' in html
    client.cookies["django_language"] = "en"
    english = client.post("/inquiry/", {"message": "He is back"})
    assert "Your message was not sent yet" in assert_public_page(english, status=403)


@pytest.mark.django_db
def test_a_staff_form_refused_for_its_token_is_a_plain_translated_403():
    client = csrf_client()
    client.force_login(StaffFactory().user)
    refused = client.post("/console/", {"anything": "x"})
    assert refused.status_code == 403
    html = refused.content.decode()
    assert "CSRF verification failed" not in html and "Stranica je istekla" in html
    assert "data-quick-exit" not in html
