"""Staff corrections quote a citizen's words: encrypted at the field like the messages they came from (issue 17)."""
from django.db import migrations

import helpline.cases.encryption


def encrypt_existing(apps, schema_editor):
    correction = apps.get_model("triage", "TriageCorrection")
    rows = list(correction.objects.all())  # a value written before this migration reads back as itself
    correction.objects.bulk_update(rows, ["text"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0007_triage_corrections"),
    ]

    operations = [
        migrations.AlterField(
            model_name="triagecorrection",
            name="text",
            field=helpline.cases.encryption.EncryptedTextField(verbose_name="text triaged"),
        ),
        migrations.RunPython(encrypt_existing, migrations.RunPython.noop),
    ]
