"""Cases acknowledged before first_acknowledged_at existed: their acknowledgement is the first one known.

Apart from the column's migration and outside a transaction, in batches: in the same transaction, the column's
exclusive lock would be held for the whole update of the table, and intake would wait behind it."""
from django.db import migrations
from django.db.models import F

BATCH = 5000


def backfill(apps, schema_editor):
    Case = apps.get_model("helpline", "Case")
    while True:
        ids = list(
            Case.objects.filter(first_acknowledged_at__isnull=True, acknowledged_at__isnull=False)
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            return
        Case.objects.filter(pk__in=ids).update(first_acknowledged_at=F("acknowledged_at"))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("helpline", "0019_first_acknowledged_at")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
