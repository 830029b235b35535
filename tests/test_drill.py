"""A centre rehearses a surge: drill contacts are worked like real ones, never reach a phone or the figures."""
import datetime as dt
import json

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from helpline.cases import services
from helpline.cases.models import Case, CaseStatus
from helpline.casework import actions
from helpline.drill.marker import DRILL_HEADER, contact_figures, new_drill_marker
from notifications import outbox
from notifications.models import Notification
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from tests.tokens import api_token

pytestmark = pytest.mark.django_db


def drill_sms(twilio, body: str, *, sid: str, marker: str | None = None, from_number: str = "+38769111222"):
    params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": from_number, "To": "+38733000111",
              "Body": body, "NumMedia": "0"}  # fmt: skip
    from tests.conftest import sign

    headers = {"HTTP_X_TWILIO_SIGNATURE": sign("/webhooks/twilio/sms/", params)}
    if marker is not None:
        headers["HTTP_" + DRILL_HEADER.upper().replace("-", "_")] = marker
    from urllib.parse import urlencode

    return twilio.client.post(
        "/webhooks/twilio/sms/", data=urlencode(params), content_type="application/x-www-form-urlencoded", **headers
    )


def test_a_drill_contact_is_worked_but_its_notifications_never_reach_twilio(twilio, twilio_api):
    worker = StaffFactory(phone="+38761200300")
    ShiftFactory(staff=worker)

    response = drill_sms(twilio, "Muž me tuče, upomoć", sid="SMdrill1", marker=new_drill_marker())
    assert response.status_code == 200
    case = Case.objects.get()
    assert case.is_drill
    actions.do_triage_case(case.pk)
    for notification in Notification.objects.filter(status="queued"):
        outbox.deliver(notification.pk)

    case.refresh_from_db()
    assert case.assigned_to == worker.user and case.priority == "critical"
    sent = Notification.objects.filter(case=case)
    assert sent.exists() and all(n.is_drill and n.status == "sent" for n in sent)
    assert all(n.provider_sid.startswith("drill-") for n in sent)
    assert twilio_api.messages == [] and twilio_api.calls == []


def test_a_forged_drill_marker_is_ignored_and_the_contact_is_real(twilio):
    drill_sms(twilio, "Pomozite", sid="SMforged", marker="cafe:not-the-signature")
    assert Case.objects.get().is_drill is False


def test_a_drill_contact_never_joins_a_real_open_case(twilio):
    twilio.sms("Treba mi pomoć", sid="SMreal", from_number="+38769111222")
    drill_sms(twilio, "Vježba", sid="SMdrill2", marker=new_drill_marker(), from_number="+38769111222")
    assert sorted(Case.objects.values_list("is_drill", flat=True)) == [False, True]


def _drill_inquiry(client, marker: str):
    body = json.dumps({"message": "vježba", "safe_contact": {"text": False}})
    headers = {"HTTP_" + DRILL_HEADER.upper().replace("-", "_"): marker}
    return client.post("/api/v1/inquiries/", body, content_type="application/json", **headers)


def test_drill_inquiries_are_not_throttled_per_address(client):
    codes = {_drill_inquiry(client, new_drill_marker()).status_code for _ in range(15)}
    assert codes == {201}  # the public limit is 10 a minute per address


def test_a_drill_marker_is_accepted_once(client):
    marker = new_drill_marker()
    codes = [_drill_inquiry(client, marker).status_code for _ in range(12)]
    # The first is the drill's; each replay is a real contact, under the public limit of 10 a minute per address
    # (the eleventh is stored all the same, flagged as over the address's limit).
    assert codes == [201] * 12
    drills = Case.objects.order_by("pk").values_list("is_drill", "over_address_limit")
    assert list(drills) == [(True, False)] + [(False, False)] * 10 + [(False, True)]


def test_an_expired_drill_marker_is_ignored(client):
    with time_machine.travel(dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC), tick=False) as traveller:
        marker = new_drill_marker(lifetime_seconds=60)
        traveller.shift(dt.timedelta(seconds=61))
        assert _drill_inquiry(client, marker).status_code == 201
    assert list(Case.objects.values_list("is_drill", flat=True)) == [False]


def test_drill_cases_are_left_out_of_the_figures(client):
    supervisor = StaffFactory(role="supervisor").user
    CaseFactory()
    CaseFactory(is_drill=True)
    stats = client.get("/api/v1/stats/", HTTP_AUTHORIZATION=f"Token {api_token(supervisor)}").json()
    assert stats["cases"] == 1


