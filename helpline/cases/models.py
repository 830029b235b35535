"""The case domain: callers, cases, the messages on a case and its append-only timeline.

Rows here change only through helpline.cases.services; other apps call those functions rather than writing these tables.
"""
from typing import Any

from django.conf import settings
from django.db import connections, models
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery
from django.utils.translation import gettext_lazy as _

from helpline.cases.encryption import (
    EncryptedCharField,
    EncryptedDetailsField,
    EncryptedEmailField,
    EncryptedPhoneNumberField,
    EncryptedTextField,
    EncryptedURLField,
    email_index,
    phone_index,
    search_tokens,
    with_index_fields,
)


class Channel(models.TextChoices):
    VOICE = "voice", _("Voice call")
    SMS = "sms", _("SMS")
    WEB = "web", _("Web")


class CaseStatus(models.TextChoices):
    NEW = "new", _("New")
    TRIAGED = "triaged", _("Triaged")
    ASSIGNED = "assigned", _("Assigned")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    IN_PROGRESS = "in_progress", _("In progress")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


OPEN_STATUSES = (
    CaseStatus.NEW,
    CaseStatus.TRIAGED,
    CaseStatus.ASSIGNED,
    CaseStatus.ACKNOWLEDGED,
    CaseStatus.IN_PROGRESS,
)


class Priority(models.TextChoices):
    CRITICAL = "critical", _("Critical")
    HIGH = "high", _("High")
    NORMAL = "normal", _("Normal")
    LOW = "low", _("Low")


# How urgent each priority is; blank (not yet triaged) ranks lowest. Used in Python and to order in SQL.
PRIORITY_RANK = {"": 0, Priority.LOW: 1, Priority.NORMAL: 2, Priority.HIGH: 3, Priority.CRITICAL: 4}


def mask_phone(number: str) -> str:
    """A number with its middle hidden (+387 61 *** 222), for lists and logs; blank stays blank."""
    number = str(number or "")
    if not number:
        return ""
    return f"{number[:6]} *** {number[-3:]}" if len(number) > 9 else "***"


class Language(models.TextChoices):
    # One reply language for Bosnian, Croatian and Serbian: every one of their speakers reads it.
    BOSNIAN = "bs", _("Bosnian, Croatian, Serbian")
    ENGLISH = "en", _("English")


class Script(models.TextChoices):
    LATIN = "latin", _("Latin")
    CYRILLIC = "cyrillic", _("Cyrillic")


