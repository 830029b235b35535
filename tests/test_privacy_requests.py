"""A citizen's rights on request, by a supervisor with a reason on the timeline: export everything held about them
(JSON and a page to print), and erasure, refused while a legal hold keeps a case, with the hold's reason shown."""
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from helpline.cases.encryption import phone_index
from helpline.cases.intake import add_citizen_follow_up
from helpline.cases.models import Caller, CaseRead, CaseStatus, Channel, EventKind
from helpline.casework.actions import do_reclassify
from helpline.privacy import services
from helpline.privacy.models import Anonymisation
from tests.factories import CallerFactory, CaseFactory, MessageFactory, StaffFactory
from triage.models import TriageCorrection
from triage.selectors import corrections_for_training

pytestmark = pytest.mark.django_db

PHONE = "+38761555111"


@pytest.fixture
def supervisor():
    return StaffFactory(role="supervisor")


@pytest.fixture
def person():
    """Two cases about one person (an SMS from their phone, a web form where they gave the number) and one case of
    someone else."""
    caller = CallerFactory(phone=PHONE, name="Jasna")
    sms = CaseFactory(caller=caller, status=CaseStatus.RESOLVED, resolved_at=timezone.now(), category="information")
    MessageFactory(case=sms, body="Gdje mogu dobiti jednokratnu pomoć?")
    MessageFactory(case=sms, channel=Channel.VOICE, body="", recording_sid="RE" + "a" * 32,
                   recording_url="https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE" + "a" * 32)  # fmt: skip
    web = CaseFactory(caller=None, channel=Channel.WEB, contact_phone=PHONE, contact_name="Jasna K.",
                      contact_email="jasna@example.ba", status=CaseStatus.CLOSED)  # fmt: skip
    MessageFactory(case=web, channel=Channel.WEB, body="Otac mi je bolestan, treba mi njega.")
    other = CaseFactory(status=CaseStatus.RESOLVED, resolved_at=timezone.now())
    MessageFactory(case=other, body="Nešto sasvim drugo.")
    return {"sms": sms, "web": web, "other": other}


def test_a_supervisor_exports_everything_held_about_a_caller_as_json(client, supervisor, person):
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/export.json", {"phone": "061 555 111", "reason": "Zahtjev 12/2026"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert [case["reference"] for case in data["cases"]] == [person["sms"].reference, person["web"].reference]
    assert data["callers"] == [{"phone": PHONE, "name": "Jasna", "opted_out_of_sms": False,
                                "first_contact": person["sms"].caller.created_at.isoformat()}]  # fmt: skip
    texts = [message["text"] for case in data["cases"] for message in case["messages"]]
    assert "Gdje mogu dobiti jednokratnu pomoć?" in texts and "Otac mi je bolestan, treba mi njega." in texts
    assert data["cases"][1]["contact"]["email"] == "jasna@example.ba"
    assert "Nešto sasvim drugo." not in response.content.decode()
    # The export is on both timelines with its reason, and in the read log.
    for case in (person["sms"], person["web"]):
        event = case.timeline.get(kind=EventKind.DATA_EXPORTED)
        assert event.details["reason"] == "Zahtjev 12/2026" and event.actor == supervisor.user
        assert CaseRead.objects.filter(case=case, reader=supervisor.user, via="export").exists()
    assert not person["other"].timeline.filter(kind=EventKind.DATA_EXPORTED).exists()


def test_the_export_is_also_a_readable_page_found_by_email(client, supervisor, person):
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/export.html", {"email": "JASNA@example.ba", "reason": "Zahtjev"})
    page = response.content.decode()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert person["web"].reference in page and "Otac mi je bolestan" in page and "Jasna K." in page


def test_an_export_without_a_reason_is_refused_and_records_nothing(client, supervisor, person):
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/export.json", {"phone": PHONE, "reason": " "})
    assert response.status_code == 400
    assert not CaseRead.objects.exists()
    assert not person["sms"].timeline.filter(kind=EventKind.DATA_EXPORTED).exists()


def test_a_worker_may_not_export_or_erase(client, person):
    client.force_login(StaffFactory().user)
    assert client.post("/console/privacy/export.json", {"phone": PHONE, "reason": "x"}).status_code == 403
    assert client.post("/console/privacy/erase/", {"phone": PHONE, "reason": "x", "confirm": "on"}).status_code == 403
    assert client.get("/console/privacy/").status_code == 403


