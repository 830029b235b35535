"""Personal data encrypted at the field (issue 17): existing rows are encrypted in place and given their blind
indexes; the clear folded copy of each message (`search_text`) goes, replaced by keyed word hashes."""
from django.db import migrations, models

import helpline.cases.encryption
from helpline.cases.encryption import email_index, phone_index, search_tokens

BATCH = 500


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
    caller = apps.get_model("helpline", "Caller")
    case = apps.get_model("helpline", "Case")
    message = apps.get_model("helpline", "Message")

    def index_caller(row):
        row.phone_index = phone_index(row.phone)

    def index_case(row):
        row.contact_phone_index = phone_index(row.contact_phone)
        row.contact_email_index = email_index(row.contact_email)

    def index_message(row):
        row.search_tokens = search_tokens(row.body)

    _in_batches(caller.objects.all(), ["phone", "phone_index", "name"], index_caller)
    _in_batches(
        case.objects.all(),
        ["contact_name", "contact_phone", "contact_email", "safe_contact_note", "contact_phone_index",
         "contact_email_index"],
        index_case,
    )
    _in_batches(message.objects.all(), ["body", "recording_url", "search_tokens"], index_message)


class Migration(migrations.Migration):

    dependencies = [
        ('helpline', '0010_message_search_text'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='message',
            name='search_text',
        ),
        migrations.AddField(
            model_name='caller',
            name='phone_index',
            field=models.CharField(editable=False, max_length=32, null=True, unique=True),
        ),
        migrations.AddField(
            model_name='case',
            name='contact_email_index',
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=32),
        ),
        migrations.AddField(
            model_name='case',
            name='contact_phone_index',
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=32),
        ),
        migrations.AddField(
            model_name='message',
            name='search_tokens',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AlterField(
            model_name='caller',
            name='name',
            field=helpline.cases.encryption.EncryptedCharField(blank=True, max_length=200, verbose_name='name'),
        ),
        migrations.AlterField(
            model_name='caller',
            name='phone',
            field=helpline.cases.encryption.EncryptedPhoneNumberField(max_length=128, region=None, verbose_name='phone'),
        ),
        migrations.AlterField(
            model_name='case',
            name='contact_email',
            field=helpline.cases.encryption.EncryptedEmailField(blank=True, max_length=254, verbose_name='e-mail given'),
        ),
        migrations.AlterField(
            model_name='case',
            name='contact_name',
            field=helpline.cases.encryption.EncryptedCharField(blank=True, max_length=200, verbose_name='name given'),
        ),
        migrations.AlterField(
            model_name='case',
            name='contact_phone',
            field=helpline.cases.encryption.EncryptedPhoneNumberField(blank=True, max_length=128, region=None, verbose_name='phone given'),
        ),
        migrations.AlterField(
            model_name='case',
            name='safe_contact_note',
            field=helpline.cases.encryption.EncryptedCharField(blank=True, help_text="In the person's own words.", max_length=500, verbose_name='when it is safe to contact'),
        ),
        migrations.AlterField(
            model_name='message',
            name='body',
            field=helpline.cases.encryption.EncryptedTextField(blank=True, verbose_name='text'),
        ),
        migrations.AlterField(
            model_name='message',
            name='recording_url',
            field=helpline.cases.encryption.EncryptedURLField(blank=True, max_length=500, verbose_name='voicemail recording'),
        ),
        migrations.RunPython(encrypt_and_index, migrations.RunPython.noop, elidable=False),
    ]
