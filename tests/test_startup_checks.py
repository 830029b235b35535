"""Configuration that would fail on the night it is needed stops the start instead (`manage.py migrate` runs the
checks before anything starts)."""
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def test_twilio_without_a_public_address_stops_the_start(settings):
    settings.SMS_BACKEND, settings.PUBLIC_BASE_URL = "twilio", ""
    with pytest.raises(SystemCheckError, match="PUBLIC_BASE_URL"):
        call_command("check")


def test_twilio_with_a_public_address_or_another_backend_starts(settings):
    settings.SMS_BACKEND, settings.PUBLIC_BASE_URL = "twilio", "https://sos.example.ba"
    call_command("check")
    settings.SMS_BACKEND, settings.PUBLIC_BASE_URL = "console", ""
    call_command("check")


def test_staff_alerts_on_the_sos_number_are_warned_about_but_do_not_stop_the_start(settings, capsys):
    settings.SMS_BACKEND, settings.PUBLIC_BASE_URL = "twilio", "https://sos.example.ba"
    settings.STAFF_ALERT_SENDER = ""
    call_command("check")
    assert "notifications.W002" in capsys.readouterr().err
    settings.STAFF_ALERT_SENDER = "+38733000222"
    call_command("check")
    assert "W002" not in capsys.readouterr().err


@pytest.mark.parametrize("sender", ["38733000222", "+387 33 000 222", "MG123", "SOS"])
def test_a_sender_that_is_neither_a_number_nor_a_messaging_service_stops_the_start(settings, sender):
    settings.STAFF_ALERT_SENDER = sender
    with pytest.raises(SystemCheckError, match="STAFF_ALERT_SENDER"):
        call_command("check")


def test_a_staff_sender_that_is_the_sos_number_itself_is_warned_about(settings, capsys):
    settings.TWILIO_PHONE_NUMBER = settings.STAFF_ALERT_SENDER = "+38733000111"
    call_command("check")
    assert "notifications.W004" in capsys.readouterr().err
    settings.STAFF_ALERT_SENDER = "MG" + "a" * 32
    call_command("check")
    assert "W004" not in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["console", "memory", ""])
def test_production_whose_alerts_would_only_be_logged_stops_the_start(settings, backend):
    # A compose file that forgot SMS_BACKEND logged every staff alert, reported it sent, and /healthz/ said ok.
    settings.DEPLOYMENT, settings.SMS_BACKEND = "production", backend
    with pytest.raises(SystemCheckError, match="SMS_BACKEND"):
        call_command("check")


def test_a_demo_that_says_so_starts_with_the_console_backend(settings):
    settings.DEPLOYMENT, settings.SMS_BACKEND = "demo", "console"
    call_command("check")
    settings.DEPLOYMENT, settings.SMS_BACKEND = "production", "twilio"
    call_command("check")


def test_twilio_with_a_cache_each_process_keeps_to_itself_is_warned_about(settings, capsys):
    settings.SMS_BACKEND, settings.PUBLIC_BASE_URL = "twilio", "https://sos.example.ba"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    call_command("check")
    assert "notifications.W006" in capsys.readouterr().err
    settings.CACHES = {"default": {"BACKEND": "helpline.project.cache.FailOpenRedisCache",
                                   "LOCATION": "redis://127.0.0.1:6379/1"}}  # fmt: skip
    call_command("check")
    assert "W006" not in capsys.readouterr().err
