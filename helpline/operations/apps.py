from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    """Management commands that set up or measure the whole service (demo data, the case-list benchmark)."""

    name = "helpline.operations"
    label = "operations"
    verbose_name = _("Operations")
