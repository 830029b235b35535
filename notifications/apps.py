from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications and escalation")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notifications import (
            checks,  # noqa: F401 - registers the start-up check on PUBLIC_BASE_URL
            ladder,
        )

        ladder.connect()
