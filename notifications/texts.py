"""What staff phones receive. Never a citizen's words or number: a staff phone can be lost or read by others."""
from __future__ import annotations

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from helpline.models import Case, Priority


def _in_staff_language(render) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return render()


def _facts(case: Case) -> dict[str, str]:
    from triage.models import Category

    priority = str(Priority(case.priority).label).lower() if case.priority in Priority.values else "-"
    category = str(Category(case.category).label).lower() if case.category in Category.values else "-"
    return {"reference": case.reference, "priority": priority, "category": category, "helpline": settings.HELPLINE_NAME}


def assignment(case: Case) -> str:
    return _in_staff_language(
        lambda: gettext(
            "%(helpline)s: case %(reference)s is yours (%(priority)s, %(category)s). Reply OK %(reference)s to take it."
        )
        % _facts(case)
    )


def reminder(case: Case) -> str:
    return _in_staff_language(
        lambda: gettext("%(helpline)s reminder: case %(reference)s (%(priority)s) is waiting. Reply OK %(reference)s.")
        % _facts(case)
    )


def escalation(case: Case) -> str:
    return _in_staff_language(
        lambda: gettext(
            "%(helpline)s ESCALATION: case %(reference)s (%(priority)s, %(category)s) has not been taken in time. "
            "Reply OK %(reference)s to take it."
        )
        % _facts(case)
    )


def staff_call(case: Case) -> str:
    return _in_staff_language(
        lambda: gettext("%(helpline)s: critical case %(reference)s, %(category)s. Press 1 to take it.")
        % {**_facts(case), "reference": " ".join(case.reference.replace("-", " "))}
    )


def command_help() -> str:
    return _in_staff_language(
        lambda: gettext("%(helpline)s: reply OK to take your newest case, or OK SOS-2026-00042 for a given one.")
        % {"helpline": settings.HELPLINE_NAME}
    )


def nothing_to_acknowledge() -> str:
    return _in_staff_language(lambda: gettext("No case is waiting for you to take it."))


def not_yours(case: Case) -> str:
    return _in_staff_language(
        lambda: gettext("Case %(reference)s is assigned to someone else.") % {"reference": case.reference}
    )


def acknowledged(case: Case) -> str:
    return _in_staff_language(
        lambda: gettext("Case %(reference)s is yours. Thank you.") % {"reference": case.reference}
    )


def roster_gaps(gaps) -> str:
    def render() -> str:
        lines = [gettext("%(helpline)s: gaps in the roster this week:") % {"helpline": settings.HELPLINE_NAME}]
        for gap in gaps[:8]:
            starts, ends = timezone_local(gap.starts_at), timezone_local(gap.ends_at)
            lines.append(f"{starts:%a %d.%m. %H:%M}-{ends:%H:%M} {gap.problem}")
        if len(gaps) > 8:
            lines.append(gettext("and %(count)s more; see the admin.") % {"count": len(gaps) - 8})
        return "\n".join(lines)

    return _in_staff_language(render)


def timezone_local(moment):
    from django.utils import timezone

    return timezone.localtime(moment)
