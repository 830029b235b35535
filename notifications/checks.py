"""Start-up checks: production alerts go through Twilio; Twilio cannot reach a service that does not say where it
is; staff alerts share a queue.

With SMS_BACKEND=twilio, a call to a worker about a critical case tells Twilio where to fetch what it says
(PUBLIC_BASE_URL + /webhooks/twilio/voice/staff-call/), and every message and call names its status callback
there. With PUBLIC_BASE_URL empty the SMS still go out, but every staff call fails at Twilio and no delivery is
ever confirmed: found by `manage.py migrate`, which every start runs first, not on the night it is needed.
"""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from notifications.backends import alerts_reach_no_phone_in_production


@register()
def twilio_can_reach_this_service(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.SMS_BACKEND != "twilio" or settings.PUBLIC_BASE_URL:
        return []
    return [Error(
        "SMS_BACKEND is twilio, but PUBLIC_BASE_URL is empty.",
        hint="Set PUBLIC_BASE_URL to the address Twilio reaches this service at (https://sos.example.ba): the calls "
             "to staff about critical cases fetch what they say from it, and status callbacks come back to it.",
        id="notifications.E001",
    )]  # fmt: skip


@register()
def production_alerts_reach_phones(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A deployment that forgot SMS_BACKEND would log every staff alert and call it sent: nobody is told of a case."""
    if not alerts_reach_no_phone_in_production():
        return []
    return [Error(
        f"DEPLOYMENT is production, but SMS_BACKEND is {settings.SMS_BACKEND!r}: staff alerts would go nowhere.",
        hint="Set SMS_BACKEND=twilio (with the TWILIO_* settings and PUBLIC_BASE_URL). For a demo that sends nothing, "
             "set DEPLOYMENT=demo instead (README, \"Configuration\").",
        id="notifications.E005",
    )]  # fmt: skip


@register()
def staff_alerts_have_a_sender_of_their_own(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Twilio sends what a number is given beyond its rate from a queue, in order: the citizens' answers and the
    staff alerts on one number wait for each other, and in a surge the answers are thousands."""
    if settings.SMS_BACKEND != "twilio" or settings.STAFF_ALERT_SENDER:
        return []
    return [Warning(
        "Staff alerts go from the SOS number, behind the citizens' answers in its queue at Twilio.",
        hint="Set STAFF_ALERT_SENDER to a second number or a Messaging Service (MG...) whose incoming messages reach "
             "/webhooks/twilio/sms/: in a surge, an alert about a critical case would otherwise wait at Twilio "
             "behind every answer sent before it, one a second.",
        id="notifications.W002",
    )]  # fmt: skip


# A phone number in E.164, or a Messaging Service SID.
SENDER_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}|MG[0-9a-fA-F]{32}")


@register()
def other_senders_are_numbers_or_messaging_services(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A mistyped sender fails at Twilio on the first alert it carries; here it stops the start instead."""
    problems: list[CheckMessage] = []
    for name in ("STAFF_ALERT_SENDER", "DELIVERY_ALERT_SENDER"):
        value = getattr(settings, name)
        if value and not SENDER_PATTERN.fullmatch(value):
            problems.append(Error(
                f"{name} is {value!r}: neither a phone number in E.164 (+38733...) nor a Messaging Service SID.",
                hint="Give the number as Twilio shows it (+ and digits), or the service's SID (MG and 32 hex digits).",
                id="notifications.E003",
            ))  # fmt: skip
    if settings.STAFF_ALERT_SENDER and settings.STAFF_ALERT_SENDER == settings.TWILIO_PHONE_NUMBER:
        problems.append(Warning(
            "STAFF_ALERT_SENDER is the SOS number itself: staff alerts still queue behind the citizens' answers.",
            hint="Use a second number or a Messaging Service.", id="notifications.W004",
        ))  # fmt: skip
    return problems


@register()
def twilio_log_reading_shares_its_memory(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The worker's reading of Twilio's log (helpline/intake/recovery.py) keeps its last look, and the SMS the web's
    webhook answered without storing them, in the cache: a cache of each process's own memory shares neither."""
    if settings.SMS_BACKEND != "twilio" or "locmem" not in settings.CACHES["default"]["BACKEND"].lower():
        return []
    return [Warning(
        "SMS_BACKEND is twilio, but the cache is each process's own (CACHE_URL=locmemcache://).",
        hint="Set CACHE_URL to Redis (redis://host:6379/1): the worker reading Twilio's log for contacts the webhooks "
             "missed would otherwise not see the SMS the web answered without storing them (a welfare \"Da\" asked "
             "again) and could store one as a citizen's case, and it would forget its last look at every restart.",
        id="notifications.W006",
    )]  # fmt: skip
