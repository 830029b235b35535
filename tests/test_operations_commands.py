"""The commands an operator types next to `make run`: a drill that finds the server and says when nothing answered,
and demo data that can hand out a fresh password."""
import io
import socket

import pytest
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
