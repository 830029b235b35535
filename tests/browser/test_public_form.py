"""A citizen sends the public form from a real browser and gets a reference (Chromium, not the test client)."""
import pytest

from helpline.cases.models import Case

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_citizen_sends_the_form_in_chromium_and_gets_a_reference(page_for, live_server):
    page = page_for(width=360, height=780)
    page.goto(f"{live_server.url}/inquiry/")
    page.get_by_label("Šta se dešava? Kako vam možemo pomoći?").fill("Treba mi savjet oko staratelja za mog oca.")
    page.get_by_role("button", name="Pošalji").click()

    case = Case.objects.get()
    assert case.reference in page.content()
    assert page.csp_errors == []
