from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from helpline.api import cases, staff, views, visits
from helpline.api.roster import ShiftViewSet, StaffViewSet


class CaseReferenceConverter:
    """Letters, digits and dashes only (SOS-2026-00042): anything else, a NUL byte included, is a plain 404 before
    it reaches the database (PostgreSQL refuses NUL in text, which was a 500)."""

    regex = r"[A-Za-z0-9-]{1,40}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(CaseReferenceConverter, "reference")

app_name = "api"

router = DefaultRouter()
router.register("cases", cases.CaseViewSet, basename="case")
router.register("staff", StaffViewSet, basename="staff")
router.register("shifts", ShiftViewSet, basename="shift")
router.register("visits", visits.VisitViewSet, basename="visit")
router.register("staff-incidents", visits.IncidentViewSet, basename="staff-incident")

urlpatterns = [
    path("inquiries/", views.InquiryCreateView.as_view(), name="inquiry-create"),
    path("inquiries/<reference:reference>/", views.InquiryStatusView.as_view(), name="inquiry-status"),
    path("inquiries/<reference:reference>/messages/", views.InquiryFollowUpView.as_view(), name="inquiry-follow-up"),
    path("auth/token/", staff.TokenLoginView.as_view(), name="token"),
    path("auth/logout/", staff.TokenLogoutView.as_view(), name="logout"),
    path("auth/logout-everywhere/", staff.TokenLogoutEverywhereView.as_view(), name="logout-everywhere"),
    path("me/", staff.MeView.as_view(), name="me"),
    path("stats/", staff.StatsView.as_view(), name="stats"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
