"""One rule for a citizen's contact details on every surface: in clear for the assigned worker and supervisors,
masked for every other worker (staff API, console case page, admin)."""
import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from helpline.cases.models import Channel
from tests.factories import CaseFactory, StaffFactory

pytestmark = pytest.mark.django_db

PHONE, NAME, EMAIL, NOTE = "+38761555444", "Amela Hodžić", "amela@example.ba", "Zovite samo poslije 17 sati"
SECRETS = [PHONE, NAME, EMAIL, NOTE]


def _web_case(assigned_to=None):
    return CaseFactory(
        channel=Channel.WEB, caller=None, assigned_to=assigned_to, contact_phone=PHONE, contact_name=NAME,
        contact_email=EMAIL, safe_contact_note=NOTE,
    )  # fmt: skip


@pytest.fixture
def people():
    view_cases = Permission.objects.get(codename="view_case")
    people = {"assignee": StaffFactory(), "other": StaffFactory(), "supervisor": StaffFactory(role="supervisor")}
    for staff in people.values():
        staff.user.is_staff = True  # as the demo accounts are: the admin is open to them
        staff.user.save()
        staff.user.user_permissions.add(view_cases)
    return people


def _api(staff, case) -> str:
    client = APIClient()
    client.force_authenticate(staff.user)
    response = client.get(f"/api/v1/cases/{case.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _console(client, staff, case) -> str:
    client.force_login(staff.user)
    response = client.get(f"/console/cases/{case.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _admin(client, staff, case) -> str:
    client.force_login(staff.user)
    response = client.get(f"/admin/helpline/case/{case.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


SURFACES = {"api": lambda client, staff, case: _api(staff, case), "console": _console, "admin": _admin}


@pytest.fixture(params=sorted(SURFACES))
def page_for(request, client):
    return lambda staff, case: SURFACES[request.param](client, staff, case)


def test_a_worker_not_assigned_sees_every_contact_detail_masked(people, page_for):
    page = page_for(people["other"], _web_case())
    for secret in SECRETS:
        assert secret not in page
    assert "+38761 *** 444" in page


def test_the_assigned_worker_sees_them_in_clear(people, page_for):
    page = page_for(people["assignee"], _web_case(assigned_to=people["assignee"].user))
    for secret in SECRETS:
        assert secret in page


def test_a_supervisor_sees_them_in_clear(people, page_for):
    page = page_for(people["supervisor"], _web_case())
    for secret in SECRETS:
        assert secret in page


def test_an_sms_callers_number_follows_the_same_rule_on_every_surface(people, page_for):
    case = CaseFactory(caller__phone="+38762123456")
    assert "+38762123456" not in page_for(people["other"], case)
    assert "+38762 *** 456" in page_for(people["other"], case)
    assert "+38762123456" in page_for(people["supervisor"], case)
