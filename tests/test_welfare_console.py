"""A supervisor starts a campaign from the console and reads its tally, the list behind each number and the export
for civil protection; the welfare call takes a key press; the register is imported through a preview."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string

from helpline.cases.models import Priority
from helpline.casework import actions
from helpline.welfare import services
from helpline.welfare.models import Campaign, CheckState, VulnerablePerson, WelfareCheck
from tests.factories import ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def supervisor(client):
    staff = StaffFactory(role="supervisor", phone="+38762000009")
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=24))
    client.force_login(staff.user)
    return staff


@pytest.fixture
def people():
    return [
        VulnerablePerson.objects.create(
            full_name=name, phone=phone, municipality=area, legal_basis="public_task", needs=needs, birth_year=1940,
            address="Obala 1",
        )
        for name, phone, area, needs in [
            ("Hasija Hodžić", "+38761000001", "Maglaj", ["power_device"]),
            ("Mujo Mujić", "+38761000002", "Maglaj", ["lives_alone"]),
            ("Ana Anić", "+38761000003", "Doboj", []),
        ]
    ]


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_a_supervisor_starts_a_campaign_and_watches_the_tally_move(
    client, supervisor, people, clock, settings, django_assert_max_num_queries
):
    settings.SMS_BACKEND = "memory"
    response = client.post("/console/welfare/", {
        "title": "Poplava Maglaj", "question": "Jeste li sigurni?", "areas": ["Maglaj"], "call_after_minutes": 60,
        "visit_after_minutes": 30,
    })  # fmt: skip
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/welfare/{campaign.pk}/"
    assert campaign.checks.count() == 2  # Maglaj only

    clock.move_to(START + dt.timedelta(seconds=5))
    services.advance_campaigns()
    services.answer_welfare_reply("+38761000001", "2", message_sid="SM1")
    live = client.get(f"/console/welfare/{campaign.pk}/live/").content.decode()
    assert 'data-column="needs_help"><a href="/console/welfare/' in live
    assert ">1</a></td>" in live

    with django_assert_max_num_queries(20):  # two pages (sign-in checks included), whatever the campaign size
        people_page = client.get(f"/console/welfare/{campaign.pk}/people/?column=needs_help").content.decode()
        client.get(f"/console/welfare/{campaign.pk}/live/")
    assert "Hasija Hodžić" in people_page and "Mujo Mujić" not in people_page

    export = client.get(f"/console/welfare/{campaign.pk}/export.csv")
    rows = export.content.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("state,name,phone") and len(rows) == 3
    assert any(row.startswith("needs_help,Hasija Hodžić,+38761000001") for row in rows)

    # What the supervisor board shows through its include: the running campaign's numbers.
    board_panel = render_to_string("console/_welfare_board.html")
    assert "Poplava Maglaj" in board_panel and "<strong>1</strong>" in board_panel


def test_a_key_press_on_the_welfare_call_answers_the_question(twilio, supervisor, people, clock, settings):
    settings.SMS_BACKEND = "memory"
    worker = StaffFactory(phone="+38762000001")
    ShiftFactory(staff=worker, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=24))
    services.start_campaign(title="Poplava", question="Jeste li sigurni?", areas=["Maglaj"], needs=[], by=None,
                            call_after_minutes=10)  # fmt: skip
    for second in (5, 6):  # asked by SMS, one a second from the helpline's number
        clock.move_to(START + dt.timedelta(seconds=second))
        services.advance_campaigns()
    clock.move_to(START + dt.timedelta(minutes=11))
    services.advance_campaigns()  # no answer: called, one a second (the account's call rate)
    clock.move_to(START + dt.timedelta(minutes=11, seconds=1))
    services.advance_campaigns()
    hasija, mujo = (WelfareCheck.objects.get(person=person) for person in people[:2])
    assert hasija.state == mujo.state == CheckState.CALLED

    asked = twilio.post(f"/webhooks/twilio/welfare/call/?check={hasija.pk}", {"CallSid": "CA1"})
    assert b"<Gather" in asked.content and b"Pritisnite 1" in asked.content
    safe = twilio.post(f"/webhooks/twilio/welfare/call/answer/?check={hasija.pk}&attempt=1",
                       {"CallSid": "CA1", "Digits": "1"})  # fmt: skip
    assert b"sigurni" in safe.content
    help_ = twilio.post(f"/webhooks/twilio/welfare/call/answer/?check={mujo.pk}&attempt=1",
                        {"CallSid": "CA2", "Digits": "2"})  # fmt: skip
    assert help_.status_code == 200
    hasija.refresh_from_db()
    mujo.refresh_from_db()
    assert hasija.state == CheckState.SAFE and hasija.answered_via == "voice"
    assert mujo.state == CheckState.NEEDS_HELP
    actions.do_triage_case(mujo.case_id)
    mujo.case.refresh_from_db()
    assert mujo.case.priority in (Priority.HIGH, Priority.CRITICAL) and mujo.case.assigned_to_id is not None
    # An unsigned request changes nothing.
    forged = twilio.post(f"/webhooks/twilio/welfare/call/answer/?check={hasija.pk}", {"CallSid": "CA9"},
                         signature="forged")  # fmt: skip
    assert forged.status_code == 403


def test_the_register_is_imported_through_a_preview(client, supervisor):
    sheet = ("full_name,phone,municipality,legal_basis,needs\n"
             "Hasija Hodžić,061 111 222,Maglaj,public_task,živi sam\n").encode()  # fmt: skip
    preview = client.post("/console/welfare/register/import/",
                          {"sheet": SimpleUploadedFile("register.csv", sheet)})  # fmt: skip
    assert preview.status_code == 200 and b"Hasija" in preview.content
    assert VulnerablePerson.objects.count() == 0
    confirmed = client.post("/console/welfare/register/import/", {"confirm": "1"})
    assert confirmed.status_code == 302
    assert VulnerablePerson.objects.get().needs == ["lives_alone"]

    bad = client.post("/console/welfare/register/import/", {"sheet": SimpleUploadedFile(
        "register.csv", b"full_name,phone,municipality,legal_basis\nIvo,nije broj,Maglaj,public_task\n")})
    assert b"is not a phone number" in bad.content and b"Import these rows" not in bad.content


def test_a_previewed_sheet_waits_encrypted_and_not_for_long(client, supervisor):
    # The whole sheet (names, phones, addresses, "dialysis") sat base64-encoded in the session table, read by
    # anyone with a database copy, and for good when the preview was never confirmed.
    from django.contrib.sessions.models import Session

    sheet = "full_name,phone,municipality,legal_basis\nHasija Hodžić,061 111 222,Maglaj,public_task\n".encode()
    client.post("/console/welfare/register/import/", {"sheet": SimpleUploadedFile("register.csv", sheet)})
    stored = "".join(str(session.get_decoded()) for session in Session.objects.all())
    assert "Hasija" not in stored and base64.b64encode(sheet).decode() not in stored

    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(hours=1)):
        client.force_login(supervisor.user)
        assert client.post("/console/welfare/register/import/", {"confirm": "1"}).status_code == 302
    assert VulnerablePerson.objects.count() == 0  # expired: choose the file again


def test_a_worker_cannot_open_the_campaign_pages(client):
    worker = StaffFactory()
    client.force_login(worker.user)
    assert client.get("/console/welfare/").status_code == 403


def test_the_register_search_finds_people_by_a_word_of_their_name_or_by_their_number(client, supervisor, people):
    found = client.get("/console/welfare/register/?q=hodz").content.decode()  # the start of "Hodžić", no accent
    assert "Hasija Hodžić" in found and "Mujo Mujić" not in found
    assert "Mujo Mujić" in client.get("/console/welfare/register/?q=мујић").content.decode()  # Cyrillic
    by_number = client.get("/console/welfare/register/?q=061 000 003").content.decode()
    assert "Ana Anić" in by_number and "Hasija Hodžić" not in by_number
    assert "Hasija Hodžić" not in client.get("/console/welfare/register/?q=hasija+ana").content.decode()


def test_adding_a_person_already_on_the_register_is_refused_with_a_message(client, supervisor, people):
    form = {"full_name": "Hasija  Hodžić", "phone": "061 000 001", "municipality": "Maglaj", "language": "bs",
            "script": "latin", "legal_basis": "public_task", "needs": []}  # fmt: skip
    response = client.post("/console/welfare/register/new/", form)
    assert response.status_code == 200 and VulnerablePerson.objects.count() == 3
    assert "Ova osoba (isto ime i broj telefona) već je u registru." in response.content.decode()
    form["full_name"] = "Hasija Hodžić-Begić"  # another person on the same number is a new entry
    assert client.post("/console/welfare/register/new/", form).status_code == 302
    assert VulnerablePerson.objects.count() == 4


def test_a_welfare_visit_is_found_from_the_menu_by_its_worker_and_taken_by_an_alerted_supervisor(
    client, supervisor, people, clock, settings
):
    from helpline.welfare import visits
    from helpline.welfare.models import VisitTask

    settings.PUBLIC_BASE_URL = "https://sos.example.test"
    worker = StaffFactory(phone="+38762000001")
    ShiftFactory(staff=worker, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=24))
    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=["Doboj"], needs=[], by=None,
                            call_after_minutes=10, visit_after_minutes=10)  # fmt: skip
    services.advance_campaigns(limit=10)  # asked
    check = WelfareCheck.objects.get(person=people[2])
    services.mark_unreachable(check.pk, "SMS failed (21211)")
    task = VisitTask.objects.get()
    assert "https://sos.example.test/console/welfare/visits/" in visits.texts.visit_task("A", "B", "C", task.pk)

    assert task.assigned_to == worker.user
    client.force_login(worker.user)
    assert "/console/welfare/visits/" in client.get("/console/").content.decode()  # in the menu
    assert "Ana Anić" in client.get("/console/welfare/visits/").content.decode()

    client.force_login(supervisor.user)  # alerted by the ladder, not given the visit
    page = client.get("/console/welfare/visits/").content.decode()
    assert "Ana Anić" in page and f"/console/welfare/visits/{task.pk}/take/" in page
    client.post(f"/console/welfare/visits/{task.pk}/take/")
    task.refresh_from_db()
    assert task.assigned_to == supervisor.user and task.status == "taken"


def visit_nobody_has(people):
    """Ana in Doboj could not be reached, and nobody was on duty to be given the visit."""
    from helpline.welfare.models import VisitTask

    services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=["Doboj"], needs=[], by=None,
                            call_after_minutes=10, visit_after_minutes=10)  # fmt: skip
    services.advance_campaigns(limit=10)
    services.mark_unreachable(WelfareCheck.objects.get(person=people[2]).pk, "SMS failed (21211)")
    task = VisitTask.objects.get()
    assert task.assigned_to is None
    return task


def test_a_worker_records_what_they_found_only_on_a_welfare_visit_they_have_taken(client, people, clock):
    # Anyone could mark a person nobody had visited as safe, by posting to a visit that was not in their list.
    task = visit_nobody_has(people)
    worker = StaffFactory(phone="+38762000001")
    client.force_login(worker.user)

    page = client.post(f"/console/welfare/visits/{task.pk}/safe/", {"note": "sve u redu"}, follow=True)

    assert "Prvo preuzmite ovaj obilazak" in page.content.decode()  # the console speaks Bosnian
    task.refresh_from_db()
    assert task.status == "waiting" and task.welfare_check.state == CheckState.UNREACHABLE

    client.post(f"/console/welfare/visits/{task.pk}/take/")
    client.post(f"/console/welfare/visits/{task.pk}/safe/", {"note": "sve u redu"})
    task.refresh_from_db()
    assert task.status == "done" and task.welfare_check.state == CheckState.SAFE


def test_a_worker_records_nothing_on_a_colleagues_welfare_visit(client, people, clock):
    task = visit_nobody_has(people)
    colleague, worker = StaffFactory(phone="+38762000001"), StaffFactory(phone="+38762000002")
    client.force_login(colleague.user)
    client.post(f"/console/welfare/visits/{task.pk}/take/")
    client.force_login(worker.user)

    client.post(f"/console/welfare/visits/{task.pk}/help/", {"note": "treba lijekove"})

    task.refresh_from_db()
    assert task.status == "taken" and task.welfare_check.state == CheckState.UNREACHABLE


def test_a_supervisor_records_what_was_found_on_any_welfare_visit(client, people, clock):
    task = visit_nobody_has(people)
    client.force_login(StaffFactory(role="supervisor", phone="+38762000009").user)

    client.post(f"/console/welfare/visits/{task.pk}/help/", {"note": "treba lijekove"})

    task.refresh_from_db()
    assert task.status == "done" and task.welfare_check.state == CheckState.NEEDS_HELP


@pytest.mark.parametrize("query", [{"area": "Maglaj\x00"}, {"need": "\x00"}, {"column": "safe", "area": "\x00"}])
def test_a_nul_character_in_the_tally_filter_is_refused_with_a_400_not_a_server_error(
    client, supervisor, people, clock, query
):
    campaign = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=["Maglaj"], needs=[],
                                       by=supervisor.user, call_after_minutes=60, visit_after_minutes=30)  # fmt: skip
    response = client.get(f"/console/welfare/{campaign.pk}/people/", query)
    assert response.status_code == 400 and "Znak NUL nije dozvoljen." in response.content.decode()
    assert client.get(f"/console/welfare/{campaign.pk}/people/", {"area": "Maglaj"}).status_code == 200


def test_a_nul_character_in_a_welfare_visit_note_is_refused_and_nothing_is_recorded(client, people, clock):
    task = visit_nobody_has(people)
    worker = StaffFactory(phone="+38762000001")
    client.force_login(worker.user)
    client.post(f"/console/welfare/visits/{task.pk}/take/")

    response = client.post(f"/console/welfare/visits/{task.pk}/safe/", {"note": "sve u redu\x00"})

    assert response.status_code == 400 and "Znak NUL nije dozvoljen." in response.content.decode()
    task.refresh_from_db()
    assert task.status == "taken" and task.welfare_check.state == CheckState.UNREACHABLE


@pytest.mark.parametrize("minutes", [9999999999, 2000000000, 1441, 0])
def test_a_campaign_waiting_longer_than_a_day_is_refused_on_the_form_not_with_a_server_error(
    client, supervisor, people, clock, minutes
):
    # 9999999999 minutes was a 500 (integer out of range), and 2,000,000,000 (3,800 years) was accepted: nobody
    # silent would ever have been called.
    for field in ("call_after_minutes", "visit_after_minutes"):
        data = {"title": "Poplava", "question": "Jeste li sigurni?", "areas": ["Maglaj"], "call_after_minutes": 60,
                "visit_after_minutes": 30, field: minutes}  # fmt: skip
        response = client.post("/console/welfare/", data)
        assert response.status_code == 200 and 'class="errorlist' in response.content.decode()
    assert not Campaign.objects.exists()
    with pytest.raises(ValueError):
        services.start_campaign(title="x", question="x", areas=["Maglaj"], needs=[], by=supervisor.user,
                                call_after_minutes=minutes)  # fmt: skip


def test_finishing_a_campaign_says_who_will_not_be_called_asks_first_and_records_who_finished_it(
    client, supervisor, people, clock, settings, caplog
):
    # "Finish the campaign" was one tap, for good: everyone asked and still silent was never called or visited,
    # and nobody could tell who had finished it.
    settings.SMS_BACKEND = "memory"
    campaign = services.start_campaign(title="Poplava", question="Jeste li sigurni?", areas=["Maglaj"], needs=[],
                                       by=supervisor.user)  # fmt: skip
    for seconds in (5, 7, 9):  # both asked, both silent (a question a second at most)
        clock.move_to(START + dt.timedelta(seconds=seconds))
        services.advance_campaigns()
    page = client.get(f"/console/welfare/{campaign.pk}/").content.decode()
    assert "2 osobe koje su upitane neće biti pozvane ni posjećene" in page and 'name="confirm"' in page

    client.post(f"/console/welfare/{campaign.pk}/finish/")  # without the confirmation: it runs on
    campaign.refresh_from_db()
    assert campaign.status == "running"

    with caplog.at_level("INFO"):
        client.post(f"/console/welfare/{campaign.pk}/finish/", {"confirm": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == "finished" and campaign.finished_by == supervisor.user
    assert any(f"welfare campaign {campaign.pk} finished by user {supervisor.user.pk}" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    page = client.get(f"/console/welfare/{campaign.pk}/").content.decode()
    assert f"završio/la {supervisor.user.get_full_name() or supervisor.user.get_username()}" in page


def test_the_welfare_visits_page_shows_fifty_visits_at_a_time_the_most_urgent_first_with_their_needs_in_bosnian(
    client, supervisor, clock, django_assert_max_num_queries
):
    # Hundreds of visits on one page at 360 px, without the needs that decide who to go to first, and an English
    # "no answer to the SMS or the call; on duty for ..." under each name on a Bosnian page.
    from helpline.welfare import visits

    VulnerablePerson.objects.bulk_create([
        VulnerablePerson(full_name=f"Osoba {n}", phone=f"+38761{n:06d}", municipality="Maglaj", address=f"Ulica {n}",
                         legal_basis="public_task", birth_year=1950, needs=["lives_alone"] if n % 2 else [])
        for n in range(59)
    ])  # fmt: skip
    VulnerablePerson.objects.create(full_name="Hasija Hodžić", phone="+38761999999", municipality="Maglaj",
                                    legal_basis="public_task", needs=["power_device", "lives_alone"])  # fmt: skip
    campaign = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=[], needs=[], by=None)
    for minute, check in enumerate(campaign.checks.order_by("-urgency")):  # her visit was opened last
        clock.move_to(START + dt.timedelta(minutes=minute))
        visits.open_visit(check, START + dt.timedelta(minutes=minute), reason="no answer to the SMS or the call")

    with django_assert_max_num_queries(12):
        first = client.get("/console/welfare/visits/").content.decode()
    assert first.count('class="panel welfare-visit') == 50
    assert first.index("Hasija Hodžić") < first.index("Osoba ")  # an oxygen machine goes first
    assert "Kiseonik ili drugi uređaj koji zavisi od struje" in first and "Živi sam/a" in first
    assert "Stranica 1 od 2" in first and "?page=2" in first
    for english in ("no answer to the sms", "on duty", "nobody was", "given to", "visits in hand", "open since",
                    "escalated", "not yet done", "could not be reached"):
        assert english not in first.lower()

    second = client.get("/console/welfare/visits/?page=2").content.decode()
    assert second.count('class="panel welfare-visit') == 10 and "Hasija Hodžić" not in second
