"""The public inquiry API's shapes. Field errors come back per field, in the request's language."""
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers

from helpline.cases.models import Case, Message

# Bosnian, Croatian and Serbian (either script) are answered in one reply language; by a tag's first part, so
# "sr-Cyrl", "bs-BA", "hr_HR" and "EN-us", as phones send them, read as they are meant.
LANGUAGE_ALIASES = {"bs": "bs", "hr": "bs", "sr": "bs", "sh": "bs", "cnr": "bs", "en": "en"}


def encodable_text(value: str) -> str:
    """Reject text that cannot be stored (lone surrogates from a broken client)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise serializers.ValidationError(_("The text contains characters that cannot be stored.")) from None
    return value


class TextField(serializers.CharField):
    """Text, and only text: DRF's CharField turns a number into a string, which hides a client's bug (the schema
    says string). A number, a list or true is refused with the field's error, and nothing is stored."""

    default_error_messages = {"invalid": _("Not valid text: send a string.")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class YesNoField(serializers.BooleanField):
    """true, false or null, as the schema says: DRF would also take 0, 1, "yes" or "off", guessing at a client's
    meaning on a question about a citizen's safety."""

    default_error_messages = {"invalid": _("Must be true, false or null.")}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field({"oneOf": [{"type": "string", "format": "email"}, {"type": "string", "maxLength": 0}]})
class OptionalEmailField(serializers.EmailField):
    """An e-mail address, or "" for none (the form sends an empty field): the schema says both."""


class SafeContactSerializer(serializers.Serializer):
    call = YesNoField(required=False, allow_null=True, default=None, help_text=_("Is it safe to call?"))
    text = YesNoField(required=False, allow_null=True, default=None, help_text=_("Is it safe to text?"))
    note = TextField(
        required=False, allow_blank=True, default="", max_length=500, validators=[encodable_text],
        help_text=_("When it is safe to contact you, in your own words."),
    )  # fmt: skip


class InquiryCreateSerializer(serializers.Serializer):
    message = TextField(max_length=settings.MAX_MESSAGE_LENGTH, validators=[encodable_text])
    name = TextField(
        required=False, allow_blank=True, default="", max_length=200, validators=[encodable_text]
    )
    phone = PhoneNumberField(required=False, allow_blank=True, default="", region="BA")
    email = OptionalEmailField(required=False, allow_blank=True, default="")
    language = TextField(
        required=False, allow_null=True, allow_blank=True, default=None, max_length=35,
        help_text=_(
            "A hint, as a language tag (bs, hr, sr, sr-Cyrl, bs-BA, en-US...). Bosnian, Croatian and Serbian are "
            "answered in one language; any other tag is ignored and the language is read from the message."
        ),
    )  # fmt: skip
    safe_contact = SafeContactSerializer(required=False, default=dict)

    def validate_language(self, value: str | None) -> str | None:
        """A tag we do not answer in is no reason to refuse a message: the message's own words decide."""
        primary = (value or "").strip().replace("_", "-").split("-")[0].lower()
        return LANGUAGE_ALIASES.get(primary)


class InquiryCreatedSerializer(serializers.Serializer):
    reference = serializers.CharField()
    token = serializers.CharField(help_text=_("Keep it secret: with the reference, it shows your case's status."))
    status_url = serializers.URLField()
    notice = serializers.CharField(
        allow_blank=True, help_text=_("While the centre is overwhelmed (a flood): the delay, where help points are.")
    )


class FollowUpSerializer(serializers.Serializer):
    message = TextField(max_length=settings.MAX_MESSAGE_LENGTH, validators=[encodable_text])


class CitizenReplySerializer(serializers.ModelSerializer):
    text = serializers.CharField(source="body")
    sent_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Message
        fields = ["text", "sent_at"]


class InquiryStatusSerializer(serializers.ModelSerializer):
    status_label = serializers.CharField(source="get_status_display")
    replies = CitizenReplySerializer(many=True, source="citizen_replies")

    class Meta:
        model = Case
        fields = ["reference", "status", "status_label", "created_at", "replies"]
