"""Reads for welfare campaigns: who a campaign reaches, the live tally, the list behind each number."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Case as SqlCase
from django.db.models import Count, Max, Q, QuerySet, When
from django.utils import timezone

from helpline.cases.encryption import phone_index, query_tokens
from helpline.cases.intake import normalise_phone
from helpline.cases.search import query_words
from helpline.welfare import texts
from helpline.welfare.models import (
    QUESTION_OPEN,
    Campaign,
    CampaignStatus,
    CheckState,
    Need,
    VisitStatus,
    VisitTask,
    VulnerablePerson,
    WelfareCheck,
)

# The tally's columns, in the words a supervisor reads; each check is in exactly one.
TALLY_COLUMNS = {
    "safe": (CheckState.SAFE,),
    "needs_help": (CheckState.NEEDS_HELP,),
    "no_answer": (CheckState.ASKED, CheckState.CALLED),
    "unreachable": (CheckState.UNREACHABLE,),
    "visit_pending": (CheckState.VISIT_PENDING,),
    "not_yet_asked": (CheckState.QUEUED, CheckState.HELD, CheckState.NOT_ASKED),
}


def column_of(state: str) -> str:
    return next(name for name, states in TALLY_COLUMNS.items() if state in states)


def people_for(*, areas: list[str], needs: list[str]) -> QuerySet[VulnerablePerson]:
    """Active register entries in any of the areas (all areas when none is chosen) with any of the needs (any
    need when none is chosen)."""
    people = VulnerablePerson.objects.filter(is_active=True)
    if areas:
        people = people.filter(municipality__in=areas)
    if needs:
        any_need = Q()
        for need in needs:
            any_need |= Q(needs__contains=[need])
        people = people.filter(any_need)
    return people


def people_matching(query: str) -> Q:
    """A filter on the register: entries whose name holds every word of the query, each as a word or the start of
    one (in any case, script or accent: "maric" finds "Marić"), or whose number is the query in any usual form.
    Names and numbers are encrypted: the filter compares their keyed hashes (helpline.cases.encryption)."""
    words = query_words(query)
    if not words:
        return Q(pk__in=[])
    by_name = Q()
    for token in query_tokens(words):
        by_name &= Q(name_tokens__contains=f" {token} ")
    number = normalise_phone(query)
    return by_name | Q(phone_index=phone_index(number)) if number else by_name


def municipalities() -> list[str]:
    return list(VulnerablePerson.objects.filter(is_active=True).values_list("municipality", flat=True)
                .distinct().order_by("municipality"))  # fmt: skip


@dataclass
class Tally:
    campaign: Campaign
    total: int = 0
    columns: dict[str, int] = field(default_factory=dict)
    by_area: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    by_need: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    everyone_asked_by: dt.datetime | None = None
    visits_waiting: int = 0
    held: int = 0  # waiting for another campaign's question to them to be settled: no time can be promised
    answered_unclearly: int = 0  # wrote a bare "Da" and were asked again for 1 or 2: no answer yet, but they wrote


def _empty() -> dict[str, int]:
    return {name: 0 for name in TALLY_COLUMNS}


def tally(campaign: Campaign) -> Tally:
    """The campaign's numbers, by state, by area and by need; five queries whatever the campaign's size."""
    now = timezone.now()
    result = Tally(campaign=campaign, columns=_empty())
    areas: dict[str, dict[str, int]] = {}
    needs: dict[str, dict[str, int]] = {need: _empty() for need in Need.values}
    rows = WelfareCheck.objects.filter(campaign=campaign).values("state", "person__municipality", "person__needs")
    for row in rows.annotate(n=Count("pk")).order_by():
        column = column_of(row["state"])
        result.total += row["n"]
        result.columns[column] += row["n"]
        result.held += row["n"] if row["state"] == CheckState.HELD else 0
        areas.setdefault(row["person__municipality"], _empty())[column] += row["n"]
        for need in row["person__needs"] or []:
            if need in needs:
                needs[need][column] += row["n"]
    result.by_area = sorted(areas.items())
    labels = dict(Need.choices)
    result.by_need = [(labels[need], counts) for need, counts in needs.items() if any(counts.values())]
    last = WelfareCheck.objects.filter(campaign=campaign).aggregate(last=Max("send_at"), asked=Max("asked_at"))
    result.everyone_asked_by = last["last"] if result.columns["not_yet_asked"] else last["asked"]
    # People held behind another campaign have no sending time yet, and a time already past promises nothing: the
    # page said "everyone will have been asked by 09:00:59" at 09:02, with a hundred still not asked.
    if result.columns["not_yet_asked"] and (result.held or (result.everyone_asked_by or now) < now):
        result.everyone_asked_by = None
    result.answered_unclearly = _answered_unclearly(WelfareCheck.objects.filter(campaign=campaign)).count()
    result.visits_waiting = WelfareCheck.objects.filter(
        campaign=campaign, visit__status__in=[VisitStatus.WAITING, VisitStatus.TAKEN]
    ).count()
    return result


# Not a column of its own (each check is in exactly one): the people among "no answer" and "visit pending" who did
# write, a bare "Da", and have not yet answered 1 or 2.
ANSWERED_UNCLEARLY = "answered_unclearly"


def _answered_unclearly(checks: QuerySet[WelfareCheck]) -> QuerySet[WelfareCheck]:
    return checks.filter(state__in=QUESTION_OPEN, unclear_answer_at__isnull=False)


def checks_in(campaign: Campaign, *, column: str = "", area: str = "", need: str = "") -> QuerySet[WelfareCheck]:
    """The people behind one number of the tally."""
    checks = WelfareCheck.objects.filter(campaign=campaign).select_related("person", "case", "visit__assigned_to")
    if column in TALLY_COLUMNS:
        checks = checks.filter(state__in=TALLY_COLUMNS[column])
    elif column == ANSWERED_UNCLEARLY:
        checks = _answered_unclearly(checks)
    if area:
        checks = checks.filter(person__municipality=area)
    if need:
        checks = checks.filter(person__needs__contains=[need])
    return checks.order_by("urgency", "pk")


def running_campaigns() -> list[Campaign]:
    return list(Campaign.objects.filter(status=CampaignStatus.RUNNING).order_by("-started_at"))


def board_tallies() -> list[Tally]:
    """For the supervisor board: one tally per running campaign (drills included, marked as such)."""
    return [tally(campaign) for campaign in running_campaigns()]


def open_visits_for(user, *, everyone: bool = False) -> QuerySet[VisitTask]:
    """The welfare visits not yet done that are this person's; with `everyone` (a supervisor, whom the ladder alerts
    about visits nobody takes), all of them. The untaken first, then who to go to first (a power-dependent device
    or dialysis, then living alone, then the oldest: the check's urgency), then the longest waiting."""
    visits = VisitTask.objects.exclude(status=VisitStatus.DONE).select_related("welfare_check__person", "assigned_to")
    if not everyone:
        visits = visits.filter(assigned_to=user)
    return visits.order_by(
        SqlCase(When(status=VisitStatus.WAITING, then=0), default=1), "welfare_check__urgency", "created_at", "pk"
    )


def spoken_question(check_id: int) -> tuple[str, str] | None:
    """What the welfare call says to this person, and in which language; None for an unknown check."""
    check = WelfareCheck.objects.select_related("campaign", "person").filter(pk=check_id).first()
    if check is None:
        return None
    language = check.person.language
    return texts.question_spoken(check.campaign, language=language), language


def register_export(phone: str) -> list[dict]:
    """A person's welfare register entries (by their number) and the checks asked of them, for their request to see
    what is held about them. The register is kept on its own legal basis, apart from cases."""
    if not phone:
        return []
    people = VulnerablePerson.objects.filter(phone_index=phone_index(normalise_phone(phone) or phone))
    return [
        {
            "name": person.full_name, "phone": str(person.phone), "other_phone": str(person.other_phone or ""),
            "address": person.address, "settlement": person.settlement, "municipality": person.municipality,
            "year_of_birth": person.birth_year, "needs": person.needs, "trusted_contact": person.trusted_contact_name,
            "trusted_contact_phone": str(person.trusted_contact_phone or ""), "notes": person.notes,
            "legal_basis": person.legal_basis, "language": person.language,
            "checks": [
                {"campaign": check.campaign.title, "state": check.state,
                 "asked_at": check.asked_at.isoformat() if check.asked_at else None,
                 "answered_at": check.answered_at.isoformat() if check.answered_at else None}
                for check in person.checks.select_related("campaign").order_by("pk")
            ],
        }
        for person in people
    ]
