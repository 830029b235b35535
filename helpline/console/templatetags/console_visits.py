"""The supervisor board's visits panels as tags, so any page can include them without its view knowing: the
alarms and overdue visits at the top of the board, the visits in progress further down."""
from django import template

from helpline.roster.selectors import is_supervisor
from helpline.visits.models import VisitStatus
from helpline.visits.selectors import active_visits_for_board, told_about

register = template.Library()

PARTS = ("all", "alarms", "rest")


def needs_someone(visit) -> bool:
    """An alarm or an overdue visit, still open: someone must act, so it opens the board like a critical case."""
    return visit.status in (VisitStatus.ALARM, VisitStatus.OVERDUE)


def _board_visits(request) -> list:
    """Read once per request: the board shows the alarms and the rest in two places."""
    cached = getattr(request, "_board_visits", None)
    if cached is None:
        cached = active_visits_for_board()
        told = told_about(cached)
        for visit in cached:
            visit.told = told[visit.pk]
            visit.needs_someone = needs_someone(visit)
        request._board_visits = cached
    return cached


@register.inclusion_tag("console/_visits_board_panel.html", takes_context=True)
def visits_board_panel(context, part: str = "all") -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    part = part or "all"
    if user is None or not is_supervisor(user) or part not in PARTS:
        return {"show": False}
    visits = every_visit = _board_visits(request)
    if part == "alarms":
        visits = [visit for visit in visits if visit.needs_someone]
    elif part == "rest":
        visits = [visit for visit in visits if not visit.needs_someone]
    # Polled in by htmx, the page the supervisor is on is the htmx "current URL", not the fragment's own.
    htmx = getattr(request, "htmx", None)
    here = (htmx.current_url_abs_path if htmx else None) or request.get_full_path()
    return {"show": part != "alarms" or bool(visits), "part": part, "visits": visits,
            "alarms_above": part == "rest" and len(visits) < len(every_visit),
            "csrf_token": context.get("csrf_token"), "back_to": here}  # fmt: skip
