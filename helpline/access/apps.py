from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccessConfig(AppConfig):
    """Who may get in, and for how long: the login lockout, API tokens, the second factor, ending access."""

    name = "helpline.access"
    label = "access"
    verbose_name = _("Staff access")

    def ready(self) -> None:
        from helpline.access import revocation

        revocation.connect()
