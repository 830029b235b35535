"""Intake must not depend on anything behind the database: a dead broker costs the citizen nothing."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpline.cases.models import Case

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sms_intake_answers_within_a_second_with_the_broker_unreachable(twilio, unreachable_broker, caplog):
    started = time.perf_counter()
    response = twilio.sms("Pomozite, hitno je", sid="SM900")
    elapsed = time.perf_counter() - started

    assert response.status_code == 200
    assert elapsed < 1.0
    case = Case.objects.get()
    assert case.reference in response.content.decode()
    assert case.messages.get().twilio_sid == "SM900"
    assert "could not publish helpline.casework.tasks.triage_case" in caplog.text  # the broker really was down


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_web_intake_answers_within_a_second_with_the_broker_unreachable(client, unreachable_broker, caplog):
    started = time.perf_counter()
    response = client.post("/api/v1/inquiries/", data={"message": "Pomoć"}, content_type="application/json")
    elapsed = time.perf_counter() - started

    assert response.status_code == 201
    assert elapsed < 1.0
    assert Case.objects.filter(reference=response.json()["reference"]).exists()
    assert "could not publish helpline.casework.tasks.triage_case" in caplog.text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_voice_intake_answers_within_a_second_with_the_broker_unreachable(twilio, unreachable_broker, caplog):
    started = time.perf_counter()
    response = twilio.call(sid="CA900")
    assert response.status_code == 200 and time.perf_counter() - started < 1.0
    assert Case.objects.count() == 1
    assert "could not publish helpline.casework.tasks.triage_case" in caplog.text


@pytest.mark.django_db
def test_health_reports_database_and_broker(client):
    response = client.get("/healthz/")
    assert response.status_code == 200
    body = response.json()
    # No worker or beat runs in a test, so the status is "degraded" here (tests/test_health.py covers it).
    assert body["database"] == "ok" and body["broker"] == "ok" and body["status"] in ("ok", "degraded")


@pytest.mark.django_db
def test_health_reports_an_unreachable_broker_but_stays_up(client, unreachable_broker):
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.json()["broker"] == "unreachable"


def test_in_docker_compose_web_and_every_worker_share_the_intake_spool_on_one_volume():
    """What web spools while PostgreSQL is away must be on the disk of the worker that replays it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    var_dir = re.search(r"VAR_DIR=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    spool_mounts = {
        name: [volume for volume in service.get("volumes", []) if volume.endswith(f":{var_dir}/spool")]
        for name, service in compose["services"].items()
        if name == "web" or "worker" in service.get("command", [])
    }
    assert {"web", "worker", "worker-critical"} <= set(spool_mounts)
    assert all(len(mounts) == 1 for mounts in spool_mounts.values()), spool_mounts
    named_volumes = {mounts[0].split(":")[0] for mounts in spool_mounts.values()}
    assert len(named_volumes) == 1 and named_volumes <= set(compose["volumes"])  # one named volume, not a bind each


def test_health_answers_503_when_the_database_is_unreachable():
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing",
        "ALLOWED_HOSTS": "testserver",
        "DJANGO_SETTINGS_MODULE": "helpline.project.settings",
    }
    script = (
        "import django, json; django.setup();"
        "from django.test import Client; r = Client().get('/healthz/');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 503
    assert outcome["body"]["database"] == "unreachable"


def _worker_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if "worker" in service.get("command", [])}


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def test_a_worker_docker_stops_hands_back_its_tasks_before_it_is_killed(settings):
    """`docker compose stop` (or a redeploy) sends SIGTERM and SIGKILLs after the grace period, 10 s by default. On
    SIGTERM a worker waited for its running tasks without a limit (the soft shutdown applies to a cold shutdown
    only), and was killed mid-task; a task taken (acks_late) then came back only after the broker's visibility
    timeout."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    workers = _worker_services(compose)
    assert {"worker", "worker-critical", "worker-alerts", "worker-model"} <= set(workers)
    for name, service in workers.items():
        assert service["environment"].get("REMAP_SIGTERM") == "SIGQUIT", name  # SIGTERM starts the soft shutdown
        assert _seconds(service.get("stop_grace_period", "10s")) >= settings.CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT + 15
        assert service["environment"]["DATABASE_URL"] == compose["x-app"]["environment"]["DATABASE_URL"]  # merged
    supervised = (ROOT / "deploy" / "supervisord.conf").read_text()
    programs = re.findall(r"^\[program:\w+\]\n(.*?)(?=^\[|\Z)", supervised, re.M | re.S)
    celery_workers = [program for program in programs if "--app helpline worker" in program]
    assert len(celery_workers) == 4
    assert all('REMAP_SIGTERM="SIGQUIT"' in program for program in celery_workers)


def test_a_hung_task_is_stopped_and_the_longest_one_still_finishes():
    from helpline.casework.actions import SECOND_LOOK_SECONDS
    from helpline.project.celery import app

    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    assert soft and hard and SECOND_LOOK_SECONDS * 4 <= soft < hard  # the model's look reads for 20 s, then a batch
    if app.conf.broker_url.startswith("redis://"):
        # A task a killed worker had taken comes back after the visibility timeout: sooner than Redis's hour, but
        # never while a task still runs (the hard limit) or waits for its countdown (a retry: up to 300 s).
        visibility = app.conf.broker_transport_options["visibility_timeout"]
        assert max(hard, 300) < visibility <= 900