def test_ending_a_drill_resolves_its_open_cases_only():
    started = timezone.now() - dt.timedelta(seconds=1)
    real = CaseFactory()
    drill = CaseFactory(is_drill=True)
    assert services.end_drill(started) == 1
    drill.refresh_from_db()
    real.refresh_from_db()
    assert (drill.status, real.status) == (CaseStatus.RESOLVED, CaseStatus.NEW)
    assert "drill ended" in [event.details.get("reason") for event in drill.timeline.all()]


def test_contact_figures_count_lost_and_duplicated(twilio):
    twilio.sms("Pomoć", sid="SMone")
    figures = contact_figures(Case.objects.all(), sids=["SMone", "SMmissing"], references=["SOS-2026-99999"])
    assert (figures["lost"], figures["duplicated"], figures["cases"]) == (2, 0, 1)


def test_the_drill_command_refuses_a_nonsense_rate():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("drill", "--rate", "0")


def test_the_drill_chart_is_a_png(tmp_path):
    from helpline.drill.management.commands.drill import draw_chart
    from helpline.drill.traffic import Sent

    started = timezone.now()
    sent = [Sent("sms", 0.1, 12.0, 200, "SMx"), Sent("web", 0.2, 30.0, 429, "")]
    figures = {"assign_all_at": [(started, 0.4)], "assign_critical_at": []}
    draw_chart(tmp_path / "drill.png", sent, figures, started)
    assert (tmp_path / "drill.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



def test_a_drill_on_the_running_service_never_keeps_a_real_case_from_a_person(twilio):
    # Drill cases filled everyone's maximum, so a real case waited with no clock; a critical drill case also went
    # before a real high one, and a plain "OK" took it.
    worker = StaffFactory(phone="+38761200301", max_open_cases=2)
    ShiftFactory(staff=worker)
    drills = [CaseFactory(is_drill=True, priority="critical", status=CaseStatus.TRIAGED) for _ in range(3)]
    for drill in drills:
        actions.do_triage_case(drill.pk)
    real = CaseFactory()
    MessageFactory(case=real, body="Komšija opet tuče ženu, čuje se vika")
    actions.do_triage_case(real.pk)

    real.refresh_from_db()
    assert real.assigned_to == worker.user
    twilio.sms("OK", sid="SMok1", from_number="+38761200301")
    real.refresh_from_db()
    assert real.status == CaseStatus.ACKNOWLEDGED


def test_a_drill_still_fills_people_up_as_a_real_surge_would(twilio):
    worker = StaffFactory(phone="+38761200301", max_open_cases=2)
    ShiftFactory(staff=worker)
    drills = []
    for _ in range(3):
        drill = CaseFactory(is_drill=True)
        MessageFactory(case=drill, body="treba nam pomoć oko ogrjeva")
        drills.append(actions.do_triage_case(drill.pk))
    assert [drill.assigned_to for drill in drills].count(worker.user) == 2  # the third waits, as it would for real


def test_an_interrupted_drill_resolves_the_cases_it_made(monkeypatch):
    # Ctrl-C (or a refused service, or a chart that could not be written) left the drill's cases open for ever:
    # their ladders ran on and they sat in the queues.
    from helpline.drill.management.commands import drill

    def interrupted(*args, **kwargs):
        CaseFactory(is_drill=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(drill, "open_loop", interrupted)
    real = CaseFactory()
    with pytest.raises(KeyboardInterrupt):
        call_command("drill", "--rate", "1", "--seconds", "1")
    assert Case.objects.get(is_drill=True).status == CaseStatus.RESOLVED
    real.refresh_from_db()
    assert real.status == CaseStatus.NEW


def test_drill_end_resolves_every_drill_case_left_open():
    with time_machine.travel(timezone.now() - dt.timedelta(days=2)):
        left = CaseFactory(is_drill=True)  # by a drill run with --keep-open, or killed
    real = CaseFactory()
    call_command("drill", "--end")
    left.refresh_from_db()
    real.refresh_from_db()
    assert (left.status, real.status) == (CaseStatus.RESOLVED, CaseStatus.NEW)


def test_the_boards_waiting_count_counts_drill_cases_apart(client):
    supervisor = StaffFactory(role="supervisor")
    CaseFactory(priority="critical")
    CaseFactory(priority="critical", is_drill=True)
    CaseFactory(priority="critical", is_drill=True)
    client.force_login(supervisor.user)
    board = client.get("/console/board/").content.decode()
    count = board.split('id="waiting-count"', 1)[1].split("</span>", 1)[0]
    assert "3" in count and "2 vježbe" in count  # "3, 2 of them drills"
