"""Shipped ladders never end: each gains a last step that calls the centre's fallback numbers, and repeats from
"all supervisors" until someone takes the case. A policy a supervisor has changed keeps its steps; it repeats its
last step (the model's default), so it never ends either."""
from django.db import migrations

SHIPPED = ["remind_assignee", "reassign", "notify_supervisor_on_duty", "notify_all_supervisors"]


def extend_shipped_ladders(apps, schema_editor):
    Policy = apps.get_model("notifications", "EscalationPolicy")
    for policy in Policy.objects.all():
        steps = list(policy.steps.order_by("number"))
        if [step.action for step in steps] != SHIPPED:
            continue
        last = steps[-1]
        policy.steps.create(number=5, action="notify_fallback_contacts", wait_minutes=last.wait_minutes)
        policy.repeat_from_step = 4
        policy.save(update_fields=["repeat_from_step"])


class Migration(migrations.Migration):
    dependencies = [("notifications", "0004_repeating_ladders_and_ack_codes")]
    operations = [migrations.RunPython(extend_shipped_ladders, migrations.RunPython.noop)]
