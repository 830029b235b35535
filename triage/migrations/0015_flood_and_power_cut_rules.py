"""Adds the shipped rules an installation lacks: the flood and power-cut rules (people trapped by water, an old or
bedridden person with water rising, an oxygen or dialysis machine without power). Rules it already has, edited or
not, are left alone; `manage.py load_default_rules --update` brings the changed shipped rules (verb prefixes,
stabbing) deliberately."""

from importlib import import_module

from django.db import migrations

# The same loader as 0002 (get_or_create by name); its module name starts with a digit, hence import_module.
add_missing_rules = import_module("triage.migrations.0002_default_rules").load_default_rules


class Migration(migrations.Migration):
    dependencies = [("triage", "0014_days_removed_database_default")]
    operations = [migrations.RunPython(add_missing_rules, migrations.RunPython.noop)]
