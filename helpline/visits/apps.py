from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VisitsConfig(AppConfig):
    """Social workers' safety on home visits: timed visits, check-out, overdue escalation, the silent alarm, and
    incidents of aggression against staff."""

    name = "helpline.visits"
    label = "visits"
    verbose_name = _("Home visits")
