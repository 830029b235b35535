"""The outbox (every message the helpline sends), its delivery attempts, and the escalation ladder's policies."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField
from simple_history.models import HistoricalRecords

from helpline.cases.models import Case, Priority, RowsForChange


class NotificationChannel(models.TextChoices):
    SMS = "sms", _("SMS")
    VOICE = "voice", _("Voice call")
    EMAIL = "email", _("E-mail")


class NotificationKind(models.TextChoices):
    ASSIGNMENT = "assignment", _("Assignment")
    REMINDER = "reminder", _("Reminder")
    ESCALATION = "escalation", _("Escalation")
    CITIZEN_REPLY = "citizen_reply", _("Reply to the citizen")
    ROSTER_GAPS = "roster_gaps", _("Roster gaps")
    COMMAND_REPLY = "command_reply", _("Answer to a staff command")
    FOLLOW_UP = "follow_up", _("The citizen wrote again")
    DIGEST = "digest", _("Surge digest")
    CALL_OUT = "call_out", _("Call-out")
    CRISIS_ANSWER = "crisis_answer", _("Crisis event answer")
    CRISIS_BROADCAST = "crisis_broadcast", _("Crisis event broadcast")


# What is sent to a citizen (the rest goes to staff, or to the fallback numbers standing in for them).
TO_CITIZENS = (NotificationKind.CITIZEN_REPLY, NotificationKind.CRISIS_ANSWER, NotificationKind.CRISIS_BROADCAST)


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    UNDELIVERED = "undelivered", _("Undelivered")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


# How far a message has got; a status callback never moves a notification back (callbacks arrive out of order).
DELIVERY_PROGRESS = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.UNDELIVERED: 3,
    DeliveryStatus.FAILED: 3,
    DeliveryStatus.CANCELLED: 3,
}


class Notification(models.Model):
    """One message to send, written in the same transaction as the event that causes it."""

    case = models.ForeignKey(
        Case, verbose_name=_("case"), null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("staff member"), null=True, blank=True, on_delete=models.SET_NULL
    )
    to_number = PhoneNumberField(_("to"))
    channel = models.CharField(_("channel"), max_length=10, choices=NotificationChannel.choices)
    kind = models.CharField(_("kind"), max_length=20, choices=NotificationKind.choices)
    body = models.TextField(_("text"))
    status = models.CharField(
        _("status"), max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED, db_index=True
    )
    provider_sid = models.CharField(_("Twilio SID"), max_length=64, unique=True, null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    last_error_code = models.CharField(_("last error code"), max_length=20, blank=True)
    # No retry, redelivered task or second sweep may send the same thing twice.
    idempotency_key = models.CharField(max_length=200, unique=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True, db_index=True)
    # When the latest send claimed the row: a lost worker's call is looked for at Twilio from then on. (The due time
    # moves while the relay waits for Twilio, so the claim time cannot be read back from it.)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    is_drill = models.BooleanField(default=False, editable=False)
    # The one-time code a staff notification carries: an SMS "OK <code>" from its recipient acknowledges the case.
    ack_code = models.CharField(_("acknowledgement code"), max_length=8, blank=True, editable=False)
    ack_code_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A reply to a citizen is also a message on the case; its delivery status is kept there too.
    message = models.ForeignKey(
        "helpline.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )

    objects = RowsForChange.as_manager()

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.status}"


class DeliveryAttempt(models.Model):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_attempts")
    at = models.DateTimeField(_("time"), auto_now_add=True)
    result = models.CharField(_("result"), max_length=20)
    error_code = models.CharField(_("error code"), max_length=20, blank=True)
    detail = models.CharField(_("detail"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.notification_id} {self.result}"


class StepAction(models.TextChoices):
    REMIND_ASSIGNEE = "remind_assignee", _("Remind the assigned worker")
    REASSIGN = "reassign", _("Give the case to the next worker on duty")
    NOTIFY_SUPERVISOR_ON_DUTY = "notify_supervisor_on_duty", _("Notify the supervisor on duty")
    NOTIFY_ALL_SUPERVISORS = "notify_all_supervisors", _("Notify all supervisors")
    NOTIFY_FALLBACK_CONTACTS = "notify_fallback_contacts", _("Call the centre's fallback numbers (head of centre)")


class EscalationPolicy(models.Model):
    """How long a case of a priority may wait for acknowledgement, and what happens when it waits longer."""

    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, unique=True)
    acknowledge_within_minutes = models.PositiveIntegerField(_("acknowledge within (minutes)"))
    repeat_from_step = models.PositiveIntegerField(
        _("repeat from step"), null=True, blank=True,
        help_text=_("After the last step the ladder starts again here, and repeats until someone takes the case. "
                    "Empty: the last step repeats."),
    )  # fmt: skip
    # Who changed a ladder, when, from what: a ladder decides who is woken at night.
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("escalation policy")
        verbose_name_plural = _("escalation policies")

    def __str__(self) -> str:
        return str(self.get_priority_display())


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveIntegerField(_("step"), help_text=_("1 runs first, when the deadline has passed."))
    action = models.CharField(_("action"), max_length=40, choices=StepAction.choices)
    wait_minutes = models.PositiveIntegerField(
        _("then wait (minutes)"), help_text=_("How long after this step the next one runs, if nobody acknowledged.")
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("escalation step")
        verbose_name_plural = _("escalation steps")
        ordering = ["policy", "number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="one_step_per_number")]

    def __str__(self) -> str:
        return f"{self.policy}: {self.number}. {self.get_action_display()}"


class SurgeMode(models.Model):
    """A period in which contacts outnumber the people on duty (a flood, an earthquake). While it lasts, staff get
    one digest a minute instead of a message per case, except for critical cases, which keep their full ladder."""

    name = models.CharField(_("crisis event"), max_length=120, help_text=_("For example: Poplava Maglaj."))
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("started by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    is_on = models.BooleanField(_("on"), default=True, editable=False)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("ended by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    citizen_notice = models.TextField(
        _("notice for citizens"), blank=True,
        help_text=_("Added to every answer while it lasts: the delay, where shelters and help points are."),
    )  # fmt: skip
    citizen_notice_english = models.TextField(
        _("notice for citizens (English)"), blank=True, default="", db_default="",
        help_text=_("For citizens who write in English. Left empty, they get the notice above."),
    )  # fmt: skip
    # Since when nothing has waited (the digest's count was 0), and when the supervisors were told they may end it.
    backlog_cleared_at = models.DateTimeField(null=True, blank=True, editable=False)
    told_backlog_cleared_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("surge mode")
        verbose_name_plural = _("surge modes")
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_on"], condition=models.Q(is_on=True), name="one_surge_at_a_time")
        ]

    def __str__(self) -> str:
        return self.name


class CallOut(models.Model):
    """An SMS asking an off-duty or reserve staff member to come in, and their answer."""

    surge = models.ForeignKey(SurgeMode, on_delete=models.CASCADE, related_name="call_outs")
    staff = models.ForeignKey("triage.StaffProfile", on_delete=models.CASCADE, related_name="call_outs")
    sent_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    is_coming = models.BooleanField(null=True)
    # The shift their "1" gave: a later "2" takes it back, a later "1 u 22" moves it.
    shift = models.ForeignKey("triage.Shift", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("call-out")
        verbose_name_plural = _("call-outs")
        constraints = [models.UniqueConstraint(fields=["surge", "staff"], name="one_call_out_per_surge")]

    def __str__(self) -> str:
        return f"{self.staff} {self.is_coming}"


class CrisisEvent(models.Model):
    """A crisis a supervisor declares ("Poplava Maglaj"): contacts that name its places or keywords are grouped
    into it by the worker's triage step, each citizen gets its automatic answer once, and the group can be answered
    with one broadcast."""

    title = models.CharField(_("title"), max_length=120, help_text=_("For example: Poplava Maglaj."))
    keywords = models.TextField(
        _("keywords"), blank=True, help_text=_("Words that mark a contact about this crisis, one per line or comma.")
    )
    places = models.TextField(_("places"), blank=True, help_text=_("Towns, villages, streets: one per line or comma."))
    categories = models.JSONField(
        _("triage categories"), default=list, blank=True,
        help_text=_("When given, only contacts triaged into one of these categories are grouped."),
    )  # fmt: skip
    answer = models.TextField(
        _("automatic answer (Latin)"),
        help_text=_("Sent once to every citizen grouped into the event: the delay, where help points are."),
    )
    answer_cyrillic = models.TextField(
        _("automatic answer (Cyrillic)"), blank=True, help_text=_("Left empty, the Latin answer is transliterated.")
    )
    answer_english = models.TextField(
        _("automatic answer (English)"), blank=True, default="", db_default="",
        help_text=_("For citizens who write in English. Left empty, they get the Latin answer."),
    )  # fmt: skip
    declared_at = models.DateTimeField(_("declared"), auto_now_add=True)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("declared by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("ended by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip

    class Meta:
        verbose_name = _("crisis event")
        verbose_name_plural = _("crisis events")
        ordering = ["-declared_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class CrisisContact(models.Model):
    """A case grouped into a crisis event, and what matched (never the citizen's words)."""

    event = models.ForeignKey(CrisisEvent, on_delete=models.CASCADE, related_name="contacts")
    case = models.ForeignKey("helpline.Case", on_delete=models.CASCADE, related_name="crisis_contacts")
    matched = models.CharField(max_length=200, blank=True)
    grouped_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "case"], name="one_grouping_per_case_and_event")]

    def __str__(self) -> str:
        return f"{self.event} {self.case_id}"


