"""Who changed the roster and the rules (an audit trail supervisors read in the admin), admin sessions that idle out
like the console's, and inputs that used to be answered with a 500."""
import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from helpline.roster.models import RotationPattern, Shift
from tests.factories import ShiftFactory, StaffFactory
from tests.tokens import api_token
from triage.models import TriageRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def supervisor():
    staff = StaffFactory(role="supervisor")
    staff.user.is_staff = staff.user.is_superuser = True
    staff.user.save()
    return staff


def test_a_shift_edited_through_the_api_is_in_the_audit_trail_with_its_author(supervisor, client):
    shift = ShiftFactory(note="")
    api = APIClient(HTTP_AUTHORIZATION=f"Token {api_token(supervisor.user)}")
    assert api.patch(f"/api/v1/shifts/{shift.pk}/", {"note": "zamjena"}, format="json").status_code == 200
    latest, before = shift.history.order_by("-history_date")[:2]
    assert (before.note, latest.note) == ("", "zamjena")
    assert latest.history_user == supervisor.user and latest.history_type == "~"
    client.force_login(supervisor.user)
    page = client.get(f"/admin/triage/shift/{shift.pk}/history/").content.decode()
    assert supervisor.user.username in page


def test_a_shift_edited_in_the_console_is_in_the_audit_trail_with_its_author(supervisor, client):
    shift = ShiftFactory(note="")
    local = timezone.localtime(shift.starts_at)
    client.force_login(supervisor.user)
    form = {"staff": shift.staff.pk, "day": local.date().isoformat(), "starts": local.strftime("%H:%M"),
            "ends": timezone.localtime(shift.ends_at).strftime("%H:%M"), "note": "bolovanje"}  # fmt: skip
    assert client.post(f"/console/roster/shifts/{shift.pk}/", form).status_code == 302
    latest = shift.history.latest()
    assert (latest.note, latest.history_user, latest.history_type) == ("bolovanje", supervisor.user, "~")


def test_staff_profiles_and_triage_rules_keep_their_history(supervisor):
    worker = StaffFactory()
    api = APIClient(HTTP_AUTHORIZATION=f"Token {api_token(supervisor.user)}")
    assert api.patch(f"/api/v1/staff/{worker.pk}/", {"role": "supervisor"}, format="json").status_code == 200
    change = worker.history.latest()
    assert (change.role, change.history_user) == ("supervisor", supervisor.user)
    rule = TriageRule.objects.create(name="probe", category="other", priority="low", terms="proba")
    rule.priority = "high"
    rule.save()
    assert [h.priority for h in rule.history.order_by("history_date")] == ["low", "high"]


def test_an_admin_session_ends_after_the_consoles_idle_time(supervisor, client, settings):
    settings.CONSOLE_IDLE_MINUTES = 30
    with time_machine.travel(dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC), tick=False) as traveller:
        client.force_login(supervisor.user)
        assert client.get("/admin/").status_code == 200
        traveller.shift(dt.timedelta(minutes=20))
        assert client.get("/admin/").status_code == 200  # a click keeps it alive
        traveller.shift(dt.timedelta(minutes=31))
        response = client.get("/admin/triage/shift/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/admin/").status_code == 302


def test_a_nul_byte_in_an_inquiry_reference_is_a_404_not_a_500(client):
    assert client.get("/api/v1/inquiries/%00/").status_code == 404
    assert client.get("/api/v1/inquiries/SOS-2026-%0000001/").status_code == 404


@pytest.mark.parametrize("method", ["put", "patch"])
def test_moving_a_shift_onto_an_existing_generated_slot_is_a_400(supervisor, method):
    pattern = RotationPattern.objects.create(name="tjedan", starts_on=dt.date(2026, 11, 23))
    worker = StaffFactory()
    start = timezone.now().replace(microsecond=0) + dt.timedelta(days=1)
    Shift.objects.create(staff=worker, starts_at=start, ends_at=start + dt.timedelta(hours=8), pattern=pattern)
    later = Shift.objects.create(
        staff=worker, starts_at=start + dt.timedelta(days=1), ends_at=start + dt.timedelta(days=1, hours=8),
        pattern=pattern,
    )  # fmt: skip
    api = APIClient(HTTP_AUTHORIZATION=f"Token {api_token(supervisor.user)}")
    body = {"staff": worker.pk, "starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=8)).isoformat()}
    response = getattr(api, method)(f"/api/v1/shifts/{later.pk}/", body, format="json")
    assert response.status_code == 400 and "starts_at" in response.json()
    later.refresh_from_db()
    assert later.starts_at == start + dt.timedelta(days=1)
