"""The register comes from the spreadsheets centres keep: a preview shows each row's fate and what is wrong in it,
a duplicate (same phone and name) is caught, and a sheet with any bad row stores nothing."""
from __future__ import annotations

import io

import openpyxl
import pytest

from helpline.welfare import register
from helpline.welfare.models import VulnerablePerson
from tests.encrypted import person_named
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

HEADER = "full_name,phone,municipality,settlement,address,language,script,birth_year,needs,legal_basis\n"
GOOD = (
    "Hasija Hodžić,061 111 222,Maglaj,Novi Šeher,Glavna 3,bs,latin,1942,\"lives_alone, power_device\",public_task\n"
    "Милан Петровић,+387 65 333 444,Doboj,Usora,Крајишка 7,bs,cyrillic,1938,dijaliza,consent\n"
)
BAD = (
    "Hasija Hodžić,061 111 222,Maglaj,Novi Šeher,Glavna 3,bs,latin,1942,lives_alone,public_task\n"  # row 2: fine
    "Hasija  Hodžić,+38761111222,Maglaj,Novi Šeher,Glavna 3,bs,latin,1942,lives_alone,public_task\n"  # 3: duplicate
    "Ivo Ivić,nije broj,Maglaj,,,bs,latin,1950,,public_task\n"  # 4: not a phone number
    "Ana Anić,062 555 666,Šamac,,,bs,latin,1950,flying,public_task\n"  # 5: unknown need
    "Ema Emić,062 777 888,,,,bs,latin,1950,,whatever\n"  # 6: no municipality, unknown legal basis
)


def csv_bytes(rows: str) -> bytes:
    return (HEADER + rows).encode("utf-8")


def test_a_sheet_with_errors_and_a_duplicate_stores_nothing_and_says_what_is_wrong_in_each_row():
    report = register.confirm_import(csv_bytes(BAD), "csv", by=None)

    assert not report.stored and VulnerablePerson.objects.count() == 0
    by_row = {row.number: row for row in report.rows}
    assert by_row[2].action == "new" and not by_row[2].errors
    assert "duplicate: same phone and name as row" in by_row[3].errors[0]
    assert "'nije broj' is not a phone number" in " ".join(by_row[4].errors)
    assert "unknown need 'flying'" in " ".join(by_row[5].errors)
    six = " ".join(by_row[6].errors)
    assert "municipality" in six


def test_excels_csv_with_semicolons_in_windows_1250_is_read_as_excel_meant_it():
    # Excel here saves CSV with ";" and in Windows-1250: it was read as one column, every row "nothing to do", and
    # "Imported: 0 new" stored nobody, without a word.
    sheet = (HEADER + GOOD).replace(",", ";").replace('"lives_alone; power_device"', '"lives_alone, power_device"')
    sheet = sheet.replace("Милан Петровић", "Milan Petrović").replace("Крајишка 7", "Krajiška 7")
    report = register.confirm_import(sheet.encode("cp1250"), "csv", by=None)
    assert report.stored and [row.action for row in report.rows] == ["new", "new"]
    assert person_named("Hasija Hodžić").needs == ["lives_alone", "power_device"]


def test_a_sheet_without_the_name_and_phone_columns_is_refused_naming_the_columns_it_has():
    with pytest.raises(register.SheetNotReadable, match=r"full_name, phone.*: ime, telefon"):
        register.preview_import(b"ime,telefon\nHasija,061 111 222\n", "csv")


def test_a_phone_written_as_a_decimal_is_read_and_a_wrong_birth_year_is_explained_in_words():
    rows = (
        "Hasija Hodžić,61111222.0,Maglaj,Novi Šeher,Glavna 3,bs,latin,1942.0,lives_alone,public_task\n"
        "Ivo Ivić,062 555 666,Maglaj,,,bs,latin,oko 1940,,public_task\n"
        "Ana Anić,061 1,Maglaj,,,bs,latin,1950,,public_task\n"
    )
    report = register.preview_import(csv_bytes(rows), "csv")
    by_row = {row.number: row for row in report.rows}
    assert by_row[2].action == "new" and not by_row[2].errors
    assert "birth year 'oko 1940' is not a year such as 1942" in " ".join(by_row[3].errors)
    assert "is not a phone number in use" in " ".join(by_row[4].errors)
    register.confirm_import(csv_bytes(rows.splitlines()[0] + "\n"), "csv", by=None)
    hasija = person_named("Hasija Hodžić")
    assert (str(hasija.phone), hasija.birth_year) == ("+38761111222", 1942)


def test_the_preview_stores_nothing_and_a_clean_sheet_is_stored_whole():
    staff = StaffFactory()
    preview = register.preview_import(csv_bytes(GOOD), "csv")
    assert preview.is_valid and [row.action for row in preview.rows] == ["new", "new"]
    assert VulnerablePerson.objects.count() == 0

    report = register.confirm_import(csv_bytes(GOOD), "csv", by=staff.user)
    assert report.stored
    hasija = person_named("Hasija Hodžić")
    assert str(hasija.phone) == "+38761111222" and hasija.needs == ["lives_alone", "power_device"]
    assert hasija.last_checked_by == staff.user
    assert VulnerablePerson.objects.get(municipality="Doboj").needs == ["dialysis"]

    # The same sheet again updates the entries it matches by phone and name: no second person.
    again = register.confirm_import(csv_bytes(GOOD), "csv", by=staff.user)
    assert again.stored and VulnerablePerson.objects.count() == 2
    moved = register.confirm_import(csv_bytes(GOOD.replace("Glavna 3", "Riječna 8")), "csv", by=staff.user)
    assert [row.action for row in moved.rows] == ["update", "skip"] and VulnerablePerson.objects.count() == 2
    assert person_named("Hasija Hodžić").address == "Riječna 8"


def test_the_register_goes_out_and_comes_back_as_xlsx():
    register.confirm_import(csv_bytes(GOOD), "csv", by=None)
    sheet = register.export_register("xlsx")
    rows = list(openpyxl.load_workbook(io.BytesIO(sheet)).active.values)
    assert rows[0][:2] == ("full_name", "phone") and len(rows) == 3
    VulnerablePerson.objects.all().delete()

    report = register.confirm_import(sheet, "xlsx", by=None)
    assert report.stored and VulnerablePerson.objects.count() == 2
