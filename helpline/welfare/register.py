"""The register's spreadsheets: import (a preview first, then all rows or none) and export, CSV and XLSX, with
django-import-export. A row is reported by its line number with what is wrong in it; a row with the same phone
and name as an earlier row of the file is a duplicate; one matching an entry already kept updates that entry (found
by the keyed hash of its number and name: both are stored encrypted)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import phonenumbers
import tablib
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from import_export import fields, resources, widgets
from import_export.instance_loaders import BaseInstanceLoader

from helpline.cases.intake import normalise_phone
from helpline.cases.models import Language, Script
from helpline.welfare.models import LegalBasis, Need, VulnerablePerson, normalised_name, register_entry_index
from helpline.welfare.replies import fold

FORMATS = ("csv", "xlsx")
# Words centres write in their sheets for each need, besides the codes.
_NEED_WORDS = {
    "zivi sam": Need.LIVES_ALONE, "zivi sama": Need.LIVES_ALONE, "sam": Need.LIVES_ALONE, "sama": Need.LIVES_ALONE,
    "pokretljivost": Need.MOBILITY, "invalidska kolica": Need.MOBILITY, "kisik": Need.POWER_DEVICE,
    "kiseonik": Need.POWER_DEVICE, "aparat": Need.POWER_DEVICE, "dijaliza": Need.DIALYSIS,
    "demencija": Need.DEMENTIA, "djeca": Need.CHILDREN_IN_CARE,
}  # fmt: skip


class NeedsWidget(widgets.Widget):
    """"lives_alone, power_device" or "živi sam; kisik" in a cell; the stored list of codes on export."""

    def clean(self, value, row=None, **kwargs):
        needs = []
        for part in str(value or "").replace(";", ",").split(","):
            word = fold(part).replace(" ", "_")
            if not word:
                continue
            need = word if word in Need.values else _NEED_WORDS.get(word.replace("_", " "))
            if need is None:
                raise ValueError(f"unknown need {part.strip()!r} (one of: {', '.join(Need.values)})")
            if need not in needs:
                needs.append(need)
        return needs

    def render(self, value, obj=None, **kwargs):
        return ", ".join(value or [])


class PhoneWidget(widgets.Widget):
    def __init__(self, *, required: bool) -> None:
        super().__init__()
        self.required = required

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, float) and value.is_integer():  # a number cell: 61111444.0, not "61111444.0"
            value = int(value)
        raw = _WHOLE_NUMBER_WRITTEN_AS_DECIMAL.sub(r"\1", str(value or "").strip())
        if not raw:
            if self.required:
                raise ValueError("a phone number is required")
            return ""
        phone = normalise_phone(raw)
        # Valid, not merely possible: a mistyped number would have its person's welfare question go nowhere.
        if phone is None or not phonenumbers.is_valid_number(phonenumbers.parse(phone)):
            raise ValueError(f"{raw!r} is not a phone number in use (check the digits; write it as 061 123 456)")
        return phone

    def render(self, value, obj=None, **kwargs):
        return str(value or "")


# "61111444.0": a number that went through a numeric cell or a script on its way to the sheet.
_WHOLE_NUMBER_WRITTEN_AS_DECIMAL = re.compile(r"^(\+?\d+)\.0+$")


class BirthYearWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = _WHOLE_NUMBER_WRITTEN_AS_DECIMAL.sub(r"\1", str(value if value is not None else "").strip())
        if not text:
            return None
        if not (text.isascii() and text.isdigit() and 1900 <= int(text) <= dt.date.today().year):
            raise ValueError(f"birth year {text!r} is not a year such as 1942 (leave it empty if unknown)")
        return int(text)

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class ChoiceWidget(widgets.Widget):
    def __init__(self, choices, *, default: str = "") -> None:
        super().__init__()
        self.values, self.default = list(choices), default

    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip().lower() or self.default
        if text not in self.values:
            raise ValueError(f"{value!r} is not one of: {', '.join(self.values)}")
        return text


class RegisterEntryLoader(BaseInstanceLoader):
    """Finds the entry a row updates by the keyed hash of its number and name: the database cannot compare the
    encrypted values themselves. A row whose number does not parse finds nothing (its error is reported)."""

    def get_instance(self, row):
        try:
            phone = self.resource.fields["phone"].clean(row)
        except ValueError:
            return None
        name = normalised_name(row.get("full_name"))
        return VulnerablePerson.objects.filter(entry_index=register_entry_index(phone, name)).first()


class VulnerablePersonResource(resources.ModelResource):
    phone = fields.Field(attribute="phone", column_name="phone", widget=PhoneWidget(required=True))
    other_phone = fields.Field(attribute="other_phone", column_name="other_phone", widget=PhoneWidget(required=False))
    trusted_contact_phone = fields.Field(
        attribute="trusted_contact_phone", column_name="trusted_contact_phone", widget=PhoneWidget(required=False)
    )
    needs = fields.Field(attribute="needs", column_name="needs", widget=NeedsWidget())
    birth_year = fields.Field(attribute="birth_year", column_name="birth_year", widget=BirthYearWidget())
    language = fields.Field(
        attribute="language", column_name="language", widget=ChoiceWidget(Language.values, default="bs")
    )
    script = fields.Field(attribute="script", column_name="script", widget=ChoiceWidget(Script.values, default="latin"))
    legal_basis = fields.Field(
        attribute="legal_basis", column_name="legal_basis", widget=ChoiceWidget(LegalBasis.values)
    )

    class Meta:
        model = VulnerablePerson
        import_id_fields = ("phone", "full_name")  # compared by their hash (RegisterEntryLoader)
        instance_loader_class = RegisterEntryLoader
        fields = (
            "full_name", "phone", "other_phone", "address", "settlement", "municipality", "language", "script",
            "birth_year", "needs", "trusted_contact_name", "trusted_contact_phone", "legal_basis",
            "consent_recorded_on", "notes",
        )  # fmt: skip
        export_order = fields
        clean_model_instances = True  # the model's own validation (required fields, lengths) per row
        skip_unchanged = True
        report_skipped = True

    def __init__(self, *, by: AbstractBaseUser | None = None) -> None:
        super().__init__()
        self.by = by
        self.seen: dict[tuple[str, str], int] = {}

    def before_import_row(self, row, **kwargs):
        """A second row with the same phone and name is a duplicate in the sheet, not a second person."""
        number = kwargs.get("row_number")
        key = (normalise_phone(str(row.get("phone") or "")) or "", normalised_name(row.get("full_name")))
        row["full_name"] = key[1]
        if key[0] and key in self.seen:
            raise ValueError(f"duplicate: same phone and name as row {self.seen[key]}")
        self.seen[key] = number

    def before_save_instance(self, instance, row, **kwargs):
        instance.last_checked_by, instance.last_checked_at = self.by, timezone.now()


@dataclass
class RowReport:
    number: int  # the spreadsheet's line (the header is line 1)
    action: str  # new, update, skip, error
    name: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    rows: list[RowReport]
    stored: bool = False

    @property
    def is_valid(self) -> bool:
        return bool(self.rows) and not any(row.errors for row in self.rows)

    def count(self, action: str) -> int:
        return sum(1 for row in self.rows if row.action == action)


class SheetNotReadable(ValueError):
    """The file cannot be read as a register: the message says what to do, in words a supervisor can act on."""


REQUIRED_COLUMNS = ("full_name", "phone")


def load(data: bytes, file_format: str) -> tablib.Dataset:
    """The sheet as rows. A CSV may be UTF-8 or Windows-1250 (what Excel saves here), and its columns separated by
    commas or by semicolons (Excel's CSV in Bosnian, Croatian and Serbian); a sheet without the columns a person
    needs is refused, naming the columns it has, instead of previewing every row as nothing to do."""
    if file_format not in FORMATS:
        raise ValueError(f"unsupported format {file_format!r}")
    if file_format == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1250", errors="strict") if _is_cp1250(data) else None
            if text is None:
                raise SheetNotReadable(gettext(
                    "The file's characters could not be read: save it as CSV UTF-8 or as an Excel workbook (.xlsx)."
                )) from None
        header = text.splitlines()[0] if text.strip() else ""
        delimiter = max(",;\t", key=header.count) if header else ","
        sheet = tablib.Dataset().load(text, format="csv", delimiter=delimiter)
    else:
        sheet = tablib.Dataset().load(data, format="xlsx")
    found = [str(name or "").strip() for name in (sheet.headers or [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in found]
    if missing:
        raise SheetNotReadable(gettext(
            "The sheet has no column %(missing)s: its first row must name the columns (%(required)s, ...). "
            "Columns found: %(found)s."
        ) % {"missing": ", ".join(missing), "required": ", ".join(REQUIRED_COLUMNS), "found": ", ".join(found) or "-"})
    return sheet


def _is_cp1250(data: bytes) -> bool:
    try:
        data.decode("cp1250")
    except UnicodeDecodeError:
        return False
    return True


def _report(result) -> ImportReport:
    errors_by_row: dict[int, list[str]] = {}
    for number, row_errors in result.row_errors():
        errors_by_row.setdefault(number, []).extend(str(error.error) for error in row_errors)
    for invalid in result.invalid_rows:
        errors_by_row.setdefault(invalid.number, []).extend(
            f"{name}: {' '.join(messages)}" for name, messages in invalid.error_dict.items()
        )
    rows = []
    for index, row in enumerate(result.rows, start=1):
        number = getattr(row, "number", None) or index
        errors = errors_by_row.pop(number, [])
        action = "error" if errors else {"new": "new", "update": "update"}.get(row.import_type, "skip")
        name = str(getattr(row, "object_repr", "") or "")
        rows.append(RowReport(number + 1, action, name, errors))
    for number, errors in errors_by_row.items():
        rows.append(RowReport(number + 1, "error", "", errors))
    return ImportReport(sorted(rows, key=lambda r: r.number))


def preview_import(data: bytes, file_format: str) -> ImportReport:
    """What an import would do, row by row; nothing is stored."""
    result = VulnerablePersonResource().import_data(load(data, file_format), dry_run=True, raise_errors=False,
                                                    use_transactions=True)  # fmt: skip
    return _report(result)


def confirm_import(data: bytes, file_format: str, *, by: AbstractBaseUser | None) -> ImportReport:
    """Store every row in one transaction, or none: a sheet with one bad row stores nothing."""
    with transaction.atomic():
        result = VulnerablePersonResource(by=by).import_data(
            load(data, file_format), dry_run=False, raise_errors=False, use_transactions=False
        )
        report = _report(result)
        if not report.is_valid:
            transaction.set_rollback(True)
            return report
    report.stored = True
    return report


def export_register(file_format: str) -> bytes | str:
    dataset = VulnerablePersonResource().export(VulnerablePerson.objects.filter(is_active=True))
    return dataset.export(file_format)