def test_the_lookup_lists_the_persons_cases(client, supervisor, person):
    client.force_login(supervisor.user)
    page = client.get("/console/privacy/", {"phone": "+387 61 555 111"}).content.decode()
    assert person["sms"].reference in page and person["web"].reference in page
    assert person["other"].reference not in page
    assert client.get("/console/privacy/", {"phone": "not a number"}).status_code == 400


def test_erasure_anonymises_every_case_of_the_person_and_deletes_their_voicemail(
    client, supervisor, person, twilio_api
):
    client.force_login(supervisor.user)
    response = client.post(
        "/console/privacy/erase/", {"phone": "061555111", "reason": "Zahtjev za brisanje 13/2026", "confirm": "on"}
    )
    assert response.status_code == 302
    for case in (person["sms"], person["web"]):
        case.refresh_from_db()
        assert case.caller_id is None and case.contact_name == "" and case.contact_email == ""
        assert set(case.messages.values_list("body", "recording_url")) == {("", "")}
        event = case.timeline.get(kind=EventKind.ANONYMISED)
        assert event.details["basis"] == "request" and event.details["reason"] == "Zahtjev za brisanje 13/2026"
        assert Anonymisation.objects.get(case=case).by == supervisor.user
    assert not Caller.objects.filter(phone_index=phone_index(PHONE)).exists()
    assert [request.path.rsplit("/", 1)[1] for request in twilio_api.deletions] == ["RE" + "a" * 32 + ".json"]
    # Someone else's case is untouched.
    assert person["other"].messages.get().body == "Nešto sasvim drugo."
    # The figures keep the cases: status, category and dates stay.
    person["sms"].refresh_from_db()
    assert (person["sms"].status, person["sms"].category) == (CaseStatus.RESOLVED, "information")


def test_erasure_takes_the_persons_words_out_of_triage_corrections_and_the_training_export(
    supervisor, person, twilio_api, tmp_path
):
    reclassified = do_reclassify(
        person["sms"], by=supervisor.user, priority="high", category="domestic_violence",
        reason="Jasna je na telefonu rekla da je muž tuče",
    )  # fmt: skip
    assert corrections_for_training() != []
    services.erase_person(by=supervisor.user, reason="Zahtjev 13/2026", phone=PHONE)
    correction = TriageCorrection.objects.get(case=reclassified)
    assert (correction.text, correction.reason) == ("", "")
    # The labels stay: how often staff corrected triage, and to what, is not about the person.
    assert (correction.corrected_priority, correction.corrected_category) == ("high", "domestic_violence")
    assert corrections_for_training() == []
    out = tmp_path / "corrections.jsonl"
    call_command("export_triage_corrections", out=out, stdout=io.StringIO())
    assert out.read_text(encoding="utf-8") == ""


def test_the_export_gives_staff_corrections_of_triage_with_their_reasons(client, supervisor, person):
    do_reclassify(person["sms"], by=supervisor.user, priority="high", category="domestic_violence",
                  reason="Jasna kaže da je muž tuče")  # fmt: skip
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/export.json", {"phone": PHONE, "reason": "Zahtjev 12/2026"})
    [correction] = json.loads(response.content)["cases"][0]["triage_corrections"]
    assert correction["reason"] == "Jasna kaže da je muž tuče"
    assert (correction["priority"], correction["category"]) == ("high", "domestic_violence")
    assert set(correction) == {"time", "triage_said", "priority", "category", "reason"}
    page = client.post("/console/privacy/export.html", {"phone": PHONE, "reason": "Zahtjev 12/2026"})
    assert "Jasna kaže da je muž tuče" in page.content.decode()


def test_erasure_is_refused_under_a_legal_hold_with_its_reason(client, supervisor, person, twilio_api):
    services.set_legal_hold(person["web"], by=supervisor.user, reason="Općinski sud Tuzla, 32 0 P 998877")
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/erase/", {"phone": PHONE, "reason": "Zahtjev", "confirm": "on"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "Ništa nije obrisano" in page and "Općinski sud Tuzla, 32 0 P 998877" in page  # the console is in Bosnian
    assert person["web"].reference in page
    # Nothing changed, on either case, nor at Twilio.
    assert "Gdje mogu dobiti jednokratnu pomoć?" in person["sms"].messages.values_list("body", flat=True)
    assert not Anonymisation.objects.exists() and twilio_api.deletions == []
    # The lookup shows the hold too.
    page = client.get("/console/privacy/", {"phone": PHONE}).content.decode()
    assert "zakonsko zadržavanje: Općinski sud Tuzla" in page


