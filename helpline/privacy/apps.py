from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PrivacyConfig(AppConfig):
    """The personal data protection law in practice: retention by purpose, legal holds, a citizen's rights on
    request (export, erasure), and the read log supervisors review."""

    name = "helpline.privacy"
    label = "privacy"
    verbose_name = _("Personal data")
