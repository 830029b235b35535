"""The supervisor board's visits panel as a tag, so any page can include it without its view knowing."""
from django import template

from helpline.roster.selectors import is_supervisor
from helpline.visits.selectors import active_visits_for_board, told_about

register = template.Library()


@register.inclusion_tag("console/_visits_board_panel.html", takes_context=True)
def visits_board_panel(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not is_supervisor(user):
        return {"show": False}
    visits = active_visits_for_board()
    told = told_about(visits)
    for visit in visits:
        visit.told = told[visit.pk]
    # Polled in by htmx, the page the supervisor is on is the htmx "current URL", not the fragment's own.
    htmx = getattr(request, "htmx", None)
    here = (htmx.current_url_abs_path if htmx else None) or request.get_full_path()
    return {"show": True, "visits": visits, "csrf_token": context.get("csrf_token"), "back_to": here}
