"""The commands an operator types next to `make run`: a drill that finds the server and says when nothing answered,
and demo data that can hand out a fresh password."""
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from helpline.drill.management.commands.drill import Command as DrillCommand


def test_the_drill_goes_to_the_port_make_run_was_given(monkeypatch):
    monkeypatch.setenv("PORT", "8123")

    parser = DrillCommand().create_parser("manage.py", "drill")

    assert parser.parse_args([]).url == "http://127.0.0.1:8123"


def test_the_drill_fails_loudly_when_nothing_answered():
    with socket.socket() as closed:  # a port that was free a moment ago: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

    with pytest.raises(CommandError, match=r"no contact of \d+ was answered"):
        call_command("drill", "--url", f"http://127.0.0.1:{port}", "--rate", "5", "--seconds", "0.5", "--wait", "0")


@pytest.mark.django_db
def test_demo_data_prints_a_new_password_on_request_and_only_then():
    call_command("load_demo_data", stdout=io.StringIO())
    again = io.StringIO()
    call_command("load_demo_data", stdout=again)
    assert "nothing changed" in again.getvalue()

    out = io.StringIO()
    call_command("load_demo_data", "--reset-password", stdout=out)

    password = out.getvalue().strip().rsplit(" ", 1)[-1]
    assert "amra, dario, jelena, supervisor" in out.getvalue()
    for username in ("supervisor", "jelena"):
        assert get_user_model().objects.get(username=username).check_password(password)


def test_new_keys_are_printed_on_a_production_box_not_yet_set_up_for_twilio(tmp_path):
    # The first step under docker compose (DEPLOYMENT=production, SMS_BACKEND=twilio, no PUBLIC_BASE_URL yet): the
    # system checks of a running service stopped the one command needed to set it up.
    environment = {
        **os.environ, "DEPLOYMENT": "production", "SMS_BACKEND": "twilio", "VAR_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "BLIND_INDEX_KEY": "y" * 40,
    }  # fmt: skip
    environment.pop("PUBLIC_BASE_URL", None)
    printed = subprocess.run(
        [sys.executable, "manage.py", "generate_keys"], cwd=Path(__file__).resolve().parent.parent, env=environment,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    keys = dict(line.split("=", 1) for line in printed.stdout.splitlines())
    Fernet(keys["FIELD_ENCRYPTION_KEYS"])
    assert len(keys["BLIND_INDEX_KEY"]) >= 40
