"""Loads what a new user needs to see the whole flow: a supervisor, three social workers and a rotation that
keeps someone on duty around the clock. Safe to run again: it changes nothing that exists, except that
--reset-password gives the demo staff a new password and prints it (the first one scrolled away)."""

import datetime as dt
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from helpline.roster.models import Role, RotationPattern, RotationSlot, StaffProfile
from helpline.roster.services import generate_upcoming_shifts

# Demo numbers only; with the console SMS backend (the default) nothing is ever sent to them.
DEMO_STAFF = [
    ("supervisor", "Supervizor", "Demo", Role.SUPERVISOR, "+38761000100", ["bs", "en"], []),
    ("amra", "Amra", "Radnica", Role.WORKER, "+38761000101", ["bs", "en"], ["domestic_violence", "child_protection"]),
    ("dario", "Dario", "Radnik", Role.WORKER, "+38761000102", ["bs"], ["suicide_self_harm", "mental_health"]),
    ("jelena", "Jelena", "Radnica", Role.WORKER, "+38761000103", ["bs", "en"], ["elderly_disability", "material_need"]),
]
# Three eight-hour shifts a day, each worker on one; the supervisor on duty around the clock.
WORKER_SHIFTS = {
    "amra": (dt.time(7), dt.time(15)),
    "dario": (dt.time(15), dt.time(23)),
    "jelena": (dt.time(23), dt.time(7)),
}


class Command(BaseCommand):
    help = "Create the demo supervisor, workers and a 24/7 rotation if there are no users yet."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset-password", action="store_true", help="give the demo staff a new password and print it"
        )

    def handle(self, *args, reset_password: bool = False, **options) -> None:
        users = get_user_model().objects
        if users.exists():
            if reset_password:
                self._reset_demo_passwords(users)
            else:
                self.stdout.write("Demo data: users exist already, nothing changed (--reset-password for a new one).")
            generate_upcoming_shifts()
            return
        password = secrets.token_urlsafe(12)
        pattern = RotationPattern.objects.create(name="Demo 24/7", starts_on=timezone.localdate(), cycle_days=1)
        for username, first, last, role, phone, languages, skills in DEMO_STAFF:
            user = users.create_user(username, password=password, first_name=first, last_name=last, is_staff=True)
            if role == Role.SUPERVISOR:
                user.is_superuser = True
                user.save(update_fields=["is_superuser"])
            profile = StaffProfile.objects.create(user=user, role=role, phone=phone, languages=languages, skills=skills)
            start, end = WORKER_SHIFTS.get(username, (dt.time(0), dt.time(0)))
            RotationSlot.objects.create(pattern=pattern, staff=profile, day_in_cycle=0, start_time=start, end_time=end)
        created = generate_upcoming_shifts()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo staff created ({created} shifts). Log in at /console/ as 'supervisor' (or amra, dario, jelena) "
                f"with password {password}"
            )
        )
        # The second factor (helpline.access.second_factor) is part of the tour: no device is made here, so the
        # supervisor meets the set-up page (QR code, then recovery codes) on the way to the board or the admin.
        self.stdout.write(
            "The supervisor sets up a second factor (an authenticator app) before the board and the admin; "
            "a worker may add one at /console/two-factor/."
        )

    def _reset_demo_passwords(self, users) -> None:
        demo = list(users.filter(username__in=[username for username, *_ in DEMO_STAFF]))
        if not demo:
            self.stdout.write("Demo data: there are no demo staff here; no password changed.")
            return
        password = secrets.token_urlsafe(12)
        for user in demo:
            user.set_password(password)
            user.save(update_fields=["password"])
        names = ", ".join(sorted(user.username for user in demo))
        self.stdout.write(self.style.SUCCESS(f"New password for the demo staff ({names}): {password}"))
