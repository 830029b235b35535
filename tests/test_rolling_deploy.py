"""While a deploy runs, the version before it keeps writing to the migrated database. A column added in a release must
not make its inserts fail: every contact fell to the spool while cases could not be stored."""
import pytest
from django.conf import settings
from django.db import connection

from helpline.roster.models import RotationPattern, RotationSlot
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db
# Deploys run against PostgreSQL (production's database); its catalogue says which columns have a default.
on_postgresql = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="reads PostgreSQL's catalogue"
)

COLUMNS_ADDED_IN_THIS_RELEASE = [
    ("helpline_case", "over_address_limit"),
    ("helpline_case", "escalation_run"),
    ("visits_visit", "escalation_run"),
    ("notifications_crisisbroadcast", "rung_at"),
    ("triage_rotationslot", "days_removed"),
    ("triage_historicalrotationslot", "days_removed"),
]


@on_postgresql
@pytest.mark.parametrize(("table", "column"), COLUMNS_ADDED_IN_THIS_RELEASE)
def test_a_row_written_by_the_previous_version_gets_the_new_column_filled_in_by_the_database(table, column):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT is_nullable, column_default FROM information_schema.columns WHERE table_name = %s"
            " AND column_name = %s",
            [table, column],
        )
        (is_nullable, column_default), = cursor.fetchall()
    assert is_nullable == "YES" or column_default is not None


def test_a_rotation_slot_inserted_by_the_previous_version_is_stored_with_no_days_removed():
    pattern = RotationPattern.objects.create(name="Noći", starts_on="2026-12-01", cycle_days=1)
    staff = StaffFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO triage_rotationslot (pattern_id, staff_id, day_in_cycle, start_time, end_time)"
            " VALUES (%s, %s, 0, '22:00', '06:00') RETURNING id",
            [pattern.pk, staff.pk],
        )
        (slot_id,) = cursor.fetchone()
    assert RotationSlot.objects.get(pk=slot_id).days_removed == []
