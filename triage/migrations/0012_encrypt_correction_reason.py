"""A correction's reason may name the person or retell what they said: encrypted at the field like the text it
corrects (the README said it was; it was not)."""
from django.db import migrations

import helpline.cases.encryption

BATCH = 500


def encrypt_existing(apps, schema_editor):
    correction = apps.get_model("triage", "TriageCorrection")
    rows = list(correction.objects.exclude(reason="").only("pk", "reason"))  # a clear value reads back as itself
    correction.objects.bulk_update(rows, ["reason"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0011_shifts_follow_their_rotation_slot"),
    ]

    operations = [
        migrations.AlterField(
            model_name="triagecorrection",
            name="reason",
            field=helpline.cases.encryption.EncryptedTextField(blank=True, verbose_name="reason"),
        ),
        migrations.RunPython(encrypt_existing, migrations.RunPython.noop),
    ]
