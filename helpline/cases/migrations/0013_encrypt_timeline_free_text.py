"""The timeline's free-text entries (staff notes, reasons, triage's quoted words) encrypted in place (issue 17)."""
from django.db import migrations

import helpline.cases.encryption

ENCRYPTED_DETAILS = ("explanation", "outcome", "reason", "reasons", "text")


def encrypt_existing(apps, schema_editor):
    event = apps.get_model("helpline", "TimelineEvent")
    rows = event.objects.filter(details__has_any_keys=list(ENCRYPTED_DETAILS)).only("details").order_by("pk")
    batch = []
    for row in rows.iterator(chunk_size=500):
        batch.append(row)  # read as written; saved back with those entries encrypted
        if len(batch) == 500:
            event.objects.bulk_update(batch, ["details"])
            batch = []
    if batch:
        event.objects.bulk_update(batch, ["details"])


class Migration(migrations.Migration):
    dependencies = [
        ("helpline", "0012_caller_phone_index_required"),
    ]

    operations = [
        migrations.AlterField(
            model_name="timelineevent",
            name="details",
            field=helpline.cases.encryption.EncryptedDetailsField(
                blank=True, default=dict, encrypted_keys=ENCRYPTED_DETAILS, verbose_name="details"
            ),
        ),
        migrations.RunPython(encrypt_existing, migrations.RunPython.noop),
    ]
