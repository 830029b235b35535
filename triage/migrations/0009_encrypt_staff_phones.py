"""Staff phone numbers encrypted, recognised by a blind index (issue 17)."""
from django.db import migrations, models

import helpline.cases.encryption
from helpline.cases.encryption import phone_index


def encrypt_existing(apps, schema_editor):
    for name in ("StaffProfile", "HistoricalStaffProfile"):
        model = apps.get_model("triage", name)
        rows = list(model.objects.all())  # a number written before this migration reads back as itself
        for row in rows:
            row.phone_index = phone_index(row.phone)
        model.objects.bulk_update(rows, ["phone", "phone_index"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ('triage', '0008_encrypt_personal_data'),
    ]

    operations = [
        migrations.AddField(
            model_name='historicalstaffprofile',
            name='phone_index',
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=32),
        ),
        migrations.AddField(
            model_name='staffprofile',
            name='phone_index',
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=32),
        ),
        migrations.AlterField(
            model_name='historicalstaffprofile',
            name='phone',
            field=helpline.cases.encryption.EncryptedPhoneNumberField(blank=True, max_length=128, region=None, verbose_name='phone'),
        ),
        migrations.AlterField(
            model_name='staffprofile',
            name='phone',
            field=helpline.cases.encryption.EncryptedPhoneNumberField(blank=True, max_length=128, region=None, verbose_name='phone'),
        ),
        migrations.RunPython(encrypt_existing, migrations.RunPython.noop),
    ]
