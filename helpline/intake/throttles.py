"""Per-IP limits on the public intake, shared by the web form and the API so neither is a way around the other."""
from rest_framework.throttling import AnonRateThrottle

from helpline.drill.marker import is_drill_request


class InquiryRateThrottle(AnonRateThrottle):
    scope = "inquiries"

    def allow_request(self, request, view) -> bool:
        # A drill rehearses a surge from one machine; its signed marker cannot be forged without SECRET_KEY.
        return is_drill_request(request) or super().allow_request(request, view)


class InquiryStatusRateThrottle(AnonRateThrottle):
    scope = "inquiry_status"