class CrisisBroadcast(models.Model):
    """One reply to everyone grouped into an event. `token` comes from the form that sent it: a re-click or a
    resent form finds the same broadcast instead of starting a second one."""

    event = models.ForeignKey(CrisisEvent, on_delete=models.CASCADE, related_name="broadcasts")
    token = models.CharField(max_length=64, unique=True)
    text = models.TextField(_("text (Latin)"))
    text_cyrillic = models.TextField(_("text (Cyrillic)"), blank=True)
    # A database default too: rows written by the version before this one, while both run, get "" (not an error).
    text_english = models.TextField(_("text (English)"), blank=True, default="", db_default="")
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When its sender was last rung: at the start, then by the sweep while it has not finished. A database default
    # too, as for the other columns added in a release: the version before keeps inserting while both run.
    rung_at = models.DateTimeField(default=timezone.now, db_default=Now(), db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reached = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} {self.created_at:%Y-%m-%d %H:%M}"


class BroadcastRecipient(models.Model):
    """A citizen a broadcast reached (or skipped: opted out), once: by their number when there is one, else by case."""

    broadcast = models.ForeignKey(CrisisBroadcast, on_delete=models.CASCADE, related_name="recipients")
    citizen = models.CharField(max_length=40)  # "phone:<blind index of the number>" or "case:<id>"
    case = models.ForeignKey("helpline.Case", on_delete=models.CASCADE, related_name="+")
    skipped_because = models.CharField(max_length=60, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["broadcast", "citizen"], name="one_broadcast_per_citizen")]

    def __str__(self) -> str:
        return self.citizen


class StaffSmsCommand(models.Model):
    """An SMS from a staff phone (OK 4821, EXTEND 30, a call-out's 1), kept by Twilio's MessageSid with the answer
    it got. Twilio sends a webhook again when our answer was slow or lost, and the spool replays what it kept: a
    second copy gets the same answer and changes nothing (a second OK would take a second case, a second EXTEND 30
    would push the visit's end out by another half hour)."""

    message_sid = models.CharField(max_length=64, unique=True)
    staff = models.ForeignKey("triage.StaffProfile", on_delete=models.CASCADE, related_name="+")
    reply = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.message_sid
