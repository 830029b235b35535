"""Per-IP limits on the public intake, shared by the web form and the API so neither is a way around the other.

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


class InquiryStatusRateThrottle(FailsOpen, AnonRateThrottle):
    scope = "inquiry_status"
