"""Shared fixtures: signed Twilio webhooks, the real broker's queues, and the throttle cache."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from twilio.request_validator import RequestValidator

from helpline.project.celery import app as celery_app

PUBLIC_BASE_URL = "https://sos.example.test"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def twilio_settings(settings):
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    settings.TWILIO_PHONE_NUMBER = "+38733000111"
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    return settings


@pytest.fixture(autouse=True)
def second_factor_not_required(settings):
    """Production asks supervisors and admin users for a second factor (SECOND_FACTOR_REQUIRED); tests about other
    things sign them in with force_login and set none up. tests/test_second_factor.py turns the requirement on."""
    settings.SECOND_FACTOR_REQUIRED = False


@pytest.fixture(autouse=True)
def no_room_seen_yet():
    """A process remembers for two seconds that its last assignment turn found everyone at their maximum; each test
    starts as a fresh worker process would."""
    from notifications import ladder

    ladder.forget_room_seen()


@pytest.fixture(autouse=True)
def no_configuration_kept():
    """A process keeps its configuration reads (surge mode, crisis events, escalation ladders, the rules' stamp) for
    a second; each test starts as a fresh process would, not with what an earlier test's rolled-back data said."""
    from helpline.cases.kept_reads import forget_every_kept_read

    forget_every_kept_read()


@pytest.fixture(autouse=True)
def staff_phones_just_read():
    """Intake reads the staff phones once a minute for the spool (helpline/intake/staff_phones.py); tests count
    statements, so none reads them unless it asks (`staff_phones.forget()`)."""
    from helpline.intake import staff_phones

    staff_phones.consider_read()


@pytest.fixture(autouse=True)
def no_batch_failures_remembered():
    """A process leaves out of its triage batches, for a while, the cases whose triage failed in one; each test
    starts as a fresh worker process would."""
    from triage import services

    services.forget_batch_failures()


@pytest.fixture(autouse=True)
def no_failed_steps_remembered():
    """A process leaves a ladder step that raised out of its ticks for a minute; each test starts as a fresh worker
    process would."""
    from helpline.cases import ticks

    ticks.forget_failed_steps()


@pytest.fixture(autouse=True)
def fresh_throttle_counters():
    cache.clear()
    yield
    cache.clear()


def sign(path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(PUBLIC_BASE_URL + path, params)


class Twilio:
    """Posts webhooks the way Twilio does: form-encoded, signed over the public URL."""

    def __init__(self, client) -> None:
        self.client = client

    def post(self, path: str, params: dict[str, str], *, signature: str | None = None):
        headers = {"HTTP_X_TWILIO_SIGNATURE": sign(path, params) if signature is None else signature}
        return self.client.post(
            path, data=urlencode(params), content_type="application/x-www-form-urlencoded", **headers
        )

    def sms(self, body: str, *, sid: str, from_number: str = "+38761123456", **extra: str):
        params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": from_number, "To": "+38733000111",
                  "Body": body, "NumMedia": "0", **extra}  # fmt: skip
        return self.post("/webhooks/twilio/sms/", params)

    def call(self, path: str = "/webhooks/twilio/voice/", *, sid: str, from_number: str = "+38761123456", **extra):
        params = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": from_number, "To": "+38733000111",
                  "CallStatus": "ringing", **extra}  # fmt: skip
        return self.post(path, params)


@pytest.fixture
def twilio(client) -> Twilio:
    return Twilio(client)


class Queues:
    """The real broker's queues (Redis in CI, the filesystem transport locally)."""

    def size(self, name: str) -> int:
        with celery_app.connection_for_write() as conn:
            return conn.default_channel.queue_declare(queue=name, passive=False, durable=True).message_count

    def taken_in_order(self, name: str) -> list[tuple]:
        """Take every message from the queue as a worker would, one at a time: the arguments of each, in the order
        the broker gave them."""
        taken = []
        with celery_app.connection_for_write() as conn:
            while (message := conn.default_channel.basic_get(name, no_ack=True)) is not None:
                args, _kwargs, _embed = message.decode()
                taken.append(tuple(args))
        return taken

    def purge(self, *names: str) -> None:
        with celery_app.connection_for_write() as conn:
            for name in names:
                conn.default_channel.queue_declare(queue=name, durable=True)
                conn.default_channel.queue_purge(name)


@pytest.fixture
def queues(monkeypatch) -> Queues:
    """Tests that read the queues are about what was published, not how fast: a cold first connection to the broker
    on a busy CI box may take longer than intake's half-second publish deadline (tested in test_intake_faults)."""
    from helpline.cases import dispatch

    monkeypatch.setattr(dispatch, "PUBLISH_DEADLINE_SECONDS", 5.0)
    queues = Queues()
    queues.purge("triage", "critical", "alerts", "notifications", "default", "model")
    yield queues
    queues.purge("triage", "critical", "alerts", "notifications", "default", "model")


@pytest.fixture
def unreachable_broker(monkeypatch):
    """Point the Celery app at a port where nothing listens, as when Redis is down."""
    # Celery reads CELERY_BROKER_URL from the environment first, then from Django's CELERY_ settings.
    original = celery_app.conf["CELERY_BROKER_URL"]
    dead = "redis://127.0.0.1:1/0"

    def repoint(url: str) -> None:
        celery_app.conf["CELERY_BROKER_URL"] = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    repoint(dead)
    assert celery_app.connection_for_write().as_uri().startswith(dead[:-2])
    yield
    monkeypatch.undo()
    repoint(original)


@pytest.fixture
def twilio_api(settings):
    """The real twilio REST client, talking to a local stub instead of api.twilio.com."""
    from tests.twilio_stub import TwilioStub

    with TwilioStub() as stub:
        settings.SMS_BACKEND = "twilio"
        settings.TWILIO_API_BASE_URL = stub.url
        settings.SMS_PER_SECOND = settings.CALLS_PER_SECOND = 1000
        yield stub


@pytest.fixture
def rules_only_triage(monkeypatch, tmp_path):
    """Triage by the keyword rules alone (as when the model cannot load), for tests about what happens after
    triage (assignment, batches) that need each message's priority fixed rather than the model's judgement."""
    from triage import semantic_model
    from triage.services import install_default_rules

    install_default_rules()  # the shipped rules (a transactional test before may have flushed them)
    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "no-model.npz")
    semantic_model.forget_semantic_model()
    yield
    semantic_model.forget_semantic_model()
