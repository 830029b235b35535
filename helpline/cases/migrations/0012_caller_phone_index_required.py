"""Every caller has a blind index once 0011 has filled them in; a migration of its own, since PostgreSQL will not
alter a table with trigger events still pending from 0011's updates in the same transaction."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpline", "0011_encrypt_personal_data"),
    ]

    operations = [
        migrations.AlterField(
            model_name="caller",
            name="phone_index",
            field=models.CharField(editable=False, max_length=32, unique=True),
        ),
    ]
