"""What staff phones hear and read about home visits. The worker's phone never learns of an alarm: someone who
forced the worker to check out may be holding it."""
from __future__ import annotations

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext

from helpline.visits.models import Visit


def _in_staff_language(render) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return render()


def _facts(visit: Visit, code: str = "") -> dict[str, str]:
    return {
        "helpline": settings.HELPLINE_NAME,
        "worker": str(visit.worker),
        "phone": str(visit.worker.phone or "-"),
        "case": visit.case.reference if visit.case_id else "-",
        "address": visit.address or gettext("not given"),
        "due": f"{timezone.localtime(visit.expected_end_at):%H:%M}",
        "police": settings.EMERGENCY_NUMBERS.get("police", "122"),
        "colleague": str(visit.colleague) if visit.colleague_id else "-",
        "code": code,
    }


# --- To supervisors and the centre's fallback numbers (they may see the address) ------------------------------


def overdue_to_supervisor(visit: Visit, code: str = "") -> str:
    return _in_staff_language(lambda: gettext(
        "%(helpline)s HOME VISIT OVERDUE: %(worker)s (%(phone)s) has not checked out, due %(due)s, case %(case)s. "
        "Address: %(address)s. Call them now. Reply OK %(code)s to take it."
    ) % _facts(visit, code))  # fmt: skip


def overdue_to_everyone(visit: Visit, code: str = "") -> str:
    return _in_staff_language(lambda: gettext(
        "%(helpline)s HOME VISIT OVERDUE, nobody has taken it: %(worker)s (%(phone)s), due %(due)s, case %(case)s, "
        "colleague %(colleague)s. Address: %(address)s. If they cannot be reached, call the police on %(police)s. "
        "Reply OK %(code)s to take it."
    ) % _facts(visit, code))  # fmt: skip


def alarm_to_everyone(visit: Visit, code: str = "") -> str:
    return _in_staff_language(lambda: gettext(
        "%(helpline)s HOME VISIT ALARM: %(worker)s raised a silent alarm, case %(case)s. Address: %(address)s. "
        "Call the police on %(police)s. Do not call or text their phone: someone may be watching it. "
        "Reply OK %(code)s to take it."
    ) % _facts(visit, code))  # fmt: skip


def overdue_to_fallback(visit: Visit) -> str:
    """As `overdue_to_everyone`, to a fallback number: without "reply OK", which takes nothing from there."""
    return _in_staff_language(lambda: gettext(
        "%(helpline)s HOME VISIT OVERDUE, nobody has taken it: %(worker)s (%(phone)s), due %(due)s, case %(case)s, "
        "colleague %(colleague)s. Address: %(address)s. If they cannot be reached, call the police on %(police)s."
    ) % _facts(visit))  # fmt: skip


def alarm_to_fallback(visit: Visit) -> str:
    return _in_staff_language(lambda: gettext(
        "%(helpline)s HOME VISIT ALARM: %(worker)s raised a silent alarm, case %(case)s. Address: %(address)s. "
        "Call the police on %(police)s. Do not call or text their phone: someone may be watching it."
    ) % _facts(visit))  # fmt: skip


def all_clear(visit: Visit) -> str:
    return _in_staff_language(lambda: gettext(
        "%(helpline)s: %(worker)s is safe: the home visit (case %(case)s) is over or extended. No action needed."
    ) % _facts(visit))  # fmt: skip


def call_to_supervisor(visit: Visit) -> str:
    def render() -> str:  # translated inside: the call is spoken with the centre's voice, whatever ran it
        if visit.status == "alarm":
            text = gettext("%(helpline)s: home visit alarm. %(worker)s raised an alarm. Address: %(address)s. "
                           "Call the police on %(police)s. Press 1 to take it.")
        else:
            text = gettext("%(helpline)s: home visit overdue. %(worker)s has not checked out. Address: %(address)s. "
                           "Press 1 to take it.")
        return text % _facts(visit)

    return _in_staff_language(render)


def call_to_fallback(visit: Visit) -> str:
    return _in_staff_language(lambda: gettext(
        "%(helpline)s: a social worker, %(worker)s, cannot be reached on a home visit. Address: %(address)s. "
        "Call the police on %(police)s. Details were sent by SMS."
    ) % _facts(visit))  # fmt: skip


