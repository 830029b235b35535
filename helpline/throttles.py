"""Per-IP limits on the public intake, shared by the web form and the API so neither is a way around the other."""
from rest_framework.throttling import AnonRateThrottle


class InquiryRateThrottle(AnonRateThrottle):
    scope = "inquiries"


class InquiryStatusRateThrottle(AnonRateThrottle):
    scope = "inquiry_status"
