"""Ships the default triage rules (triage/data/default_rules.json); supervisors edit them in the admin."""
import json
from pathlib import Path

from django.db import migrations

RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "default_rules.json"


def load_default_rules(apps, schema_editor):
    TriageRule = apps.get_model("triage", "TriageRule")
    for rule in json.loads(RULES_FILE.read_text(encoding="utf-8")):
        TriageRule.objects.get_or_create(
            name=rule["name"],
            defaults={
                "category": rule["category"],
                "priority": rule["priority"],
                "terms": "\n".join(rule["terms"]),
                "can_be_negated": rule["can_be_negated"],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("triage", "0001_initial")]
    operations = [migrations.RunPython(load_default_rules, migrations.RunPython.noop)]
