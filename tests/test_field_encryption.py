"""Citizens' words, names and numbers are encrypted in the database and its backups; the service reads them as usual,
a key can be rotated, and a production start without a key stops with a clear message."""
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection, connections, transaction

from helpline.cases import services
from helpline.cases.encryption import FERNET_PREFIX, phone_index
from helpline.cases.models import Caller, Case, CaseStatus, EventKind, Message
from helpline.cases.search import cases_matching
from helpline.casework.actions import do_reclassify
from helpline.intake.services import receive_sms
from helpline.operations.key_rotation import reencrypt_all, reindex_all
from helpline.welfare import selectors as welfare_selectors
from helpline.welfare import services as welfare_services
from helpline.welfare.models import CheckState, VulnerablePerson, WelfareCheck
from tests.encrypted import what_is_readable
from tests.factories import CaseFactory, MessageFactory, StaffFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
BODY = "Muž mi je prijetio nožem, zovem se Selma Begić."
NUMBER = "+38761123456"


def raw_rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def everything_stored() -> str:
    """Every text column of the tables that hold what a citizen sent, as PostgreSQL returns them."""
    rows = raw_rows("SELECT phone, phone_index, name FROM helpline_caller")
    rows += raw_rows(
        "SELECT contact_name, contact_phone, contact_email, safe_contact_note, contact_phone_index, "
        "contact_email_index FROM helpline_case"
    )
    rows += raw_rows("SELECT body, recording_url, search_tokens FROM helpline_message")
    return what_is_readable(value for row in rows for value in row)


def test_a_stored_sms_holds_no_clear_text_of_the_body_the_number_or_the_name(twilio):
    assert twilio.sms(BODY, sid="SM" + "1" * 32).status_code == 200
    caller = Caller.objects.get()
    caller.name = "Selma Begić"
    caller.save()

    stored = everything_stored()
    for clear in ("nožem", "noz", "prijetio", "Selma", "Begi", "61123456", "123456"):
        assert clear.lower() not in stored.lower()
    assert stored.strip()  # the indexes and search tokens are there, as hex
    (body,) = raw_rows("SELECT body FROM helpline_message")[0]
    assert body.startswith(FERNET_PREFIX)
    # ... and the service still reads, finds and recognises the caller.
    case = Case.objects.get()
    assert case.messages.get().body == BODY and str(case.caller.phone) == NUMBER and case.caller.name == "Selma Begić"
    assert Case.objects.filter(cases_matching("nozem")).get() == case
    twilio.sms("Opet ja.", sid="SM" + "2" * 32)
    assert Case.objects.get().messages.count() == 2  # the second SMS found the caller by the number's blind index


def test_web_contact_details_are_encrypted_and_found_by_their_blind_index(client):
    response = client.post("/inquiry/", {
        "message": BODY, "name": "Selma Begić", "phone": "061 123 456", "email": "Selma.Begic@example.ba",
        "safe_to_call": "yes", "safe_to_text": "no", "safe_contact_note": "Poslije 17h, kad muž ode.",
        "leave_this_empty": "",
    })  # fmt: skip
    assert response.status_code in (200, 201, 302, 303)
    stored = everything_stored().lower()
    for clear in ("selma", "begic", "example.ba", "123456", "poslije", "17h"):
        assert clear not in stored
    case = Case.objects.get()
    assert (case.contact_name, str(case.contact_phone), case.contact_email) == (
        "Selma Begić", NUMBER, "Selma.Begic@example.ba"
    )
    assert Case.objects.get(contact_phone_index=phone_index(NUMBER)) == case


def test_filtering_an_encrypted_field_by_value_is_refused_rather_than_silently_empty():
    CaseFactory()
    with pytest.raises(FieldError, match="encrypted"):
        list(Message.objects.filter(body="x"))
    with pytest.raises(FieldError, match="encrypted"):
        list(Caller.objects.filter(phone__icontains="387"))
    assert Case.objects.filter(contact_name="").exists()  # "is it empty?" still works


