"""Shipped escalation policies: acknowledgement deadlines (critical 2 min, high 5, normal 15, low 60) and the
ladder remind, reassign, supervisor on duty, all supervisors. Supervisors change them in the admin."""
from django.db import migrations

LADDER = ["remind_assignee", "reassign", "notify_supervisor_on_duty", "notify_all_supervisors"]
# priority: (acknowledge within, minutes to wait after each step)
DEFAULTS = {
    "critical": (2, [1, 2, 2, 5]),
    "high": (5, [3, 5, 5, 10]),
    "normal": (15, [10, 15, 15, 30]),
    "low": (60, [30, 60, 60, 120]),
}


def create_policies(apps, schema_editor):
    Policy = apps.get_model("notifications", "EscalationPolicy")
    Step = apps.get_model("notifications", "EscalationStep")
    for priority, (deadline, waits) in DEFAULTS.items():
        policy, created = Policy.objects.get_or_create(
            priority=priority, defaults={"acknowledge_within_minutes": deadline}
        )
        if created:
            for number, (action, wait) in enumerate(zip(LADDER, waits, strict=True), start=1):
                Step.objects.create(policy=policy, number=number, action=action, wait_minutes=wait)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]
    operations = [migrations.RunPython(create_policies, migrations.RunPython.noop)]