class Caller(models.Model):
    """A person who contacted the helpline from a phone number. Web inquiries without a number have none."""

    phone = EncryptedPhoneNumberField(_("phone"))
    # The number's keyed hash (helpline.cases.encryption): how intake finds a known caller without a clear number.
    phone_index = models.CharField(max_length=32, unique=True, editable=False)
    name = EncryptedCharField(_("name"), max_length=200, blank=True)
    has_opted_out = models.BooleanField(
        _("opted out of SMS"), default=False, help_text=_("The caller texted STOP; no SMS may be sent to them.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("caller")
        verbose_name_plural = _("callers")

    def __str__(self) -> str:
        return self.masked_phone

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.phone_index = phone_index(self.phone)
        kwargs["update_fields"] = with_index_fields(kwargs.get("update_fields"), {"phone": "phone_index"})
        super().save(*args, **kwargs)

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


class RowsForChange(models.QuerySet):
    """Row locks for changes that never touch the primary key: PostgreSQL's FOR NO KEY UPDATE.

    Two changes of one row still wait for each other, but a row that only points at it (a timeline event, a
    notification, a delivery attempt) is written without waiting: its foreign-key check takes KEY SHARE, which a
    plain FOR UPDATE blocks. With FOR UPDATE, a worker recording an SMS's result (holding the notification, then
    writing the case's timeline) and a worker holding the case and reaching for its notifications deadlocked, 19
    times in a 100/s benchmark. Rows are anonymised, never deleted while in use, so nothing needs the stronger lock.
    """

    def for_change(self, **options: Any) -> "RowsForChange":
        return self.select_for_update(no_key=True, **options)

    def create_once(self, **fields: Any) -> models.Model | None:
        """create(), unless a row with one of its unique values exists already: then nothing is written and None
        is returned. One statement (INSERT ... ON CONFLICT DO NOTHING RETURNING the key), where catching the
        IntegrityError of a plain INSERT needs a savepoint around it (two more round trips), and the transaction
        goes on either way. As with the plain INSERT, a row of the same unique value that another transaction is
        writing is waited for. The model's save() and its signals are not run: only for models that need neither.
        """
        written = self.create_each_once([self.model(**fields)])
        return written[0] if written else None

    def create_each_once(self, instances: list[models.Model], *, key: str = "") -> list[models.Model]:
        """create_once() for many rows in one statement: the instances written, in order, with their primary keys.
        With more than one instance, `key` names the unique field that tells which were written: an instance
        whose value of it is taken (in the table, or by an instance before it in the list) is left out."""
        if len(instances) > 1 and not key:
            raise ValueError("create_each_once() needs the unique field that tells several rows apart")
        self._for_write = True  # as create() does: self.db is then the database for writes
        meta = self.model._meta
        if key:
            first_of_each = {getattr(instance, key): instance for instance in reversed(instances)}
            instances = [instance for instance in instances if first_of_each[getattr(instance, key)] is instance]
        if not instances:
            return []
        connection = connections[self.db]
        if len(instances) > 1 and not connection.features.can_return_rows_from_bulk_insert:
            return [one for instance in instances for one in self.create_each_once([instance])]
        columns = [field for field in meta.local_concrete_fields if not field.generated and field is not meta.pk]
        query = InsertQuery(self.model, on_conflict=OnConflict.IGNORE)
        query.insert_values(columns, instances)  # the compiler runs each field's pre_save (auto_now_add)
        compiler = query.get_compiler(using=self.db)
        compiler.returning_fields = [meta.pk, *([meta.get_field(key)] if key else [])]
        [(sql, params)] = compiler.as_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if key:
            pks = {value: pk for pk, value in rows}
            written = [instance for instance in instances if getattr(instance, key) in pks]
        else:
            written = instances if rows else []
            pks = {None: rows[0][0]} if rows else {}
        for instance in written:
            instance.pk = pks[getattr(instance, key) if key else None]
            instance._state.adding, instance._state.db = False, self.db
        return written


class CaseReferenceSequence(models.Model):
    """The last reference number handed out in a year, where no PostgreSQL sequence serves (SQLite; after 2125)."""

    year = models.PositiveIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class ReferenceField(models.CharField):
    """A case's reference, which the INSERT returns: on PostgreSQL intake has the database draw it from the year's
    sequence as the row goes in (`intake.new_case_reference`), one round trip for the number and the row."""

    @property
    def db_returning(self) -> bool:
        return connections["default"].features.can_return_columns_from_insert


class Case(models.Model):
    reference = ReferenceField(_("reference"), max_length=20, unique=True)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    status = models.CharField(_("status"), max_length=20, choices=CaseStatus.choices, default=CaseStatus.NEW)
    # Blank until triage has run: an untriaged case must not look like a normal one.
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, blank=True)
    category = models.CharField(_("category"), max_length=40, blank=True)
    language = models.CharField(_("language"), max_length=5, choices=Language.choices, default=Language.BOSNIAN)
    script = models.CharField(_("script"), max_length=10, choices=Script.choices, default=Script.LATIN)
    caller = models.ForeignKey(
        Caller, verbose_name=_("caller"), null=True, blank=True, on_delete=models.PROTECT, related_name="cases"
    )
    contact_name = EncryptedCharField(_("name given"), max_length=200, blank=True)
    contact_phone = EncryptedPhoneNumberField(_("phone given"), blank=True)
    contact_email = EncryptedEmailField(_("e-mail given"), blank=True)
    # Keyed hashes of the number and e-mail given, kept by save(): finding a person's cases without clear values.
    contact_phone_index = models.CharField(max_length=32, blank=True, db_index=True, editable=False)
    contact_email_index = models.CharField(max_length=32, blank=True, db_index=True, editable=False)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned to"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_cases",
    )

    # Safe contact: an abuser may read the person's phone. None means the person was not asked.
    safe_to_call = models.BooleanField(_("safe to call"), null=True, blank=True)
    safe_to_text = models.BooleanField(_("safe to text"), null=True, blank=True)
    safe_contact_note = EncryptedCharField(
        _("when it is safe to contact"), max_length=500, blank=True, help_text=_("In the person's own words.")
    )

    # Web inquiries: the citizen reads their case's status with a secret token; only its hash is stored.
    citizen_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    # The key a web client (or the form, once per page) sent with the inquiry: a retried submission finds this
    # case instead of opening a second one.
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, unique=True, editable=False)
    needs_callback = models.BooleanField(
        _("needs a call back"), default=False, help_text=_("A call was missed or abandoned before a voicemail.")
    )
    suspected_automated = models.BooleanField(
        _("suspected automated"), default=False, help_text=_("The web form's hidden trap field was filled in.")
    )
    # Kept apart from the trap: a shelter's Wi-Fi, a school or a carrier's shared address sends real messages over
    # the limit. Such a case waits behind unflagged ones in the queue, but is kept as long as any real case.
    # A database default too: the version before this one, still taking contacts during a deploy, inserts cases
    # without the column (without it, every contact fell to the spool).
    over_address_limit = models.BooleanField(
        _("over the per-address limit"), default=False, db_default=False,
        help_text=_("Sent when its address had passed the per-address limit on new inquiries."),
    )  # fmt: skip

    linked_cases = models.ManyToManyField(
        "self", verbose_name=_("linked cases"), blank=True, help_text=_("Earlier contacts from the same person.")
    )
    # When the case's next escalation step is due; set now for a case nobody on duty could take.
    escalation_due_at = models.DateTimeField(_("escalation due"), null=True, blank=True, db_index=True)
    # How many escalation steps have run: the fencing token that stops a step from running twice.
    escalation_step = models.PositiveIntegerField(_("escalation steps run"), default=0)
    # How many times the ladder's repeating steps have run again (a critical case is chased until someone takes it).
    escalation_loop = models.PositiveIntegerField(_("escalation loops"), default=0)
    # Which run of the ladder this is: each restart of the clock (a reassignment, a raised priority, a case flagged
    # when nobody was on duty) counts one up. Its steps' messages carry it in their keys, so a second run's steps
    # are sent, not taken for copies of the first run's (which had the same step numbers). A database default for
    # the version before, which inserts cases without it while a deploy runs.
    escalation_run = models.PositiveIntegerField(_("escalation runs"), default=0, db_default=0)
    # The escalation policy's steps as they were when the clock started: [[number, action, wait minutes], ...].
    escalation_ladder = models.JSONField(_("escalation steps"), default=list, blank=True, editable=False)
    is_escalated = models.BooleanField(_("escalated"), default=False, db_index=True)
    acknowledge_by = models.DateTimeField(_("acknowledge by"), null=True, blank=True, db_index=True)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    # When a person first took the case: kept when a reassignment or a reopening clears `acknowledged_at` for the
    # next person, so the time a citizen waited for someone is not lost from the figures.
    first_acknowledged_at = models.DateTimeField(_("first acknowledged"), null=True, blank=True, editable=False)
    triage_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Its doorbell rides the critical queue: the request path's quick check found words a critical rule knows. A
    # critical worker's doorbell takes along the others waiting (triage.services.triage_waiting_cases), found by
    # this flag, so that in a surge it need not read every waiting message to find them; a calm batch leaves them.
    sounds_critical = models.BooleanField(default=False, editable=False)
    # Triaged by the rules, and the semantic model has not read it yet: the model worker's second look
    # (triage.services.second_look) finds its work by this flag, so a lost doorbell loses nothing.
    awaiting_model = models.BooleanField(default=False, editable=False)
    # While awaiting the model: how likely its words alone make a critical message (triage's word screen, in
    # [0, 1]). The model reads the likeliest first, so that in a surge, when it cannot read every message at
    # once, the critical ones the rules missed are not left behind the calm ones.
    critical_by_words = models.FloatField(default=0.0, editable=False)
    # A rehearsal contact (`manage.py drill`): worked like any case, but its notifications never reach a phone and
    # it is left out of the figures.
    is_drill = models.BooleanField(_("drill"), default=False, editable=False)

    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    triaged_at = models.DateTimeField(_("triaged"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    objects = RowsForChange.as_manager()

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="case_status_created"),
            # Small by design (new cases that sound critical), and read by every critical doorbell.
            models.Index(
                fields=["created_at"], condition=models.Q(status="new", sounds_critical=True),
                name="case_new_sounding_critical",
            ),
            # Small by design (only cases the model has not read yet), and read by every second look.
            models.Index(
                fields=["-critical_by_words", "created_at"], condition=models.Q(awaiting_model=True),
                name="case_awaiting_model_by_words",
            ),
        ]
        constraints = [
            # At most one open case per caller: a second contact joins it (the intake relies on this).
            # A drill's case for a number stands apart from that number's real case (see is_drill).
            models.UniqueConstraint(
                fields=["caller", "is_drill"],
                condition=models.Q(status__in=[s.value for s in OPEN_STATUSES]),
                name="one_open_case_per_caller",
            )
        ]

    def __str__(self) -> str:
        return self.reference

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.contact_phone_index = phone_index(self.contact_phone)
        self.contact_email_index = email_index(self.contact_email)
        kwargs["update_fields"] = with_index_fields(
            kwargs.get("update_fields"),
            {"contact_phone": "contact_phone_index", "contact_email": "contact_email_index"},
        )
        super().save(*args, **kwargs)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Direction(models.TextChoices):
    INBOUND = "inbound", _("Inbound")
    OUTBOUND = "outbound", _("Outbound")


