"""Twilio's webhooks for home-visit calls (the call itself starts at the staff-call webhook)."""
from django.urls import path

from helpline.intake import visit_webhooks

app_name = "visit-webhooks"

urlpatterns = [
    path("call/answer/", visit_webhooks.visit_call_answer, name="call-answer"),
]
