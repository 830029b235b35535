"""A surge drill: synthetic contacts through the running service, marked so they never reach a real phone.

    python manage.py drill --rate 5 --seconds 60            # against the server `make run` started
    python manage.py drill --url https://sos.example.ba --rate 20 --seconds 300 --critical-share 0.05

Every contact carries a drill marker signed with SECRET_KEY: the service stores and works it like any contact
(triage, assignment, escalation), but its notifications go to the drill backend and it is left out of the
figures. At the end the command prints the figures and draws a chart of latency over time; then, and when it is
interrupted, it resolves the drill's cases still open (unless --keep-open). `drill --end` resolves every drill case
still open, whichever drill left it.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from helpline.cases import services
from helpline.cases.figures import percentile
from helpline.cases.models import Case
from helpline.drill.marker import DRILL_HEADER, contact_figures, new_drill_marker
from helpline.drill.traffic import Client, Contacts, Sent, open_loop


class Command(BaseCommand):
    help = "Rehearse a surge: synthetic contacts at a chosen rate, kept away from real phones and figures."

    def add_arguments(self, parser):
        # PORT is the variable `make run` binds the web server to, so a drill beside it finds it without --url.
        default_url = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"
        parser.add_argument("--url", default=default_url, help=f"where the service answers (default {default_url})")
        parser.add_argument("--rate", type=float, default=5.0, help="contacts per second (open loop)")
        parser.add_argument("--seconds", type=float, default=60.0, help="how long to send")
        parser.add_argument("--critical-share", type=float, default=0.05, help="share of critical messages")
        parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for assignment afterwards")
        parser.add_argument("--chart", type=Path, default=None, help="PNG path (default var/drill-<time>.png)")
        parser.add_argument("--keep-open", action="store_true", help="leave the drill's cases open at the end")
        parser.add_argument("--end", action="store_true", help="only resolve every drill case still open, and stop")

    def handle(self, *args, url: str, rate: float, seconds: float, critical_share: float, wait: float,
               chart: Path | None, keep_open: bool, end: bool, **options) -> None:  # fmt: skip
        if end:  # what a drill interrupted with --keep-open, or killed, left open
            self.stdout.write(f"resolved {services.end_drill()} drill cases still open")
            return
        if rate <= 0 or seconds <= 0:
            raise CommandError("--rate and --seconds must be positive")
        started_at = timezone.now()
        self.reached_nothing = False
        try:
            self._drill(url, rate, seconds, critical_share, wait, chart, started_at)
        finally:
            # Ctrl-C, a failing service or a chart that cannot be written: left open, the drill's cases went on
            # escalating, sat in the queues and in the board's count. A service that answered nothing made none.
            if not keep_open and not self.reached_nothing:
                self.stdout.write(f"resolved {services.end_drill(started_at)} drill cases still open")

    def _drill(self, url: str, rate: float, seconds: float, critical_share: float, wait: float, chart: Path | None,
               started_at: dt.datetime) -> None:  # fmt: skip
        twilio_share = 1.0
        if not settings.TWILIO_AUTH_TOKEN:
            self.stderr.write("TWILIO_AUTH_TOKEN is not set, so the service refuses Twilio webhooks: web only")
            twilio_share = 0.0
        contacts = Contacts(
            auth_token=settings.TWILIO_AUTH_TOKEN,
            signing_base=settings.PUBLIC_BASE_URL or url,
            critical_share=critical_share,
            seed=int(time.time()),
            fresh_headers=lambda: {DRILL_HEADER: new_drill_marker()},  # each marker is accepted once
            number_prefix="+38769",  # a block of mobile numbers; a drill case never joins a real case anyway
            sms_share=0.60 * twilio_share,
            voice_share=0.15 * twilio_share,
        )
        self.stdout.write(f"drill: {rate:g} contacts/s for {seconds:g} s against {url}")
        sending_started = time.perf_counter()
        sent = open_loop(Client(url), contacts, rate, seconds, threads=min(96, max(4, int(rate * 2))))
        sending_took = time.perf_counter() - sending_started
        if not any(200 <= s.status < 300 for s in sent):
            statuses = dict(Counter(s.status for s in sent))  # 0: no answer at all (refused, timed out)
            self.reached_nothing = True
            raise CommandError(f"no contact of {len(sent)} was answered 2xx by {url} (statuses {statuses})")
        drill_cases = Case.objects.filter(is_drill=True, created_at__gte=started_at)
        drained_in = self._wait_for_assignment(drill_cases, wait)
        keys = [s.key for s in sent if 200 <= s.status < 300 and s.key]
        figures = contact_figures(
            drill_cases,
            sids=[k for k in keys if k[:2] in ("SM", "CA")],
            references=[k for k in keys if k.startswith("SOS-")],
        )
        self._print_report(rate, sent, sending_took, figures, drained_in)
        chart = chart or settings.VAR_DIR / f"drill-{timezone.localtime(started_at):%Y%m%d-%H%M%S}.png"
        draw_chart(chart, sent, figures, started_at)
        self.stdout.write(f"chart: {chart}")

    def _wait_for_assignment(self, cases, wait: float) -> float | None:
        """Seconds after the last contact until every drill case was assigned or flagged; None if it never was."""
        began = time.perf_counter()
        while time.perf_counter() - began < wait:
            if not cases.filter(assigned_to__isnull=True, escalation_due_at__isnull=True).exists():
                return time.perf_counter() - began
            time.sleep(1)
        return None

    def _print_report(self, rate: float, sent: list[Sent], took: float, figures: dict, drained: float | None) -> None:
        out = self.stdout.write
        ok = [s for s in sent if 200 <= s.status < 300]
        out(f"offered {rate:g}/s, achieved {len(ok) / took:.1f}/s; {len(ok)} of {len(sent)} answered 2xx "
            f"(statuses {dict(Counter(s.status for s in sent))})")  # fmt: skip
        latencies = [s.latency_ms for s in ok]
        if latencies:
            out(f"intake latency ms: median {statistics.median(latencies):.0f}, p95 {percentile(latencies, 0.95):.0f}, "
                f"p99 {percentile(latencies, 0.99):.0f}, max {max(latencies):.0f}")  # fmt: skip
        for label in ("all", "critical"):
            assign, notify = figures[f"assign_{label}"], figures[f"notify_{label}"]
            out(f"{label:>8}: intake->assigned s median {_median(assign)}, p99 {_p99(assign)} ({len(assign)} cases); "
                f"intake->SMS handed to the backend s median {_median(notify)}, p99 {_p99(notify)}")  # fmt: skip
        lateness = figures["escalation_lateness"]
        out(f"escalation lateness s: median {_median(lateness)}, p99 {_p99(lateness)} ({len(lateness)} steps)")
        waited = f"{drained:.0f} s after the last contact" if drained is not None else "not within --wait"
        out(f"cases {figures['cases']}, lost {figures['lost']}, duplicated {figures['duplicated']}, "
            f"untriaged {figures['untriaged']}, unassigned {figures['unassigned']}; "
            f"all assigned: {waited}")  # fmt: skip


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def _p99(values: list[float]) -> str:
    return f"{percentile(values, 0.99):.2f}" if values else "-"


def draw_chart(path: Path, sent: list[Sent], figures: dict, started_at: dt.datetime) -> None:
    """Two panels over the drill's time: each contact's intake latency, and each case's wait for assignment."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    from matplotlib import pyplot

    figure, (intake, assignment) = pyplot.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for kind, colour in (("sms", "tab:blue"), ("voice", "tab:green"), ("web", "tab:orange")):
        points = [(s.planned, s.latency_ms) for s in sent if s.kind == kind and 200 <= s.status < 300]
        if points:
            intake.scatter(*zip(*points, strict=True), s=6, color=colour, label=kind)
    failed = [(s.planned, s.latency_ms) for s in sent if not 200 <= s.status < 300]
    if failed:
        intake.scatter(*zip(*failed, strict=True), s=14, color="tab:red", marker="x", label="not 2xx")
    intake.set_ylabel("intake latency (ms)")
    intake.set_yscale("log")
    intake.legend(loc="upper left", fontsize="small")
    intake.set_title("Drill: latency over time")
    for label, colour in (("all", "tab:gray"), ("critical", "tab:red")):
        points = [((at - started_at).total_seconds(), wait) for at, wait in figures[f"assign_{label}_at"]]
        if points:
            assignment.scatter(*zip(*points, strict=True), s=6 if label == "all" else 16, color=colour, label=label)
    assignment.set_ylabel("intake to assigned (s)")
    assignment.set_xlabel("seconds since the drill began")
    assignment.legend(loc="upper left", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
