"""Small presentation helpers for the console's templates: labels, the timeline's sentences, the day's chart."""
from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _

from helpline.cases.models import CaseStatus, EventKind, Priority
from notifications.models import DeliveryStatus
from triage.models import Category

register = template.Library()


@register.filter
def category_label(value: str) -> str:
    if not value:
        return _("not triaged yet")
    try:
        return str(Category(value).label)
    except ValueError:
        return value


@register.filter
def priority_label(value: str) -> str:
    return str(Priority(value).label) if value in Priority.values else _("not triaged yet")


@register.filter
def delivery_label(value: str) -> str:
    return str(DeliveryStatus(value).label) if value in DeliveryStatus.values else value


@register.filter
def status_label(value: str) -> str:
    return str(CaseStatus(value).label) if value in CaseStatus.values else value


@register.filter
def age(moment: dt.datetime | None) -> str:
    """How long ago, shortly: 4 min, 2 h 05 min, 3 d."""
    if moment is None:
        return ""
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    if seconds < 3600:
        return _("%(minutes)d min") % {"minutes": seconds // 60}
    if seconds < 86400:
        return _("%(hours)d h %(minutes)02d min") % {"hours": seconds // 3600, "minutes": seconds % 3600 // 60}
    return _("%(days)d d") % {"days": seconds // 86400}


@register.filter
def countdown(deadline: dt.datetime | None) -> str:
    """The time left to acknowledge (12:30), or how far past it (−01:10); the page's script keeps it ticking."""
    if deadline is None:
        return ""
    seconds = int((deadline - timezone.now()).total_seconds())
    sign = "−" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds >= 3600:
        return f"{sign}{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{sign}{seconds // 60:02d}:{seconds % 60:02d}"


@register.filter
def seconds_human(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return _("%(seconds)d s") % {"seconds": seconds}
    return _("%(minutes)d min %(seconds)02d s") % {"minutes": seconds // 60, "seconds": seconds % 60}


@register.filter
def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


@register.filter
def describe_event(event) -> str:
    """One sentence about a timeline event, for staff. Event details never hold a citizen's message text."""
    d = event.details or {}
    kind = event.kind
    if kind == EventKind.STATUS_CHANGED:
        text = _("%(from)s → %(to)s") % {"from": status_label(d.get("from_status", "")),
                                          "to": status_label(d.get("to_status", ""))}  # fmt: skip
        return f"{text}: {d['reason']}" if d.get("reason") else text
    if kind == EventKind.ASSIGNED:
        text = _("to %(assignee)s") % {"assignee": d.get("assignee", "")}
        return f"{text} ({d['explanation']})" if d.get("explanation") else text
    if kind == EventKind.TRIAGED:
        return f"{priority_label(d.get('priority', ''))}, {category_label(d.get('category', ''))}"
    if kind == EventKind.RECLASSIFIED:
        return _("%(priority)s, %(category)s; reason: %(reason)s") % {
            "priority": priority_label(d.get("priority", "")), "category": category_label(d.get("category", "")),
            "reason": d.get("reason", ""),
        }  # fmt: skip
    if kind == EventKind.NOTE:
        return d.get("text", "")
    if kind == EventKind.SAFE_CONTACT_RECORDED:
        answer = {True: _("yes"), False: _("no")}
        return _("call: %(call)s, SMS: %(sms)s") % {
            "call": answer.get(d.get("safe_to_call"), _("not asked")),
            "sms": answer.get(d.get("safe_to_text"), _("not asked")),
        }  # fmt: skip
    if kind in (EventKind.UNASSIGNED,):
        return d.get("explanation", "")
    if kind == EventKind.LINKED:
        return ", ".join(d.get("references", []))
    if kind == EventKind.ACKNOWLEDGED:
        return d.get("via", "")
    if kind == EventKind.FLAGGED:
        if d.get("limit"):
            return _("More messages from one address than the limit (%(limit)s): a shared one, such as a shelter's, "
                     "sends many real messages.") % {
                "limit": d["limit"]
            }
        return d.get("reason", "")
    if kind in (EventKind.LEGAL_HOLD_SET, EventKind.LEGAL_HOLD_RELEASED, EventKind.DATA_EXPORTED):
        return d.get("reason", "")
    if kind == EventKind.ANONYMISED:
        return d.get("reason") or d.get("rule", "")
    return ""


CHART_WIDTH, CHART_HEIGHT, CHART_BOTTOM = 480, 160, 20


@register.inclusion_tag("console/_hour_chart.html")
def hour_chart(per_hour: list[tuple[int, int, int]]) -> dict:
    """Contacts per hour of today as bars (critical ones darker), drawn on the server as SVG."""
    tallest = max((cases for _hour, cases, _critical in per_hour), default=0) or 1
    slot = CHART_WIDTH / 24
    plot = CHART_HEIGHT - CHART_BOTTOM
    bars = []
    for hour, cases, critical in per_hour:
        height = plot * cases / tallest
        critical_height = plot * critical / tallest
        bars.append({
            "hour": hour, "cases": cases, "critical": critical, "x": round(hour * slot + 2, 1),
            "width": round(slot - 4, 1), "y": round(plot - height, 1), "height": round(height, 1),
            "critical_y": round(plot - critical_height, 1), "critical_height": round(critical_height, 1),
            "label_x": round(hour * slot + slot / 2, 1), "show_label": hour % 3 == 0,
        })  # fmt: skip
    return {"bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT, "label_y": CHART_HEIGHT - 5,
            "tallest": tallest, "total": sum(b["cases"] for b in bars)}  # fmt: skip
