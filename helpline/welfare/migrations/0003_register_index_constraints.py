"""One register entry per person and one open question per number, now on the keyed hashes 0002 filled in."""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("welfare", "0002_encrypt_register"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="vulnerableperson",
            constraint=models.UniqueConstraint(
                fields=("entry_index",), name="one_register_entry_per_person",
                violation_error_message="This person (the same name and phone) is already in the register.",
            ),
        ),
        migrations.AddConstraint(
            model_name="welfarecheck",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state__in", ["queued", "asked", "called", "visit_pending"])),
                fields=("phone_index", "is_drill"), name="one_open_welfare_question_per_number",
            ),
        ),
    ]
