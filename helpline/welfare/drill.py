"""Rehearsing a welfare campaign: a register of made-up people (or the real one), every message to the drill
backend, replies simulated, and a simulated clock so an hour-long campaign runs in seconds. `manage.py
welfare_drill` and benchmarks/welfare_campaign.py use it."""
from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from helpline.welfare import sending, services
from helpline.welfare.models import Campaign, CheckState, Need, VulnerablePerson, WelfareCheck
from helpline.welfare.selectors import tally

DRILL_AREA = "Vježba"
# How the made-up people answer: safe in digits or words (Latin and Cyrillic), help, free text, or nothing.
ANSWERS = [("1", 40), ("da", 8), ("сигуран сам", 7), ("ok", 5), ("2", 10), ("треба помоћ", 4),
           ("voda je u kući", 3), (None, 23)]  # fmt: skip


@dataclass
class DrillOutcome:
    campaign: Campaign
    people: int
    rate_per_second: float
    simulated_seconds_until_all_asked: float = 0.0
    estimate_seconds: float = 0.0
    wall_seconds: float = 0.0
    replies: int = 0
    case_ids: list[int] = field(default_factory=list)
    reply_to_case_seconds: list[float] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict)


def make_drill_register(count: int, *, seed: int = 19) -> list[VulnerablePerson]:
    """Made-up people in the drill area, on numbers of a range no real phone is asked from (the drill backend
    never sends anyway)."""
    rng = random.Random(seed)  # noqa: S311 - made-up people, not secrets
    needs = [[Need.POWER_DEVICE], [Need.LIVES_ALONE], [Need.MOBILITY], [Need.DEMENTIA], [Need.DIALYSIS], []]
    return VulnerablePerson.objects.bulk_create([
        VulnerablePerson(
            full_name=f"Vježba {n}", phone=f"+38766{n:07d}", municipality=DRILL_AREA, settlement=f"Naselje {n % 12}",
            birth_year=rng.randint(1925, 1990), needs=rng.choice(needs), legal_basis="public_task",
            script="cyrillic" if n % 4 == 0 else "latin",
        )
        for n in range(count)
    ], batch_size=1000)  # fmt: skip


def remove_drill_register() -> None:
    with transaction.atomic():
        Campaign.objects.filter(checks__person__municipality=DRILL_AREA, is_drill=True).distinct().delete()
        VulnerablePerson.objects.filter(municipality=DRILL_AREA).delete()


def run_drill(
    *, areas: list[str], needs: list[str] | None = None, seed: int = 19, tick_seconds: float = 10.0,
    on_case: Callable[[int], None] | None = None, replies_after_seconds: float = 0.0,
) -> DrillOutcome:
    """Start a drill campaign, advance a simulated clock tick by tick until everyone is asked, then let the
    simulated replies come in. `on_case` runs for each case an answer opened (the benchmark triages there; in
    the service the triage worker does it)."""
    rng = random.Random(seed)  # noqa: S311
    wall = time.perf_counter()
    campaign = services.start_campaign(title="Vježba: provjera dobrobiti", question="Jeste li sigurni?",
                                       areas=areas, needs=needs or [], by=None, is_drill=True)  # fmt: skip
    started = timezone.now()
    outcome = DrillOutcome(campaign, campaign.checks.count(), sending.sending_rate())
    last = tally(campaign).everyone_asked_by
    outcome.estimate_seconds = (last - started).total_seconds() if last else 0.0
    now = started
    while WelfareCheck.objects.filter(campaign=campaign, state=CheckState.QUEUED).exists():
        now += dt.timedelta(seconds=tick_seconds)
        services.ask_due_drill_questions(now, limit=100_000)
    asked = WelfareCheck.objects.filter(campaign=campaign).exclude(asked_at=None).order_by("-asked_at").first()
    outcome.simulated_seconds_until_all_asked = (asked.asked_at - started).total_seconds() if asked else 0.0
    weights = [weight for _, weight in ANSWERS]
    waiting = WelfareCheck.objects.filter(campaign=campaign, state__in=[CheckState.ASKED, CheckState.CALLED])
    for check in waiting.order_by("pk"):
        (answer,) = rng.choices([text for text, _ in ANSWERS], weights=weights)
        if answer is None:
            continue
        began = time.perf_counter()
        services.answer_welfare_reply(check.phone, answer, message_sid=f"drill-{campaign.pk}-{check.pk}",
                                      is_drill=True)  # fmt: skip
        outcome.replies += 1
        case_id = WelfareCheck.objects.filter(pk=check.pk).values_list("case_id", flat=True).first()
        if case_id and on_case is not None:
            on_case(case_id)
            outcome.reply_to_case_seconds.append(time.perf_counter() - began)
        if case_id:
            outcome.case_ids.append(case_id)
    outcome.columns = tally(campaign).columns
    outcome.wall_seconds = time.perf_counter() - wall
    return outcome
