"""The register of vulnerable persons and the numbers welfare checks asked are encrypted at the field (issue 17).
Existing rows are encrypted in place and given the keyed hashes they are now found by; the unique constraints move
to those hashes in 0003 (PostgreSQL will not alter a table with trigger events still pending from these updates)."""
from django.db import migrations, models

import helpline.cases.encryption
from helpline.cases.encryption import phone_index, search_tokens
from helpline.welfare.models import register_entry_index

BATCH = 500
PERSON_FIELDS = [
    "full_name", "phone", "other_phone", "address", "trusted_contact_name", "trusted_contact_phone", "notes",
    "phone_index", "entry_index", "name_tokens",
]


def _in_batches(queryset, fields, change):
    """Read each row (a value written before this migration reads back as itself), let `change` set what it
    derives, and write the fields back: the encrypted fields encrypt on the way in. Safe to run twice."""
    batch = []
    for row in queryset.order_by("pk").iterator(chunk_size=BATCH):
        change(row)
        batch.append(row)
        if len(batch) == BATCH:
            queryset.model.objects.bulk_update(batch, fields)
            batch = []
    if batch:
        queryset.model.objects.bulk_update(batch, fields)


def encrypt_and_index(apps, schema_editor):
    person = apps.get_model("welfare", "VulnerablePerson")
    check = apps.get_model("welfare", "WelfareCheck")
    entries: dict[str, int] = {}

    def index_person(row):
        row.phone_index = phone_index(row.phone)
        row.entry_index = register_entry_index(row.phone, row.full_name)
        row.name_tokens = search_tokens(row.full_name)
        if row.entry_index in entries:
            # The old constraint compared names exactly; the new one ignores repeated spaces. Say which rows, not
            # what is in them, and let someone merge them before migrating again.
            raise RuntimeError(
                f"Register entries {entries[row.entry_index]} and {row.pk} have the same number and name (apart from "
                "spaces): merge or correct one of them, then migrate again."
            )
        entries[row.entry_index] = row.pk

    def index_check(row):
        row.phone_index = phone_index(row.phone)

    _in_batches(person.objects.all(), PERSON_FIELDS, index_person)
    _in_batches(check.objects.all(), ["phone", "phone_index"], index_check)


class Migration(migrations.Migration):

    dependencies = [
        ("welfare", "0001_initial"),
    ]

    operations = [
        # Both constraints compared clear values; their successors (0003) compare the keyed hashes.
        migrations.RemoveConstraint(model_name="vulnerableperson", name="one_register_entry_per_person"),
        migrations.RemoveConstraint(model_name="welfarecheck", name="one_open_welfare_question_per_number"),
        migrations.AlterModelOptions(
            name="vulnerableperson",
            options={
                "ordering": ["municipality", "settlement", "pk"],
                "verbose_name": "vulnerable person",
                "verbose_name_plural": "register of vulnerable persons",
            },
        ),
        migrations.AddField(
            model_name="vulnerableperson",
            name="phone_index",
            field=models.CharField(db_index=True, default="", editable=False, max_length=32),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="vulnerableperson",
            name="entry_index",
            field=models.CharField(default="", editable=False, max_length=32),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="vulnerableperson",
            name="name_tokens",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="welfarecheck",
            name="phone_index",
            field=models.CharField(db_index=True, default="", editable=False, max_length=32),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="vulnerableperson",
            name="full_name",
            field=helpline.cases.encryption.EncryptedCharField(max_length=200, verbose_name="name"),
        ),
        migrations.AlterField(
            model_name="vulnerableperson",
            name="phone",
            field=helpline.cases.encryption.EncryptedPhoneNumberField(max_length=128, region=None, verbose_name="phone"),
        ),
        migrations.AlterField(
            model_name="vulnerableperson",
            name="other_phone",
            field=helpline.cases.encryption.EncryptedPhoneNumberField(
                blank=True, max_length=128, region=None, verbose_name="other phone"
            ),
        ),
        migrations.AlterField(
            model_name="vulnerableperson",
            name="address",
            field=helpline.cases.encryption.EncryptedCharField(blank=True, max_length=300, verbose_name="address"),
        ),
        migrations.AlterField(
            model_name="vulnerableperson",
            name="trusted_contact_name",
            field=helpline.cases.encryption.EncryptedCharField(
                blank=True, max_length=200, verbose_name="trusted contact"
            ),
        ),
        migrations.AlterField(
            model_name="vulnerableperson",
            name="trusted_contact_phone",
            field=helpline.cases.encryption.EncryptedPhoneNumberField(
                blank=True, max_length=128, region=None, verbose_name="trusted contact's phone"
            ),
        ),
        migrations.AlterField(
            model_name="vulnerableperson",
            name="notes",
            field=helpline.cases.encryption.EncryptedCharField(blank=True, max_length=500, verbose_name="notes"),
        ),
        migrations.AlterField(
            model_name="welfarecheck",
            name="phone",
            field=helpline.cases.encryption.EncryptedCharField(max_length=20),
        ),
        migrations.RunPython(encrypt_and_index, migrations.RunPython.noop, elidable=False),
    ]
