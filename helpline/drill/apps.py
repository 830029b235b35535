from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DrillConfig(AppConfig):
    """Rehearsals on the running service: `manage.py drill`, its marker and its traffic."""

    name = "helpline.drill"
    label = "drill"
    verbose_name = _("Drills")
