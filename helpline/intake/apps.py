from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntakeConfig(AppConfig):
    """The citizen's channels: Twilio SMS and voice webhooks, the public form and its pages."""

    name = "helpline.intake"
    label = "intake"
    verbose_name = _("Intake")
