"""Per-IP limits on the public intake, shared by the web form and the API so neither is a way around the other.

A citizen's message is never refused for rate: a shelter's Wi-Fi, a school or a carrier's shared address can send
many real messages in a minute. Over the limits a message is stored, answered and flagged as possibly automated
(`limit_reached`), so it waits behind unflagged cases of the same priority; status reads, which could be guesses at
a secret code, are refused when over theirs.

A throttle must never cost a citizen their message: if its counters cannot be read (a cache other than the
fail-open Redis cache of helpline/project/cache.py, down), the request is let through and the failure logged."""
import logging

from rest_framework.throttling import AnonRateThrottle

from helpline.drill.marker import is_drill_request

logger = logging.getLogger(__name__)


class FailsOpen:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as error:  # the cache is down: better an unthrottled request than a lost contact
            logger.warning("throttle %s could not read its counters (%s); request let through", self.scope,
                           type(error).__name__)
            return True


class InquiryRateThrottle(FailsOpen, AnonRateThrottle):
    scope = "inquiries"

    def allow_request(self, request, view) -> bool:
        # A drill rehearses a surge from one machine; its signed marker cannot be forged without SECRET_KEY.
        return is_drill_request(request) or super().allow_request(request, view)


class InquiryDailyCap(InquiryRateThrottle):
    scope = "inquiries_daily"


class InquiryStatusRateThrottle(FailsOpen, AnonRateThrottle):
    scope = "inquiry_status"


def limit_reached(request) -> str:
    """Count this contact against the per-address limits: "" when within them, else the limit passed ("10/minute"),
    for the flag staff see. Both limits count every contact, so the daily cap sees a burst too."""
    passed = [throttle.rate for throttle in (InquiryRateThrottle(), InquiryDailyCap())
              if not throttle.allow_request(request, None)]  # fmt: skip
    return ", ".join(passed)
