from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CasesConfig(AppConfig):
    """The case domain: callers, cases, messages, the timeline and status changes. Imports no other app.

    Its label stays "helpline", the app's first name, so its tables and migrations are unchanged."""

    name = "helpline.cases"
    label = "helpline"
    verbose_name = _("Helpline cases")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from helpline.cases import checks  # noqa: F401 - registers the deploy-time key check
