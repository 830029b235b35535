from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from helpline.intake import delivery_webhooks as notification_webhooks
from helpline.intake import views, webhooks
from helpline.operations import health
from helpline.project import errors

# settings.py installs the admin without autodiscovery (SimpleAdminConfig) so that a restarted worker is back in
# seconds; the web process registers every app's admin.py here, before the admin's URLs are built.
admin.autodiscover()

webhook_patterns = [
    path("sms/", webhooks.inbound_sms, name="sms"),
    path("voice/", webhooks.inbound_call, name="voice"),
    path("voice/language/", webhooks.call_language_chosen, name="voice-language"),
    path("voice/dial-result/", webhooks.dial_result, name="voice-dial-result"),
    path("voice/whisper/", webhooks.whisper, name="voice-whisper"),
    path("voice/whisper/accept/", webhooks.whisper_accept, name="voice-whisper-accept"),
    path("voice/recorded/", webhooks.voicemail_recorded, name="voice-recorded"),
    path("voice/recording/", webhooks.voicemail_recording_status, name="voice-recording"),
    path("voice/status/", webhooks.call_status, name="voice-status"),
    path("message-status/", notification_webhooks.message_status, name="message-status"),
    path("voice/staff-call/", notification_webhooks.staff_call, name="staff-call"),
    path("voice/staff-call/accept/", notification_webhooks.staff_call_accept, name="staff-call-accept"),
    path("voice/staff-call/status/", notification_webhooks.staff_call_status, name="staff-call-status"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="inquiry-form", permanent=False)),
    path("inquiry/", views.inquiry_form, name="inquiry-form"),
    path("inquiry/received/", views.inquiry_received, name="inquiry-received"),
    path("inquiry/status/", views.inquiry_status, name="inquiry-status"),
    path("inquiry/status/messages/", views.conversation_messages, name="inquiry-conversation-messages"),
    path("inquiry/status/leave/", views.leave_conversation, name="inquiry-leave"),
    path("healthz/", health.healthz, name="healthz"),
    path("webhooks/twilio/", include((webhook_patterns, "webhooks"))),
    path("webhooks/twilio/welfare/", include("helpline.intake.welfare_webhooks")),
    path("webhooks/twilio/visits/", include("helpline.intake.visit_urls")),
    path("api/v1/", include("helpline.api.urls")),
    path("console/", include("helpline.console.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

# Under /api/ these answer in JSON, as the schema documents; elsewhere they are Django's pages.
handler400 = errors.bad_request
handler404 = errors.not_found
handler500 = errors.server_error
