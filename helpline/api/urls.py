from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from helpline.api import cases, staff, views
from helpline.api.roster import ShiftViewSet, StaffViewSet

app_name = "api"

router = DefaultRouter()
router.register("cases", cases.CaseViewSet, basename="case")
router.register("staff", StaffViewSet, basename="staff")
router.register("shifts", ShiftViewSet, basename="shift")

urlpatterns = [
    path("inquiries/", views.InquiryCreateView.as_view(), name="inquiry-create"),
    path("inquiries/<str:reference>/", views.InquiryStatusView.as_view(), name="inquiry-status"),
    path("inquiries/<str:reference>/messages/", views.InquiryFollowUpView.as_view(), name="inquiry-follow-up"),
    path("auth/token/", staff.TokenLoginView.as_view(), name="token"),
    path("me/", staff.MeView.as_view(), name="me"),
    path("stats/", staff.StatsView.as_view(), name="stats"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
