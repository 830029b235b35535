"""A live call a staff member took by pressing 1 says so on the timeline, naming the call (not the case)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('helpline', '0023_split_address_limit_from_bot_trap'),
    ]

    operations = [
        migrations.AlterField(
            model_name='timelineevent',
            name='kind',
            field=models.CharField(choices=[('created', 'Case created'), ('message_received', 'Message received'), ('message_sent', 'Message sent'), ('call_received', 'Call received'), ('call_missed', 'Call missed or abandoned'), ('call_answered', 'Call answered'), ('voicemail_received', 'Voicemail received'), ('status_changed', 'Status changed'), ('triaged', 'Triaged'), ('reclassified', 'Priority or category changed by staff'), ('linked', 'Linked to earlier contacts'), ('assigned', 'Assigned'), ('unassigned', 'Nobody could take the case'), ('acknowledged', 'Acknowledged'), ('escalated', 'Escalated'), ('note', 'Note'), ('opted_out', 'Caller opted out of SMS'), ('opted_in', 'Caller opted in to SMS again'), ('language_chosen', 'Language chosen'), ('flagged', 'Flagged'), ('legal_hold_set', 'Legal hold set'), ('legal_hold_released', 'Legal hold released'), ('data_exported', 'Personal data exported'), ('anonymised', 'Personal data anonymised')], max_length=30, verbose_name='kind'),
        ),
    ]
