"""Welfare checks in a disaster: the register of vulnerable people a centre keeps, the campaigns that ask each of
them whether they are safe, one check per person per campaign, and the visit a silent person gets.

Links to cases live here (WelfareCheck.case), never on Case: the case domain knows nothing of campaigns.
Names, numbers, addresses and notes are stored encrypted (helpline.cases.encryption); each row keeps the keyed
hashes it is found by (a number, a register entry, the words of a name), recomputed by save().
"""
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from helpline.cases.encryption import (
    EncryptedCharField,
    EncryptedPhoneNumberField,
    blind_index,
    phone_index,
    search_tokens,
    with_index_fields,
)
from helpline.cases.models import Case, Language, Script, mask_phone


class Need(models.TextChoices):
    # Ordered as the campaign asks: a power-dependent device fails first when the power goes.
    POWER_DEVICE = "power_device", _("Oxygen or other power-dependent device")
    DIALYSIS = "dialysis", _("Dialysis")
    LIVES_ALONE = "lives_alone", _("Lives alone")
    MOBILITY = "mobility", _("Limited mobility")
    DEMENTIA = "dementia", _("Dementia")
    CHILDREN_IN_CARE = "children_in_care", _("Children in care")


class LegalBasis(models.TextChoices):
    CONSENT = "consent", _("Consent of the person")
    VITAL_INTEREST = "vital_interest", _("Vital interest (protection of life)")
    PUBLIC_TASK = "public_task", _("Legal duty of the centre (social protection law)")


def normalised_name(full_name: str) -> str:
    """A name as the register compares it: spaces trimmed and collapsed (a sheet's "Ana  Marić" is "Ana Marić")."""
    return " ".join(str(full_name or "").split())


def register_entry_index(phone: object, full_name: str) -> str:
    """The keyed hash of a number and a name together: one register entry per person, found again on re-import."""
    return blind_index("register_entry", f"{phone or ''}\x00{normalised_name(full_name)}")


class IndexedQuerySet(models.QuerySet):
    """bulk_create skips save(): the rows' keyed hashes are computed here instead, so no row is stored without."""

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list:
        objs = list(objs)
        for obj in objs:
            obj.refresh_indexes()
        return super().bulk_create(objs, *args, **kwargs)