def test_a_key_rotation_re_encrypts_everything_and_everything_still_reads(twilio, settings):
    twilio.sms(BODY, sid="SM" + "3" * 32)
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    (before,) = raw_rows("SELECT body FROM helpline_message")[0]

    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    settings.BLIND_INDEX_KEY = "a new blind index key for this test"
    call_command("rotate_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115

    # Only the new key is needed from now on: the old one can be dropped.
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    (after,) = raw_rows("SELECT body FROM helpline_message")[0]
    assert after != before and Fernet(new_key).decrypt(after.encode()).decode() == BODY
    case = Case.objects.get()
    assert case.messages.get().body == BODY and str(case.caller.phone) == NUMBER
    assert Case.objects.filter(cases_matching("nožem")).get() == case  # search tokens use the new index key
    twilio.sms("Opet ja.", sid="SM" + "4" * 32)
    assert Case.objects.count() == 1  # the caller is still recognised by the number's new blind index


def texted_before_and_during_a_blind_index_rotation(twilio, settings, *, first_resolved: bool) -> list[Case]:
    """A caller's SMS under the old blind-index key, then, with the new key set and before the rotation has run,
    another from the same number: not recognised, it made a second caller."""
    twilio.sms(BODY, sid="SM" + "5" * 32)
    first = Case.objects.get()
    Caller.objects.update(has_opted_out=True)  # they texted STOP once: that must outlive the rotation
    if first_resolved:
        services.change_case_status(first, CaseStatus.RESOLVED, reason="safe at her sister's")
    settings.BLIND_INDEX_KEY = "a new blind index key for this test"
    twilio.sms("Opet ja, isti broj.", sid="SM" + "6" * 32)
    assert Caller.objects.count() == 2
    return list(Case.objects.order_by("pk"))


def test_a_caller_who_texted_during_a_blind_index_rotation_is_one_caller_again_and_the_rotation_finishes(
    twilio, settings
):
    first, second = texted_before_and_during_a_blind_index_rotation(twilio, settings, first_resolved=True)
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)

    caller = Caller.objects.get()
    assert set(caller.cases.all()) == {first, second} and caller.has_opted_out
    assert Case.objects.filter(cases_matching("nožem")).get() == first  # the passes after the callers' ran
    twilio.sms("I još jednom.", sid="SM" + "7" * 32)
    assert second.messages.count() == 2  # the number is recognised and joins its open case


def test_a_caller_with_an_open_case_under_each_row_is_named_and_the_rotation_finishes(twilio, settings):
    first, second = texted_before_and_during_a_blind_index_rotation(twilio, settings, first_resolved=False)
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_keys", stdout=out, stderr=err)

    assert Caller.objects.count() == 2  # one caller has one open case at most: a person merges them
    assert first.reference in err.getvalue() and second.reference in err.getvalue()
    assert NUMBER not in out.getvalue() + err.getvalue()
    assert Case.objects.filter(cases_matching("nožem")).get() == first  # the passes after the callers' ran


