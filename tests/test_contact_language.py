"""A case's language is the language the citizen wrote in, never the language of the page or phone they used:
the case reaches workers who speak it, and replies go out in it."""
import pytest

from helpline.cases.models import Case
from tests.test_web_inquiry import form_data

pytestmark = pytest.mark.django_db


def test_a_bosnian_message_from_an_english_page_is_a_bosnian_case(client):
    client.post("/inquiry/", form_data(message="Muž me tuče, upravo sada, pomozite"), HTTP_ACCEPT_LANGUAGE="en")
    assert Case.objects.get().language == "bs"


def test_an_english_message_from_a_bosnian_page_is_an_english_case(client):
    client.post("/inquiry/", form_data(message="My husband is hitting me, please help"), HTTP_ACCEPT_LANGUAGE="bs")
    assert Case.objects.get().language == "en"


def test_a_cyrillic_message_is_a_bosnian_case_written_in_cyrillic(client):
    client.post("/inquiry/", form_data(message="Отац пије и виче на нас."), HTTP_ACCEPT_LANGUAGE="en")
    case = Case.objects.get()
    assert (case.language, case.script) == ("bs", "cyrillic")


@pytest.mark.parametrize(
    ("message", "browser", "page"),
    [
        ("My husband is hitting me, please help", "de", '<html lang="en">'),
        ("Muž me tuče, upravo sada, pomozite", "en", '<html lang="bs">'),
    ],
)
def test_the_page_after_sending_is_in_the_language_the_citizen_wrote_in_not_the_browsers(client, message, browser,
                                                                                         page):
    # It carries what to do now and the code shown only once: it followed the browser, so a tourist whose browser
    # asks for German, writing in English, read it in Bosnian.
    response = client.post("/inquiry/", form_data(message=message), HTTP_ACCEPT_LANGUAGE=browser, follow=True)
    assert response.status_code == 200 and page in response.content.decode()


def test_a_language_the_citizen_chose_on_the_page_wins(client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.post("/inquiry/", form_data(message="Muž me tuče, upravo sada, pomozite"), follow=True)
    assert '<html lang="en">' in response.content.decode()
