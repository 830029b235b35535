"""What staff phones receive. Never a citizen's words or number: a staff phone can be lost or read by others."""
from __future__ import annotations

from django.conf import settings
from django.utils import translation
from django.utils.formats import date_format
from django.utils.translation import gettext

from helpline.cases.models import Case, Priority
from triage.models import Category

# GSM 03.38's basic set and its extension: an SMS in these characters takes 160 to a segment; one character
# outside them (č, ć, š, ž, đ) makes the whole message UCS-2, 70 to a segment.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
_WITHOUT_DIACRITICS = str.maketrans(
    {"č": "c", "ć": "c", "š": "s", "ž": "z", "đ": "dj", "Č": "C", "Ć": "C", "Š": "S", "Ž": "Z", "Đ": "Dj"}
)


def for_staff_sms(text: str) -> str:
    """A staff SMS without Bosnian diacritics when that is all that keeps it from GSM-7: "slučaj ... kritično"
    was two and three segments where one does, and in a surge Twilio's queue for the number (counted in segments)
    grew two to three times faster than the sending rate assumes, with critical alerts waiting in it. Staff read
    SMS without diacritics every day; citizens' messages keep theirs."""
    folded = text.translate(_WITHOUT_DIACRITICS)
    return folded if all(ch in _GSM7 for ch in folded) else text


def in_staff_language(render) -> str:
    """Staff phones get the centre's language, whatever language the request or task runs in."""
    with translation.override(settings.LANGUAGE_CODE):
        return render()


def _facts(case: Case, code: str = "") -> dict[str, str]:
    priority = str(Priority(case.priority).label).lower() if case.priority in Priority.values else "-"
    category = str(Category(case.category).label).lower() if case.category in Category.values else "-"
    return {
        "reference": case.reference, "priority": priority, "category": category, "helpline": settings.HELPLINE_NAME,
        "code": code or "",
    }  # fmt: skip


def console_url(path: str) -> str:
    """The console page at `path` as a link a phone can open; "" when the service does not know its public address
    (PUBLIC_BASE_URL, which SMS_BACKEND=twilio requires)."""
    return f"{settings.PUBLIC_BASE_URL}{path}" if settings.PUBLIC_BASE_URL else ""


# Every message about a case carries the one-time code that alone can acknowledge it by SMS ("OK 4821").
def assignment(case: Case, code: str = "") -> str:
    return in_staff_language(
        lambda: gettext(
            "%(helpline)s: case %(reference)s is yours (%(priority)s, %(category)s). Reply OK %(code)s to take it."
        )
        % _facts(case, code)
    )


def reminder(case: Case, code: str = "") -> str:
    return in_staff_language(
        lambda: gettext("%(helpline)s reminder: case %(reference)s (%(priority)s) is waiting. Reply OK %(code)s.")
        % _facts(case, code)
    )


def escalation(case: Case, code: str = "") -> str:
    return in_staff_language(
        lambda: gettext(
            "%(helpline)s ESCALATION: case %(reference)s (%(priority)s, %(category)s) has not been taken in time. "
            "Reply OK %(code)s to take it."
        )
        % _facts(case, code)
    )


def escalation_to_fallback(case: Case) -> str:
    """To a number the centre set for when nobody answers (the head of the centre): no code, since nothing they
    reply takes a case; they act in the console or by phone."""
    return in_staff_language(
        lambda: gettext(
            "%(helpline)s ESCALATION: nobody on duty has taken case %(reference)s (%(priority)s, %(category)s). "
            "Open it in the console and give it to someone, or call the team."
        )
        % _facts(case)
    )


def follow_up(case: Case) -> str:
    return in_staff_language(
        lambda: gettext("%(helpline)s: the citizen wrote again on case %(reference)s (%(priority)s). Open it in "
                        "the console.") % _facts(case)
    )


def use_the_code() -> str:
    return in_staff_language(
        lambda: gettext("Not taken: reply OK with the 4-digit code from the message you received, or take the case "
                        "in the console.")
    )


def code_not_recognised() -> str:
    return in_staff_language(
        lambda: gettext("Not taken: that code was not sent to this phone. Use the code from your message, or the "
                        "console.")
    )


def code_already_used(case: Case) -> str:
    return in_staff_language(
        lambda: gettext("Case %(reference)s is no longer waiting: that code cannot be used again.")
        % {"reference": case.reference}
    )