class GivenReference(models.Model):
    """Another reference that names a case: one a citizen was given while the database was down (a spooled
    contact), for a contact that then joined a case with another reference (the caller's open case, or the one the
    same call or SMS had made before). A citizen who quotes it, and a worker who looks it up, find the case."""

    reference = models.CharField(_("reference"), max_length=20, unique=True)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="given_references")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("reference given during an outage")
        verbose_name_plural = _("references given during an outage")

    def __str__(self) -> str:
        return f"{self.reference} -> {self.case_id}"


class Message(models.Model):
    """One inbound or outbound message or call on a case."""

    case = models.ForeignKey(Case, verbose_name=_("case"), on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(_("direction"), max_length=10, choices=Direction.choices)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    body = EncryptedTextField(_("text"), blank=True)
    # MessageSid or CallSid; unique, so a webhook Twilio retries is stored once.
    twilio_sid = models.CharField(_("Twilio SID"), max_length=64, unique=True, null=True, blank=True)
    call_status = models.CharField(_("call status"), max_length=20, blank=True)
    recording_url = EncryptedURLField(_("voicemail recording"), max_length=500, blank=True)
    recording_sid = models.CharField(max_length=64, blank=True)
    recording_seconds = models.PositiveIntegerField(_("voicemail length (s)"), null=True, blank=True)
    delivery_status = models.CharField(_("delivery status"), max_length=20, blank=True)
    # Replies a citizen may read on their status page; internal notes never are messages.
    is_visible_to_citizen = models.BooleanField(_("visible to the citizen"), default=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True)
    # Keyed hashes of the text's folded words and word beginnings, kept by save(): what staff search matches
    # (helpline.cases.search) now that the text itself is encrypted.
    search_tokens = models.TextField(blank=True, editable=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.case_id} {self.direction} {self.channel}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.search_tokens = search_tokens(self.body)
        kwargs["update_fields"] = with_index_fields(kwargs.get("update_fields"), {"body": "search_tokens"})
        super().save(*args, **kwargs)


class EventKind(models.TextChoices):
    CREATED = "created", _("Case created")
    MESSAGE_RECEIVED = "message_received", _("Message received")
    MESSAGE_SENT = "message_sent", _("Message sent")
    CALL_RECEIVED = "call_received", _("Call received")
    CALL_MISSED = "call_missed", _("Call missed or abandoned")
    CALL_ANSWERED = "call_answered", _("Call answered")
    VOICEMAIL_RECEIVED = "voicemail_received", _("Voicemail received")
    STATUS_CHANGED = "status_changed", _("Status changed")
    TRIAGED = "triaged", _("Triaged")
    RECLASSIFIED = "reclassified", _("Priority or category changed by staff")
    LINKED = "linked", _("Linked to earlier contacts")
    ASSIGNED = "assigned", _("Assigned")
    UNASSIGNED = "unassigned", _("Nobody could take the case")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ESCALATED = "escalated", _("Escalated")
    NOTE = "note", _("Note")
    SAFE_CONTACT_RECORDED = "safe_contact_recorded", _("Safe contact recorded")
    OPTED_OUT = "opted_out", _("Caller opted out of SMS")
    OPTED_IN = "opted_in", _("Caller opted in to SMS again")
    CONTACT_LIMITED = "contact_limited", _("The citizen limited how we may contact them")
    LANGUAGE_CHOSEN = "language_chosen", _("Language chosen")
    FLAGGED = "flagged", _("Flagged")
    LEGAL_HOLD_SET = "legal_hold_set", _("Legal hold set")
    LEGAL_HOLD_RELEASED = "legal_hold_released", _("Legal hold released")
    DATA_EXPORTED = "data_exported", _("Personal data exported")
    ANONYMISED = "anonymised", _("Personal data anonymised")


class ActorKind(models.TextChoices):
    CITIZEN = "citizen", _("Citizen")
    STAFF = "staff", _("Staff")
    SYSTEM = "system", _("System")


# Timeline entries that may hold a person's words (a staff note, a reason, the words triage quoted) are encrypted;
# the rest (ids, steps, channels, the idempotency key intake looks up) stay queryable.
ENCRYPTED_DETAILS = ("text", "reason", "outcome", "explanation", "reasons", "explained")


class TimelineEvent(models.Model):
    """Append-only: one row per thing that happens to a case. Nothing updates or deletes these rows."""

    case = models.ForeignKey(Case, verbose_name=_("case"), on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(_("kind"), max_length=30, choices=EventKind.choices)
    actor_kind = models.CharField(_("actor kind"), max_length=10, choices=ActorKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("staff member"), null=True, blank=True, on_delete=models.PROTECT
    )
    details = EncryptedDetailsField(_("details"), default=dict, blank=True, encrypted_keys=ENCRYPTED_DETAILS)
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("timeline event")
        verbose_name_plural = _("timeline events")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind}"


class CaseRead(models.Model):
    """Who opened a case's detail, and when: cases hold the most sensitive data a municipality has."""

    case = models.ForeignKey(Case, verbose_name=_("case"), on_delete=models.CASCADE, related_name="reads")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("read by"), on_delete=models.PROTECT)
    via = models.CharField(_("where"), max_length=30, blank=True)
    read_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("case read")
        verbose_name_plural = _("case reads")
        ordering = ["-read_at"]

    def __str__(self) -> str:
        return f"{self.case_id} {self.reader_id}"


class Heartbeat(models.Model):
    """When a periodic task last ran; /healthz/ reports its age, so a stopped worker or beat is visible."""

    name = models.CharField(max_length=50, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name
