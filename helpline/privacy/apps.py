from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PrivacyConfig(AppConfig):
    """The personal data protection law in practice: retention by purpose, legal holds, a citizen's rights on
    request (export, erasure), and the read log supervisors review."""

    name = "helpline.privacy"
    label = "privacy"
    verbose_name = _("Personal data")

    def ready(self) -> None:
        from django.core import checks

        checks.register(check_retention_settings, checks.Tags.compatibility)


def check_retention_settings(app_configs=None, **kwargs) -> list:
    """At start-up (every manage.py command, the worker, the web server): a retention setting that cannot be applied
    is an error, not data kept for the wrong time."""
    from django.core import checks

    from helpline.privacy.selectors import retention_setting_errors

    return [checks.Error(message, id="privacy.E001") for message in retention_setting_errors()]