def staff_call(case: Case) -> str:
    return in_staff_language(
        # The priority as it is: a high case's escalation calls too, and must not be announced as critical.
        lambda: gettext("%(helpline)s: case %(reference)s, %(priority)s, %(category)s. Press 1 to take it.")
        % {**_facts(case), "reference": " ".join(case.reference.replace("-", " "))}
    )


def staff_call_to_fallback(case: Case) -> str:
    return in_staff_language(
        lambda: gettext("%(helpline)s: nobody on duty has taken case %(reference)s, %(priority)s, %(category)s. "
                        "The details were sent by SMS.")
        % {**_facts(case), "reference": " ".join(case.reference.replace("-", " "))}
    )


def staff_call_while_unavailable() -> str:
    """Said on a staff call whose details cannot be read (the database is away): how to act on it anyway. The
    call may be about a case or a home visit's alarm (they share the webhook, told apart only in the database)."""
    return in_staff_language(
        lambda: gettext(
            "%(helpline)s: the details were sent to you by SMS. Read it and answer it as it says: for a case, reply "
            "OK and the code from it to take it."
        )
        % {"helpline": settings.HELPLINE_NAME}
    )


def command_help() -> str:
    return in_staff_language(
        lambda: gettext(
            "%(helpline)s: reply OK to take the most urgent case sent to you, or OK and the code from its message."
        )
        % {"helpline": settings.HELPLINE_NAME}
    )


def nothing_to_acknowledge() -> str:
    return in_staff_language(lambda: gettext("No case is waiting for you to take it."))


def not_yours(case: Case) -> str:
    return in_staff_language(
        lambda: gettext("Case %(reference)s is assigned to someone else.") % {"reference": case.reference}
    )


def acknowledged(case: Case) -> str:
    return in_staff_language(
        lambda: gettext("Case %(reference)s is yours. Thank you.") % {"reference": case.reference}
    )


def taken_by_someone_else(case: Case) -> str:
    taker = (case.assigned_to.get_full_name() or case.assigned_to.get_username()) if case.assigned_to else "?"
    return in_staff_language(
        lambda: gettext("Case %(reference)s is not yours: %(taker)s has it. Nothing to do.")
        % {"reference": case.reference, "taker": taker}
    )


def roster_gaps(gaps) -> str:
    def render() -> str:
        lines = [gettext("%(helpline)s: gaps in the roster this week:") % {"helpline": settings.HELPLINE_NAME}]
        for gap in gaps[:8]:
            starts, ends = timezone_local(gap.starts_at), timezone_local(gap.ends_at)
            # The day's name in the centre's language (strftime's %a is always English), and the end's day when it
            # is another: a gap from Friday 16:00 to Monday 08:00 must not read like one night.
            start = f"{date_format(starts, 'D')} {starts:%d.%m. %H:%M}"
            end = f"{ends:%H:%M}" if ends.date() == starts.date() else f"{date_format(ends, 'D')} {ends:%d.%m. %H:%M}"
            lines.append(f"{start} - {end} {gap.problem}")
        if len(gaps) > 8:
            lines.append(gettext("and %(count)s more; see the admin.") % {"count": len(gaps) - 8})
        return "\n".join(lines)

    return in_staff_language(render)


def timezone_local(moment):
    from django.utils import timezone

    return timezone.localtime(moment)


def waiting_for_room(count: int, *, oldest_minutes: int) -> str:
    """To supervisors: cases wait unassigned because everyone on duty is at their maximum."""
    return in_staff_language(
        lambda: gettext(
            "%(helpline)s: %(count)s cases are waiting and everyone on duty is at their maximum (the oldest for "
            "%(oldest)s min). Take one, raise a maximum or call people in: %(link)s"
        )
        % {
            "helpline": settings.HELPLINE_NAME, "count": count, "oldest": oldest_minutes,
            "link": console_url("/console/board/") or "/console/board/",
        }
    )


def surge_over(count: int) -> str:
    """To a holder when surge mode ends: their cases' reminders start again from the first."""
    return in_staff_language(
        lambda: gettext(
            "%(helpline)s: surge mode is over. %(count)s cases are waiting for you to take them; reminders start "
            "again: %(link)s"
        )
        % {"helpline": settings.HELPLINE_NAME, "count": count, "link": console_url("/console/") or "/console/"}
    )
