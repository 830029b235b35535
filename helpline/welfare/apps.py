from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WelfareConfig(AppConfig):
    name = "helpline.welfare"
    label = "welfare"
    verbose_name = _("Welfare checks")
    default_auto_field = "django.db.models.BigAutoField"