def taken_by_you(visit: Visit) -> str:
    return _in_staff_language(lambda: gettext(
        "You have taken the home visit of %(worker)s (case %(case)s). Address: %(address)s."
    ) % _facts(visit))  # fmt: skip


def taken_by_someone_else(visit: Visit) -> str:
    taker = visit.acknowledged_by.get_full_name() or visit.acknowledged_by.get_username()
    return _in_staff_language(lambda: gettext(
        "The home visit of %(worker)s (case %(case)s) was already taken by %(taker)s."
    ) % {**_facts(visit), "taker": taker})  # fmt: skip


# --- To the worker ------------------------------------------------------------------------------------------


def overdue_to_worker(visit: Visit) -> str:
    return _in_staff_language(lambda: gettext(
        "%(helpline)s: your visit was due to end at %(due)s. Reply SAFE and your PIN, or EXTEND, minutes and your "
        "PIN."
    ) % _facts(visit))  # fmt: skip


def call_to_worker(visit: Visit) -> str:
    minutes = settings.VISIT_SAFE_CALL_EXTENSION_MINUTES
    return _in_staff_language(lambda: gettext(
        "%(helpline)s: your home visit is overdue. If you are safe, press 1: it adds %(minutes)s minutes."
    ) % {**_facts(visit), "minutes": minutes})  # fmt: skip


def call_to_worker_for_pin(visit: Visit) -> str:
    minutes = settings.VISIT_SAFE_CALL_EXTENSION_MINUTES
    return _in_staff_language(lambda: gettext(
        "%(helpline)s: your home visit is overdue. If you are safe, enter your check-out PIN and press hash: it "
        "adds %(minutes)s minutes."
    ) % {**_facts(visit), "minutes": minutes})  # fmt: skip


def safe_confirmed() -> str:
    return _in_staff_language(lambda: gettext("Thank you. Check out when you leave."))


def visit_started(visit: Visit, *, has_pin: bool) -> str:
    def render() -> str:
        text = gettext(
            "Visit started. Check out by %(due)s: SAFE and your PIN. EXTEND 30 adds 30 minutes. POMOC raises a "
            "silent alarm."
        ) % _facts(visit)
        if not has_pin:
            text += " " + gettext("You have no check-out PIN yet: set one in the console.")
        return text

    return _in_staff_language(render)


def case_not_linked(reference: str) -> str:
    return _in_staff_language(
        lambda: gettext("Case %(reference)s was not found among your cases; add it in the console.")
        % {"reference": reference}
    )


def extend_needs_pin(max_minutes: int) -> str:
    return _in_staff_language(lambda: gettext(
        "Not extended: once a visit is overdue, or for more than %(minutes)s minutes, send EXTEND, the minutes and "
        "your PIN, e.g. EXTEND 30 1234."
    ) % {"minutes": max_minutes})  # fmt: skip


def extend_needs_your_pin(max_minutes: int) -> str:
    """The console's and the app's words for `extend_needs_pin`: there the PIN has a field of its own."""
    return _in_staff_language(lambda: gettext(
        "Not extended: once a visit is overdue, or for more than %(minutes)s minutes, enter your PIN."
    ) % {"minutes": max_minutes})  # fmt: skip


def visit_extended(visit: Visit) -> str:
    return _in_staff_language(lambda: gettext("Visit extended: check out by %(due)s.") % _facts(visit))


def checked_out() -> str:
    # The duress PIN gets exactly this answer too.
    return _in_staff_language(lambda: gettext("Checked out. Thank you, take care."))


def no_open_visit() -> str:
    return _in_staff_language(lambda: gettext("You have no visit open."))


def already_open(visit: Visit) -> str:
    return _in_staff_language(
        lambda: gettext("You already have a visit open until %(due)s: EXTEND or SAFE first.") % _facts(visit)
    )


def wrong_pin() -> str:
    return _in_staff_language(lambda: gettext("PIN not recognised: the visit is still running."))


def no_pin_set() -> str:
    return _in_staff_language(lambda: gettext("You have no check-out PIN: set one in the console, or check out there."))


def visit_help() -> str:
    return _in_staff_language(lambda: gettext(
        "Visits: VISIT SOS-2026-00042 60 address, or V 60 address; EXTEND 30; SAFE and your PIN; POMOC."
    ))  # fmt: skip
