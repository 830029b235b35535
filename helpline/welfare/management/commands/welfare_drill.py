"""`manage.py welfare_drill --people 500`: rehearse a welfare campaign on the drill backend with simulated
replies and a simulated clock; nothing reaches a phone. Prints the tally and the sending figures."""
from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from helpline.cases.services import end_drill
from helpline.welfare import drill, services


class Command(BaseCommand):
    help = "Rehearse a welfare-check campaign against the drill backend, with simulated replies."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--people", type=int, default=200, help="made-up people in the drill register")
        parser.add_argument("--area", action="append", default=[],
                            help="use the real register's people in this municipality instead (repeatable)")
        parser.add_argument("--keep", action="store_true", help="keep the made-up register and the campaign")
        parser.add_argument("--seed", type=int, default=19)

    def handle(self, *args, **options) -> None:
        areas = options["area"]
        if not areas:
            drill.remove_drill_register()
            drill.make_drill_register(options["people"], seed=options["seed"])
            areas = [drill.DRILL_AREA]
        started = timezone.now()
        outcome = drill.run_drill(areas=areas, seed=options["seed"])
        self.stdout.write(
            f"Campaign {outcome.campaign.pk} (drill): {outcome.people} people at {outcome.rate_per_second:g} SMS/s.\n"
            f"Estimated at the start: everyone asked after {outcome.estimate_seconds:.0f} s; "
            f"on the simulated clock: {outcome.simulated_seconds_until_all_asked:.0f} s.\n"
            f"Replies simulated: {outcome.replies}; cases opened: {len(set(outcome.case_ids))} "
            f"(triaged and assigned by the triage worker, as any contact).\n"
            f"Tally: {outcome.columns}\n"
            f"Ran in {outcome.wall_seconds:.1f} s."
        )
        if not options["keep"]:
            # Finished, or the real ticks went on calling, and sending drill visits to real workers for, the real
            # people of an --area drill who had not answered.
            services.finish_campaign(outcome.campaign)
            ended = end_drill(started)
            if not options["area"]:
                drill.remove_drill_register()
            self.stdout.write(f"Drill cleared: {ended} drill cases resolved, the made-up register removed.")
