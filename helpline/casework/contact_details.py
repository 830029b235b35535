"""The one rule for a citizen's contact details, for every surface (staff API, console, admin, exports).

Phone, e-mail, name and the safe-contact note are shown in clear only to the worker the case is assigned to and to
supervisors; everyone else sees them masked. An abuser may be a relative of a colleague, and a worker who once had
a case, or who browses the unassigned queue, has no need of a person's number.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from helpline.cases.models import Case, mask_phone
from helpline.roster.selectors import is_supervisor

HIDDEN = "***"


@dataclass(frozen=True)
class ContactDetails:
    phone: str
    name: str
    email: str
    safe_contact_note: str
    is_masked: bool


def may_see_contact_details(user, case: Case) -> bool:
    return bool(user is not None and user.is_authenticated and (case.assigned_to_id == user.pk or is_supervisor(user)))


def _phone(case: Case) -> str:
    if case.caller_id:
        return str(case.caller.phone)
    return str(case.contact_phone or "")


def _hidden(value: str) -> str:
    return HIDDEN if value else ""


def contact_details(case: Case, user) -> ContactDetails:
    """The case's contact details as this person may see them: blank stays blank, so "not given" still shows."""
    phone, name = _phone(case), case.contact_name
    if may_see_contact_details(user, case):
        return ContactDetails(phone, name, case.contact_email, case.safe_contact_note, is_masked=False)
    return ContactDetails(
        mask_phone(phone), _hidden(name), _hidden(case.contact_email), _hidden(case.safe_contact_note), is_masked=True
    )


MASKED_EXPLANATION = _("Only the assigned worker and supervisors see contact details in full.")
