from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """The staff web console: server-rendered pages over the same services and selectors as the staff API."""

    name = "helpline.console"
    label = "console"
    verbose_name = _("Staff console")
