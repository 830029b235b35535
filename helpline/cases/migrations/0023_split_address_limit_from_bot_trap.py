"""Cases flagged for their address's limit were marked `suspected_automated`, like a filled trap field, and retention
erased them after 30 days as bots. Their timeline's flag names the limit (`details.limit`): they move to
`over_address_limit`, and stay `suspected_automated` only if the trap was filled too (a flag without a limit)."""
from django.db import migrations
from django.db.models import Exists, OuterRef


def split(apps, schema_editor):
    Case = apps.get_model("helpline", "Case")
    TimelineEvent = apps.get_model("helpline", "TimelineEvent")
    flags = TimelineEvent.objects.filter(case=OuterRef("pk"), kind="flagged")
    flagged = Case.objects.filter(suspected_automated=True)
    flagged.filter(Exists(flags.filter(details__has_key="limit"))).update(over_address_limit=True)
    flagged.filter(over_address_limit=True).exclude(Exists(flags.exclude(details__has_key="limit"))).update(
        suspected_automated=False
    )


def join(apps, schema_editor):
    Case = apps.get_model("helpline", "Case")
    Case.objects.filter(over_address_limit=True).update(suspected_automated=True)


class Migration(migrations.Migration):
    dependencies = [("helpline", "0022_case_over_address_limit")]

    operations = [migrations.RunPython(split, join)]
