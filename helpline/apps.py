from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HelplineConfig(AppConfig):
    name = "helpline"
    verbose_name = _("Helpline cases")
    default_auto_field = "django.db.models.BigAutoField"