def test_erasure_waits_for_an_open_case_to_be_resolved(client, supervisor, person, twilio_api):
    CaseFactory(caller=person["sms"].caller, status=CaseStatus.ASSIGNED)
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/erase/", {"phone": PHONE, "reason": "Zahtjev", "confirm": "on"})
    assert response.status_code == 409 and "još otvoren" in response.content.decode()
    assert not Anonymisation.objects.exists()


def test_a_case_reopened_while_the_erasure_runs_is_reported_left_open_and_the_rest_is_erased(
    client, supervisor, person, monkeypatch, twilio_api
):
    # While Twilio deletes the first case's voicemail, the person writes again on their web case and reopens it.
    delete_at_twilio = services.delete_recordings_at_twilio

    def citizen_writes_meanwhile(case):
        if case.pk == person["sms"].pk:
            add_citizen_follow_up(person["web"], "Još sam ovdje, otac je gore.")
        return delete_at_twilio(case)

    monkeypatch.setattr(services, "delete_recordings_at_twilio", citizen_writes_meanwhile)
    client.force_login(supervisor.user)
    response = client.post(
        "/console/privacy/erase/", {"phone": PHONE, "reason": "Zahtjev 16/2026", "confirm": "on"}, follow=True
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "ponovo otvoren" in page and person["web"].reference in page
    assert Anonymisation.objects.filter(case=person["sms"]).exists()
    # The reopened case is left whole, for its worker, and is erased by a new request once it is resolved.
    assert not Anonymisation.objects.filter(case=person["web"]).exists()
    assert "Još sam ovdje, otac je gore." in person["web"].messages.values_list("body", flat=True)


def test_a_legal_hold_set_while_the_erasure_runs_keeps_its_case_and_is_reported(
    supervisor, person, monkeypatch, twilio_api
):
    delete_at_twilio = services.delete_recordings_at_twilio

    def court_order_meanwhile(case):
        if case.pk == person["sms"].pk:
            services.set_legal_hold(person["web"], by=supervisor.user, reason="Općinski sud Tuzla")
        return delete_at_twilio(case)

    monkeypatch.setattr(services, "delete_recordings_at_twilio", court_order_meanwhile)
    result = services.erase_person(by=supervisor.user, reason="Zahtjev 17/2026", phone=PHONE)
    assert (result.erased, result.held) == ([person["sms"].reference], [person["web"].reference])
    assert not Anonymisation.objects.filter(case=person["web"]).exists()


def test_erasure_needs_the_confirmation_box(client, supervisor, person):
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/erase/", {"phone": PHONE, "reason": "Zahtjev"})
    assert response.status_code == 400 and not Anonymisation.objects.exists()


def test_a_supervisor_sets_and_releases_a_legal_hold_on_the_case_page(client, supervisor, person):
    client.force_login(supervisor.user)
    case = person["sms"]
    assert client.post(f"/console/privacy/cases/{case.pk}/hold/set/", {"reason": ""}).status_code == 400
    client.post(f"/console/privacy/cases/{case.pk}/hold/set/", {"reason": "Policija, zahtjev 44"})
    page = client.get(f"/console/privacy/cases/{case.pk}/").content.decode()
    assert "Čuva se zbog zakonskog zadržavanja: Policija, zahtjev 44" in page
    client.post(f"/console/privacy/cases/{case.pk}/hold/release/", {"reason": "Zahtjev povučen"})
    assert "Nema zakonskog zadržavanja" in client.get(f"/console/privacy/cases/{case.pk}/").content.decode()
    kinds = [k for k in case.timeline.values_list("kind", flat=True) if k.startswith("legal")]
    assert kinds == ["legal_hold_set", "legal_hold_released"]


def test_a_supervisor_sets_a_legal_hold_in_the_admin_and_reads_the_logs_there(client, person):
    supervisor = StaffFactory(role="supervisor", user__is_staff=True, user__is_superuser=True)
    client.force_login(supervisor.user)
    case = person["web"]
    response = client.post("/admin/privacy/legalhold/add/", {"case": case.pk, "reason": "Tužilaštvo, T09 0 KT 1"})
    assert response.status_code == 302
    assert case.timeline.get(kind=EventKind.LEGAL_HOLD_SET).details["reason"] == "Tužilaštvo, T09 0 KT 1"
    for page in ("/admin/privacy/legalhold/", "/admin/privacy/anonymisation/", "/admin/helpline/caseread/"):
        assert client.get(page).status_code == 200
    no_reason = client.post("/admin/privacy/legalhold/add/", {"case": case.pk, "reason": ""})
    assert no_reason.status_code == 200  # the form again, with its error


def test_a_worker_with_admin_access_does_not_see_the_read_log(client):
    worker = StaffFactory(user__is_staff=True)
    client.force_login(worker.user)
    assert client.get("/admin/helpline/caseread/").status_code == 403


def test_a_number_that_opted_out_stays_nameless_after_erasure_so_it_is_never_texted_again(
    client, supervisor, person, twilio_api
):
    Caller.objects.filter(phone_index=phone_index(PHONE)).update(has_opted_out=True)
    services.erase_person(by=supervisor.user, reason="Zahtjev", phone=PHONE)
    caller = Caller.objects.get(phone_index=phone_index(PHONE))
    assert caller.has_opted_out and caller.name == "" and not caller.cases.exists()


def test_erasure_takes_the_number_from_crisis_messages_and_from_providers_error_texts(client, supervisor, person,
                                                                                      twilio_api):
    # Only replies lost the number: a crisis event's answer kept it in clear beside the "anonymous" case, and so
    # did Twilio's error text ("The 'To' number ... is not a valid mobile number") on its delivery attempt.
    from notifications.models import DeliveryAttempt, Notification

    answer = Notification.objects.create(
        idempotency_key="crisis-answer:test", to_number=PHONE, body="Ekipe stižu.", kind="crisis_answer",
        case=person["sms"],
    )  # fmt: skip
    DeliveryAttempt.objects.create(
        notification=answer, result="failed", detail=f"The 'To' number {PHONE} is not a valid mobile number."
    )
    client.force_login(supervisor.user)
    client.post("/console/privacy/erase/", {"phone": PHONE, "reason": "Zahtjev 14/2026", "confirm": "on"})
    answer.refresh_from_db()
    assert (str(answer.to_number), answer.body) == ("", "")
    assert answer.delivery_attempts.get().detail == ""


def test_the_export_of_someone_in_the_welfare_register_includes_the_entry_and_its_checks(client, supervisor):
    # Someone only in the register was refused, "No case holds this number", though their name, address and
    # needs were held.
    from helpline.welfare.models import VulnerablePerson

    VulnerablePerson.objects.create(
        full_name="Hasija Hodžić", phone="+38761777001", municipality="Maglaj", address="Obala 3",
        needs=["dialysis"], legal_basis="public_task",
    )  # fmt: skip
    client.force_login(supervisor.user)
    response = client.post("/console/privacy/export.json", {"phone": "061 777 001", "reason": "Zahtjev 15/2026"})
    assert response.status_code == 200
    [entry] = json.loads(response.content)["welfare_register"]
    assert (entry["name"], entry["address"], entry["needs"]) == ("Hasija Hodžić", "Obala 3", ["dialysis"])
    page = client.post("/console/privacy/export.html", {"phone": "061 777 001", "reason": "Zahtjev 15/2026"})
    assert "Hasija Hodžić" in page.content.decode() and "Obala 3" in page.content.decode()


def test_erasure_takes_the_persons_number_key_off_the_crisis_broadcasts_that_reached_them(
    supervisor, person, twilio_api
):
    # "phone:<blind index>" stayed on each broadcast after erasure: anyone holding the key could still tell that
    # this number was reached by the flood broadcast, and on which (anonymised) case.
    from notifications.models import BroadcastRecipient, CrisisBroadcast, CrisisEvent

    event = CrisisEvent.objects.create(title="Poplava Maglaj", keywords="poplava", answer="Pomoć stiže.")
    broadcast = CrisisBroadcast.objects.create(event=event, token="b1", text="Evakuacija u 18h.")
    reached = BroadcastRecipient.objects.create(broadcast=broadcast, citizen=f"phone:{phone_index(PHONE)}",
                                                case=person["sms"])  # fmt: skip
    someone_else = BroadcastRecipient.objects.create(broadcast=broadcast, citizen="phone:0123", case=person["other"])

    services.erase_person(by=supervisor.user, reason="Zahtjev 21/2026", phone=PHONE)

    reached.refresh_from_db()
    assert phone_index(PHONE) not in reached.citizen and reached.case_id == person["sms"].pk  # still counted
    someone_else.refresh_from_db()
    assert someone_else.citizen == "phone:0123"