class VulnerablePerson(models.Model):
    """One entry of the centre's register: who may need a check in a flood, a landslide or a long power cut."""

    full_name = EncryptedCharField(_("name"), max_length=200)
    phone = EncryptedPhoneNumberField(_("phone"))
    other_phone = EncryptedPhoneNumberField(_("other phone"), blank=True)
    address = EncryptedCharField(_("address"), max_length=300, blank=True)
    settlement = models.CharField(_("settlement"), max_length=100, blank=True)
    municipality = models.CharField(_("municipality"), max_length=100, db_index=True)
    language = models.CharField(_("language"), max_length=5, choices=Language.choices, default=Language.BOSNIAN)
    script = models.CharField(_("script"), max_length=10, choices=Script.choices, default=Script.LATIN)
    birth_year = models.PositiveSmallIntegerField(_("year of birth"), null=True, blank=True)
    needs = models.JSONField(_("needs"), default=list, blank=True, help_text=_("Codes from the list of needs."))
    trusted_contact_name = EncryptedCharField(_("trusted contact"), max_length=200, blank=True)
    trusted_contact_phone = EncryptedPhoneNumberField(_("trusted contact's phone"), blank=True)
    legal_basis = models.CharField(_("legal basis"), max_length=20, choices=LegalBasis.choices)
    consent_recorded_on = models.DateField(_("consent recorded on"), null=True, blank=True)
    notes = EncryptedCharField(_("notes"), max_length=500, blank=True)
    # Keyed hashes, kept by save(): the number (which person a number belongs to), the number and name together
    # (one entry per person; how a re-imported sheet finds its rows) and the name's words (the register search).
    phone_index = models.CharField(max_length=32, db_index=True, editable=False)
    entry_index = models.CharField(max_length=32, editable=False)
    name_tokens = models.TextField(blank=True, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    # Set when a campaign could not reach the number (wrong number, failed delivery): someone must correct it.
    number_needs_checking = models.BooleanField(_("number needs checking"), default=False, db_index=True)
    number_problem = models.CharField(_("what went wrong with the number"), max_length=200, blank=True)
    last_checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("entry last checked by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )  # fmt: skip
    last_checked_at = models.DateTimeField(_("entry last checked"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = IndexedQuerySet.as_manager()

    class Meta:
        verbose_name = _("vulnerable person")
        verbose_name_plural = _("register of vulnerable persons")
        ordering = ["municipality", "settlement", "pk"]  # names are encrypted: the database cannot sort by them
        constraints = [
            models.UniqueConstraint(
                fields=["entry_index"], name="one_register_entry_per_person",
                violation_error_message=_("This person (the same name and phone) is already in the register."),
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.full_name} ({self.municipality})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.refresh_indexes()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"phone", "full_name"} & set(update_fields):
            # A partial save of the number or the name writes the hashes derived from them too.
            kwargs["update_fields"] = list(dict.fromkeys([*update_fields, "phone_index", "entry_index", "name_tokens"]))
        super().save(*args, **kwargs)

    def refresh_indexes(self) -> None:
        """Recompute the keyed hashes from the values; for save() and for bulk writes, which bypass it."""
        self.phone_index = phone_index(self.phone)
        self.entry_index = register_entry_index(self.phone, self.full_name)
        self.name_tokens = search_tokens(self.full_name)

    def validate_constraints(self, exclude: Any = None) -> None:
        # A form never edits the hashes (they are not editable), so Django would skip the one-entry-per-person
        # check: compute them from the name and number being validated and check it whenever those two are.
        self.refresh_indexes()
        if exclude and not {"phone", "full_name"} & set(exclude):
            exclude = set(exclude) - {"entry_index"}
        super().validate_constraints(exclude=exclude)

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


# A campaign's waits (SMS to call, call to visit) are minutes to hours in a flood; a day at most. A larger number
# is a typing slip that would leave the silent uncalled (and ten digits overflowed the column: a server error).
MAX_WAIT_MINUTES = 24 * 60


class CampaignStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    FINISHED = "finished", _("Finished")


class Campaign(models.Model):
    """A supervisor asks everyone in some areas, or with some needs, whether they are safe."""

    title = models.CharField(_("title"), max_length=200)
    question = models.CharField(
        _("question"), max_length=300,
        help_text=_("Sent in Latin or Cyrillic as each person reads; the reply instructions are added."),
    )  # fmt: skip
    # A database default too: rows written by the version before this one, while both run, get "".
    question_english = models.CharField(
        _("question (English)"), max_length=300, blank=True, default="", db_default="",
        help_text=_("For people whose register language is English. Left empty, they get the question above."),
    )  # fmt: skip
    areas = models.JSONField(_("municipalities"), default=list, blank=True)
    needs = models.JSONField(_("needs"), default=list, blank=True)
    is_drill = models.BooleanField(_("drill"), default=False)
    status = models.CharField(
        _("status"), max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.RUNNING
    )
    # At most a day (as the console's form and start_campaign): the admin edits these too.
    call_after_minutes = models.PositiveIntegerField(
        _("call when no SMS answer after (minutes)"), default=60,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WAIT_MINUTES)],
    )  # fmt: skip
    visit_after_minutes = models.PositiveIntegerField(
        _("visit when no call answer after (minutes)"), default=30,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WAIT_MINUTES)],
    )  # fmt: skip
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("started by"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Finishing leaves the silent uncalled and unvisited: who decided it is part of the record.
    finished_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("finished by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip

    class Meta:
        verbose_name = _("welfare campaign")
        verbose_name_plural = _("welfare campaigns")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.title


class CheckState(models.TextChoices):
    HELD = "held", _("Waiting: another campaign's question is open")
    QUEUED = "queued", _("Not yet asked")
    ASKED = "asked", _("Asked by SMS, no answer yet")
    CALLED = "called", _("Called, no answer yet")
    VISIT_PENDING = "visit_pending", _("Visit pending")
    SAFE = "safe", _("Safe")
    NEEDS_HELP = "needs_help", _("Needs help")
    UNREACHABLE = "unreachable", _("Unreachable")
    NOT_ASKED = "not_asked", _("Not asked: the campaign was finished first")


# The states in which a campaign's question is open on a number: a reply from it belongs to that check.
QUESTION_OPEN = (CheckState.QUEUED, CheckState.ASKED, CheckState.CALLED, CheckState.VISIT_PENDING)
SETTLED = (CheckState.SAFE, CheckState.NEEDS_HELP, CheckState.UNREACHABLE, CheckState.NOT_ASKED)


class WelfareCheck(models.Model):
    """One person in one campaign; its state is where the person stands now (exactly one)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="checks")
    person = models.ForeignKey(VulnerablePerson, on_delete=models.PROTECT, related_name="checks")
    phone = EncryptedCharField(max_length=20)  # the number asked (E.164), kept as it was when asked
    # The number's keyed hash: how a reply SMS finds its open question without the number stored in clear.
    phone_index = models.CharField(max_length=32, db_index=True, editable=False)
    is_drill = models.BooleanField(default=False)
    state = models.CharField(_("state"), max_length=20, choices=CheckState.choices, db_index=True)
    # Lower goes first: power-dependent devices, then living alone, then the oldest.
    urgency = models.IntegerField(default=0)
    send_at = models.DateTimeField(null=True, blank=True, db_index=True)
    asked_at = models.DateTimeField(null=True, blank=True)
    provider_sid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    call_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    called_at = models.DateTimeField(null=True, blank=True)
    call_sid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    visit_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    # When the person last wrote a bare "Da" or "Yes", which answers the question without saying which way: the
    # question stays open and is asked again, and the supervisor sees that the person did write.
    unclear_answer_at = models.DateTimeField(null=True, blank=True)
    answered_via = models.CharField(max_length=10, blank=True)  # sms, voice, visit
    reply_sid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    failure = models.CharField(max_length=200, blank=True)
    # Since when the provider has refused this question for a reason that may pass (rate limit, an outage).
    sms_failing_since = models.DateTimeField(null=True, blank=True)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects = IndexedQuerySet.as_manager()

    class Meta:
        verbose_name = _("welfare check")
        verbose_name_plural = _("welfare checks")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "person"], name="one_check_per_person_per_campaign"),
            # SMS surveys can only match a reply when one question is open per number at a time.
            models.UniqueConstraint(
                fields=["phone_index", "is_drill"], condition=models.Q(state__in=[s.value for s in QUESTION_OPEN]),
                name="one_open_welfare_question_per_number",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["campaign", "state"], name="welfare_check_campaign_state")]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.person_id}: {self.state}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.refresh_indexes()
        kwargs["update_fields"] = with_index_fields(kwargs.get("update_fields"), {"phone": "phone_index"})
        super().save(*args, **kwargs)

    def refresh_indexes(self) -> None:
        self.phone_index = phone_index(self.phone)


class AreaWorker(models.Model):
    """Which workers cover which municipality for visits; with nobody listed, anyone on duty may be sent."""

    municipality = models.CharField(_("municipality"), max_length=100, db_index=True)
    staff = models.ForeignKey("triage.StaffProfile", verbose_name=_("staff member"), on_delete=models.CASCADE)

    class Meta:
        verbose_name = _("area worker")
        verbose_name_plural = _("area workers")
        constraints = [models.UniqueConstraint(fields=["municipality", "staff"], name="one_area_worker_row")]

    def __str__(self) -> str:
        return f"{self.municipality}: {self.staff}"


class VisitStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting for the worker to take it")
    TAKEN = "taken", _("Taken: worker on the way")
    DONE = "done", _("Visited")


class VisitTask(models.Model):
    """Go and see a person nobody could reach. Escalates like a case: the ladder's steps are copied onto the task,
    the next step's due time lives here, and a step runs only if the task is still at the step it expects."""

    welfare_check = models.OneToOneField(WelfareCheck, on_delete=models.CASCADE, related_name="visit")
    status = models.CharField(max_length=10, choices=VisitStatus.choices, default=VisitStatus.WAITING, db_index=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="welfare_visits"
    )
    explanation = models.CharField(max_length=300, blank=True)
    ladder = models.JSONField(default=dict, blank=True)
    escalation_step = models.PositiveIntegerField(default=0)
    escalation_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("visit task")
        verbose_name_plural = _("visit tasks")

    def __str__(self) -> str:
        return f"visit {self.pk} ({self.status})"


class VisitEscalation(models.Model):
    """One step of a visit's ladder and whom it told: the visit's timeline. A person a step tells hears of it in the
    next SMS about visits to their number (visits.send_visit_digests), at most one a minute; the row waits here
    until that SMS is written (told_at). Forty visits escalating at once are one SMS, and none is left out."""

    task = models.ForeignKey(VisitTask, on_delete=models.CASCADE, related_name="escalations")
    step = models.PositiveIntegerField()  # the position on the ladder, counting repeats
    loop = models.PositiveIntegerField(default=0)  # 0 on the first pass
    action = models.CharField(max_length=40)
    # False: the step had nobody to tell (no supervisor on duty, nobody to reassign to) and the ladder went on.
    reached = models.BooleanField(default=True)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_number = models.CharField(max_length=20, blank=True)  # a staff phone or a fallback number (E.164)
    at = models.DateTimeField()
    told_at = models.DateTimeField(null=True, blank=True)
    # The SMS that told them: None when nothing had to be sent (a drill, nobody reached, the visit taken meanwhile).
    notification = models.ForeignKey(
        "notifications.Notification", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("visit escalation step")
        verbose_name_plural = _("visit escalation steps")
        ordering = ["at", "pk"]
        indexes = [
            models.Index(fields=["at"], condition=models.Q(told_at__isnull=True), name="visit_escalation_untold"),
            models.Index(fields=["to_number", "told_at"], name="visit_escalation_told"),
        ]

    def __str__(self) -> str:
        return f"visit {self.task_id} step {self.step}: {self.action}"
