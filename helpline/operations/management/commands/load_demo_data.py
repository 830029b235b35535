"""Loads what a new user needs to see the whole flow: a supervisor, three social workers and a rotation that
keeps someone on duty around the clock. Safe to run again: it changes nothing that exists."""

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

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        if users.exists():
            self.stdout.write("Demo data: users exist already, nothing changed.")
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