def test_values_stored_before_encryption_are_encrypted_by_the_rotation():
    case = CaseFactory()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE helpline_case SET safe_contact_note = %s WHERE id = %s", ["Samo ujutro", case.pk])
    call_command("rotate_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115
    with connection.cursor() as cursor:
        cursor.execute("SELECT safe_contact_note FROM helpline_case WHERE id = %s", [case.pk])
        (note,) = cursor.fetchone()
    assert note.startswith(FERNET_PREFIX)
    case.refresh_from_db()
    assert case.safe_contact_note == "Samo ujutro"


def _waits_for_a_row_lock(timeout: float = 10.0) -> bool:
    """Whether another connection is waiting for a row this one holds (pg_locks is read live, even mid-transaction)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if raw_rows("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent transactions")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("rotation", [reencrypt_all, reindex_all], ids=["re-encryption", "blind indexes"])
def test_an_erasure_that_commits_while_a_key_rotation_runs_stays_erased(rotation):
    case = CaseFactory(caller=None, channel="web", status="closed", contact_name="Selma Begić", contact_phone=NUMBER)
    MessageFactory(case=case, channel="web", body=BODY)
    services.add_note(case, "Selma ima dvoje djece.", by=StaffFactory().user)

    def rotate() -> None:
        try:
            rotation(batch=10)
        finally:
            connections.close_all()

    rotating = threading.Thread(target=rotate)
    with transaction.atomic():
        services.anonymise_case(case, basis="request")
        rotating.start()
        # The rotation has read the rows as they were before the erasure, and waits for this transaction to end.
        assert _waits_for_a_row_lock()
    rotating.join(timeout=30)

    case.refresh_from_db()
    assert (case.contact_name, str(case.contact_phone), case.contact_phone_index) == ("", "", "")
    assert case.messages.get().body == "" and case.messages.get().search_tokens == ""
    assert case.timeline.get(kind=EventKind.NOTE).details["text"] == ""


@pytest.mark.parametrize("missing", ["FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY"])
def test_a_production_start_without_a_key_fails_with_a_clear_message(missing, tmp_path):
    environment = {
        **os.environ, "DEPLOYMENT": "production", "VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 50,
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "BLIND_INDEX_KEY": "y" * 40,
    }  # fmt: skip
    del environment[missing]
    started = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert started.returncode != 0
    assert f"{missing} is not set" in started.stderr
    assert not list(tmp_path.glob("*key*")), "production must never fall back to a key file"


def test_a_malformed_key_is_refused_at_start(tmp_path):
    environment = {**os.environ, "VAR_DIR": str(tmp_path), "FIELD_ENCRYPTION_KEYS": "not-a-key"}
    started = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert started.returncode != 0 and "key 1 is not a Fernet key" in started.stderr


def test_staff_notes_and_reasons_on_the_timeline_are_encrypted_and_ids_stay_queryable():
    case = CaseFactory()
    services.record_event(case, EventKind.NOTE, text="Majka kaže da otac pije svaku noć.", assignee_id=7)
    (details,) = raw_rows("SELECT CAST(details AS TEXT) FROM helpline_timelineevent WHERE kind = 'note'")[0]
    assert "otac" not in details and "pije" not in details
    event = case.timeline.get(kind=EventKind.NOTE)
    assert event.details == {"text": "Majka kaže da otac pije svaku noć.", "assignee_id": 7}
    assert case.timeline.filter(details__assignee_id=7).exists()
    with pytest.raises(FieldError, match="encrypted"):
        list(case.timeline.filter(details__text="x"))


def test_the_reason_of_a_staff_correction_of_triage_is_encrypted_like_the_text_it_corrects():
    supervisor = StaffFactory(role="supervisor")
    case = CaseFactory(priority="normal", category="information")
    do_reclassify(case, by=supervisor.user, priority="high", category="domestic_violence",
                  reason="Selma kaže da je muž tuče")  # fmt: skip
    (reason,) = raw_rows("SELECT reason FROM triage_triagecorrection")[0]
    assert reason.startswith(FERNET_PREFIX) and "Selma" not in reason
    assert case.triage_corrections.get().reason == "Selma kaže da je muž tuče"


def test_a_staff_phone_is_encrypted_and_an_sms_from_it_is_still_recognised():
    worker = StaffFactory(phone="+38762555444")
    (stored,) = raw_rows(f"SELECT phone FROM triage_staffprofile WHERE id = {int(worker.pk)}")[0]  # noqa: S608
    assert stored.startswith(FERNET_PREFIX) and what_is_readable([stored]) == ""
    received = receive_sms(message_sid="SMstaff", from_number="+38762555444", body="OK")
    assert received.intake is None and received.staff_reply  # a staff command, answered, not a citizen case


def register_hasija() -> VulnerablePerson:
    return VulnerablePerson.objects.create(
        full_name="Hasija Hodžić", phone="+38761222333", other_phone="+38733444555", address="Obala Kulina bana 12",
        trusted_contact_name="Emir Hodžić", trusted_contact_phone="+38762111222", notes="Kisik noću, aparat",
        municipality="Maglaj", legal_basis="public_task",
    )  # fmt: skip


def ask_maglaj() -> WelfareCheck:
    welfare_services.start_campaign(title="Poplava", question="Jeste li sigurni?", areas=["Maglaj"], needs=[], by=None)
    welfare_services.advance_campaigns()
    check = WelfareCheck.objects.get()
    assert check.state == CheckState.ASKED
    return check


def test_the_welfare_register_holds_no_clear_name_number_or_address_and_a_reply_still_settles_its_check(
    twilio, settings
):
    settings.SMS_BACKEND = "memory"
    register_hasija()
    ask_maglaj()

    rows = raw_rows(
        "SELECT full_name, phone, other_phone, address, trusted_contact_name, trusted_contact_phone, notes, "
        "phone_index, entry_index, name_tokens FROM welfare_vulnerableperson"
    )
    rows += raw_rows("SELECT phone, phone_index FROM welfare_welfarecheck")
    stored = what_is_readable(value for row in rows for value in row).lower()
    for clear in ("hasija", "hodž", "hodz", "obala", "kulina", "emir", "kisik", "aparat", "222333", "444555", "111222"):
        assert clear not in stored
    assert rows[0][0].startswith(FERNET_PREFIX)

    # The reply from the registered number, through the SMS webhook, finds its open question by the number's hash.
    response = twilio.sms("1", sid="SM" + "5" * 32, from_number="+38761222333")
    assert response.status_code == 200 and "Zabilježili smo da ste sigurni" in response.content.decode()
    check = WelfareCheck.objects.get()
    assert check.state == CheckState.SAFE and check.answered_via == "sms" and check.phone == "+38761222333"
    assert not Case.objects.exists()  # "safe" settles the check: no case
    person = VulnerablePerson.objects.get()
    assert (person.full_name, str(person.phone), person.address) == ("Hasija Hodžić", "+38761222333",
                                                                      "Obala Kulina bana 12")  # fmt: skip


def test_after_a_key_rotation_the_register_is_still_searched_and_replies_still_matched(twilio, settings):
    settings.SMS_BACKEND = "memory"
    hasija = register_hasija()
    ask_maglaj()
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]
    settings.BLIND_INDEX_KEY = "another blind index key for this test"
    call_command("rotate_keys", stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert VulnerablePerson.objects.filter(welfare_selectors.people_matching("hodz")).get() == hasija
    assert VulnerablePerson.objects.filter(welfare_selectors.people_matching("061 222 333")).get() == hasija
    twilio.sms("1", sid="SM" + "6" * 32, from_number="+38761222333")
    assert WelfareCheck.objects.get().state == CheckState.SAFE


def test_migrate_stops_when_the_keys_do_not_open_the_stored_data(twilio, settings):
    twilio.sms(BODY, sid="SM" + "5" * 32)
    call_command("check", databases=["default"])  # the right key: no complaint
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SystemCheckError, match="FIELD_ENCRYPTION_KEYS cannot open"):
        call_command("check", databases=["default"])
