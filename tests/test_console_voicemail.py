"""Voicemail on the case page: played through the console (Twilio recordings need the account's credentials,
and the Content-Security-Policy only lets media come from this site)."""
import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpline.cases.models import CaseStatus, Channel
from tests.factories import CaseFactory, MessageFactory, StaffFactory

pytestmark = pytest.mark.django_db

AUDIO = b"ID3\x03\x00fake-mp3-bytes"


class RecordingServer:
    """Answers GET <recording>.mp3 like Twilio: only with the account SID and auth token as basic auth."""

    def __init__(self, expected_auth: str) -> None:
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                if self.headers.get("Authorization") != expected_auth:
                    self.send_response(401)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(len(AUDIO)))
                self.end_headers()
                self.wfile.write(AUDIO)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recordings(settings):
    token = base64.b64encode(f"{settings.TWILIO_ACCOUNT_SID}:{settings.TWILIO_AUTH_TOKEN}".encode()).decode()
    server = RecordingServer(f"Basic {token}")
    settings.TWILIO_API_BASE_URL = server.url
    yield server
    server.close()


@pytest.fixture
def voicemail_case():
    worker = StaffFactory()
    case = CaseFactory(channel=Channel.VOICE, assigned_to=worker.user, status=CaseStatus.ASSIGNED)
    return worker, case


def test_the_case_page_plays_the_voicemail_fetched_with_the_accounts_credentials(client, recordings, voicemail_case):
    worker, case = voicemail_case
    message = MessageFactory(case=case, channel=Channel.VOICE, body="", recording_seconds=42,
                             recording_url=f"{recordings.url}/2010-04-01/Accounts/AC0/Recordings/RE1")  # fmt: skip
    client.force_login(worker.user)
    page = client.get(f"/console/cases/{case.pk}/").content.decode()
    player = f"/console/cases/{case.pk}/voicemail/{message.pk}/"
    assert f'<audio controls preload="none" src="{player}"' in page
    response = client.get(player)
    assert response.status_code == 200 and response["Content-Type"] == "audio/mpeg"
    assert b"".join(response.streaming_content) == AUDIO
    assert recordings.paths == ["/2010-04-01/Accounts/AC0/Recordings/RE1.mp3"]


def test_a_recording_address_outside_twilio_is_never_fetched(client, recordings, voicemail_case):
    worker, case = voicemail_case
    message = MessageFactory(case=case, channel=Channel.VOICE, body="", recording_url="https://evil.example/x")
    client.force_login(worker.user)
    assert client.get(f"/console/cases/{case.pk}/voicemail/{message.pk}/").status_code == 404
    assert recordings.paths == []


def test_twilio_refusing_the_recording_is_a_bad_gateway_not_a_crash(client, recordings, voicemail_case, settings):
    worker, case = voicemail_case
    settings.TWILIO_AUTH_TOKEN = "wrong"
    message = MessageFactory(case=case, channel=Channel.VOICE, body="", recording_url=f"{recordings.url}/RE2")
    client.force_login(worker.user)
    assert client.get(f"/console/cases/{case.pk}/voicemail/{message.pk}/").status_code == 502


def test_someone_elses_voicemail_does_not_exist_for_a_worker(client, recordings, voicemail_case):
    _worker, case = voicemail_case
    message = MessageFactory(case=case, channel=Channel.VOICE, body="", recording_url=f"{recordings.url}/RE3")
    client.force_login(StaffFactory().user)
    assert client.get(f"/console/cases/{case.pk}/voicemail/{message.pk}/").status_code == 404
    assert recordings.paths == []
