from django.urls import path

from helpline.api import cases, views

app_name = "api"

urlpatterns = [
    path("inquiries/", views.InquiryCreateView.as_view(), name="inquiry-create"),
    path("inquiries/<str:reference>/", views.InquiryStatusView.as_view(), name="inquiry-status"),
    path("inquiries/<str:reference>/messages/", views.InquiryFollowUpView.as_view(), name="inquiry-follow-up"),
    path("cases/<int:case_id>/acknowledge/", cases.AcknowledgeCaseView.as_view(), name="case-acknowledge"),
]
