"""Adds the default rules shipped since 0002. Rules an installation already has, edited or not, are left alone;
`manage.py load_default_rules --update` resets them, deliberately."""

from importlib import import_module

from django.db import migrations

# The same loader as 0002 (get_or_create by name); its module name starts with a digit, hence import_module.
add_missing_rules = import_module("triage.migrations.0002_default_rules").load_default_rules


class Migration(migrations.Migration):
    dependencies = [("triage", "0002_default_rules")]
    operations = [migrations.RunPython(add_missing_rules, migrations.RunPython.noop)]
