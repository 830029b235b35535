"""/healthz/ tells an operator whether the work behind intake runs: beat, a consumer on every queue, each worker.
And the log a night-shift supervisor reads: one clock, no line per idle tick."""
import datetime as dt
import logging
import os
import time
from pathlib import Path

import pytest
import time_machine
from celery.signals import worker_shutting_down

from helpline.cases import dispatch, services
from helpline.cases.tasks import BEAT_HEARTBEAT, queue_heartbeat_name, worker_heartbeat_name
from helpline.operations.logs import UTCFormatter
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


WORKERS = ("critical@centre", "worker@centre")


def everything_beats(*, except_queues: tuple[str, ...] = (), beat: bool = True, workers: tuple[str, ...] = WORKERS):
    """What a running stack writes every two seconds: beat's heartbeat, each worker's and each queue's."""
    if beat:
        services.record_heartbeat(BEAT_HEARTBEAT)
    for hostname in workers:
        services.record_heartbeat(worker_heartbeat_name(hostname))
    for queue in dispatch.QUEUES:
        if queue not in except_queues:
            services.record_heartbeat(queue_heartbeat_name(queue))


def test_health_is_ok_while_beat_every_queue_and_every_worker_beat(client, clock):
    everything_beats()
    clock.shift(3)

    response = client.get("/healthz/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok", body["problems"]
    assert body["heartbeat_age_seconds"] == 3.0
    assert set(body["queues"].values()) == {"ok"} and set(body["queues"]) == set(dispatch.QUEUES)
    assert body["workers"] == {"critical@centre": "ok", "worker@centre": "ok"}


def test_work_that_stopped_moving_makes_health_degraded_though_every_process_beats(client, clock, settings, tmp_path):
    # A hung worker child, a triage that fails on every try, a spooled file the replay cannot store: every heartbeat
    # was fresh, so /healthz/ said ok while a contact waited, untriaged, for an hour.
    settings.INTAKE_SPOOL_DIR = tmp_path
    CaseFactory(status="new")
    spooled = tmp_path / "sms-0123.json"
    spooled.write_text("{}")
    os.utime(spooled, (START.timestamp(), START.timestamp()))
    clock.shift(dt.timedelta(minutes=5))
    everything_beats()
    body = client.get("/healthz/").json()
    assert body["status"] == "degraded"
    assert body["progress"]["oldest_untriaged_seconds"] == 300
    assert any("not triaged for 300 s" in problem for problem in body["problems"])
    assert any("1 spooled contact(s) not stored" in problem for problem in body["problems"])


def test_production_whose_alerts_are_only_logged_makes_health_degraded(client, clock, settings):
    # Every staff alert "sent" to the log while everything beats: a case assigned to someone who never hears of it.
    settings.DEPLOYMENT, settings.SMS_BACKEND = "production", "console"
    everything_beats()

    body = client.get("/healthz/").json()

    assert body["status"] == "degraded"
    assert "alerts go nowhere: SMS_BACKEND=console" in body["problems"]

    settings.SMS_BACKEND = "twilio"
    assert client.get("/healthz/").json()["status"] == "ok"


def test_a_demo_with_the_console_backend_is_healthy(client, clock, settings):
    settings.DEPLOYMENT, settings.SMS_BACKEND = "demo", "console"
    everything_beats()

    body = client.get("/healthz/").json()

    assert body["status"] == "ok", body["problems"]


def test_an_escalation_ladder_that_stopped_moving_makes_health_degraded(client, clock, settings):
    # Every process beat while a step failed on every tick: a case nobody took was not chased, and health said ok.
    waiting = CaseFactory(status="assigned", escalation_due_at=START)
    clock.shift(45)
    everything_beats()
    body = client.get("/healthz/").json()
    assert body["status"] == "ok", body["problems"]  # a tick or two late is not a fault
    assert body["progress"]["oldest_overdue_escalation_step_seconds"] == 45

    clock.shift(30)
    everything_beats()
    body = client.get("/healthz/").json()
    assert body["status"] == "degraded"
    assert "an escalation step due 75 s ago not yet run" in body["problems"]

    settings.HEALTH_ESCALATION_MAX_LATE_SECONDS = 120  # a centre that tolerates more
    assert client.get("/healthz/").json()["status"] == "ok"

    waiting.escalation_due_at = START + dt.timedelta(minutes=5)  # the step ran: the next one is due later
    waiting.save(update_fields=["escalation_due_at"])
    settings.HEALTH_ESCALATION_MAX_LATE_SECONDS = 60
    body = client.get("/healthz/").json()
    assert body["status"] == "ok" and body["progress"]["oldest_overdue_escalation_step_seconds"] is None


def test_replies_to_citizens_stuck_in_the_queue_make_health_degraded_but_a_slow_broadcast_does_not(client, clock):
    # Staff alerts were watched; a worker's answer to a citizen, or a crisis event's, could wait an hour unseen.
    from notifications.models import Notification

    case = CaseFactory(status="assigned")
    for key, kind in (("reply:1", "citizen_reply"), ("crisis-answer:1:1", "crisis_answer"),
                      ("crisis-broadcast:1:1", "crisis_broadcast")):  # fmt: skip
        Notification.objects.create(idempotency_key=key, to_number="+38761200401", body="x", kind=kind, case=case)
    clock.shift(dt.timedelta(minutes=2))
    everything_beats()
    body = client.get("/healthz/").json()
    assert body["status"] == "ok", body["problems"]  # the number's rate is shared; two minutes is not a fault
    assert body["progress"]["oldest_queued_citizen_reply_seconds"] == 120

    clock.shift(dt.timedelta(minutes=4))
    everything_beats()
    body = client.get("/healthz/").json()
    assert body["status"] == "degraded"
    assert body["problems"] == ["a reply to a citizen due 360 s ago not yet sent"]

    Notification.objects.filter(kind__in=["citizen_reply", "crisis_answer"]).update(status="sent")
    body = client.get("/healthz/").json()
    assert body["status"] == "ok", body["problems"]  # the broadcast, still queued, is not counted
    assert body["progress"]["oldest_queued_citizen_reply_seconds"] is None


def test_a_spooled_contact_stored_while_health_looks_does_not_make_the_answer_unreadable(
    client, clock, settings, tmp_path, monkeypatch
):
    # After an outage the replay stores and deletes spooled files while /healthz/ lists them: a file gone between
    # the listing and its stat() made the whole answer "waiting work unreadable".
    settings.INTAKE_SPOOL_DIR = tmp_path
    for name in ("sms-0001.json", "sms-0002.json"):
        (tmp_path / name).write_text("{}")
        os.utime(tmp_path / name, (START.timestamp(), START.timestamp()))
    listed = Path.glob

    def listed_then_one_replayed(directory, pattern):
        found = list(listed(directory, pattern))
        (tmp_path / "sms-0001.json").unlink(missing_ok=True)  # the replay stored it meanwhile
        return iter(found)

    monkeypatch.setattr(Path, "glob", listed_then_one_replayed)
    clock.shift(5)
    everything_beats()

    body = client.get("/healthz/").json()

    assert body["status"] == "ok", body["problems"]
    assert body["progress"]["oldest_spooled_seconds"] == 5


@pytest.mark.parametrize("allowed", [["sos.example.ba"], [".example.ba"], ["*"]])
def test_the_containers_own_health_check_is_answered_whatever_the_allowed_hosts(client, clock, settings, allowed):
    # docker-compose's web healthcheck asks http://127.0.0.1:8000/healthz/; with ALLOWED_HOSTS set for production
    # it got 400, and the container was marked unhealthy while it served everyone.
    settings.ALLOWED_HOSTS = allowed
    everything_beats()

    response = client.get("/healthz/", HTTP_HOST="127.0.0.1:8000", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert client.get("/healthz/", HTTP_HOST="[::1]:8000", REMOTE_ADDR="::1").status_code == 200


def test_the_host_check_still_holds_for_other_addresses_and_other_pages(client, clock, settings):
    settings.ALLOWED_HOSTS = ["sos.example.ba"]
    everything_beats()

    assert client.get("/healthz/", HTTP_HOST="evil.example", REMOTE_ADDR="203.0.113.9").status_code == 400
    assert client.get("/inquiry/", HTTP_HOST="127.0.0.1:8000", REMOTE_ADDR="127.0.0.1").status_code == 400
    assert client.get("/healthz/", HTTP_HOST="sos.example.ba", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_a_beat_heartbeat_older_than_a_few_seconds_makes_health_degraded_but_still_200(client, clock):
    everything_beats()
    clock.shift(62)
    everything_beats(beat=False)  # the workers run on; beat stopped a minute ago

    response = client.get("/healthz/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["problems"] == ["beat heartbeat 62 s old"]


def test_beat_that_never_ran_is_reported(client, clock):
    everything_beats(beat=False)

    body = client.get("/healthz/").json()

    assert body["status"] == "degraded" and "beat has never run" in body["problems"]


def test_a_queue_nobody_consumes_makes_health_degraded_and_is_named(client, clock):
    everything_beats()
    clock.shift(30)
    everything_beats(except_queues=("triage", "notifications", "retries", "default"))  # the general worker is gone

    body = client.get("/healthz/").json()

    assert body["status"] == "degraded"
    assert body["queues"]["triage"] == "no consumer" and body["queues"]["critical"] == "ok"
    assert "no worker consumes queue triage" in body["problems"]


def test_a_killed_worker_is_reported_missing_until_it_beats_again(client, clock):
    everything_beats()
    clock.shift(30)
    everything_beats(workers=("worker@centre",))  # critical@centre was SIGKILLed 30 s ago; its queues are served

    body = client.get("/healthz/").json()
    assert body["status"] == "degraded"
    assert body["workers"]["critical@centre"] == "missing"
    assert body["problems"] == ["worker critical@centre silent for 30 s"]

    everything_beats()  # restarted under the same name
    assert client.get("/healthz/").json()["status"] == "ok"


def test_a_worker_gone_without_a_goodbye_is_forgotten_after_an_hour(client, clock):
    everything_beats(workers=("critical@centre", "worker@centre", "worker@old-server"))
    clock.shift(2 * 3600)
    everything_beats()

    body = client.get("/healthz/").json()

    assert "worker@old-server" not in body["workers"]
    assert body["status"] == "ok"


def test_a_worker_stopped_on_purpose_is_not_reported_missing(client, clock):
    everything_beats()
    worker_shutting_down.send(sender="critical@centre", sig="SIGTERM", how="Warm", exitcode=0)
    clock.shift(30)
    everything_beats(workers=("worker@centre",))

    body = client.get("/healthz/").json()

    assert body["workers"] == {"worker@centre": "ok"}
    assert body["status"] == "ok"


def test_an_unreachable_broker_makes_health_degraded_within_a_second(client, clock, unreachable_broker):
    everything_beats()

    began = time.perf_counter()
    response = client.get("/healthz/")

    assert time.perf_counter() - began < 1.5
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["problems"][0] == "the broker is unreachable"


def test_by_default_a_task_that_succeeded_is_not_logged_but_one_that_failed_is(caplog):
    caplog.set_level(logging.INFO)  # the root level; Celery's per-task logger keeps its own (WARNING by default)
    trace = logging.getLogger("celery.app.trace")
    done = {"name": "helpline.casework.tasks.triage_case", "id": "b1", "runtime": 0.01, "return_value": None}
    trace.info("Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", done)
    trace.error("Task %(name)s[%(id)s] raised unexpected: %(exc)s",
                {"name": "helpline.casework.tasks.triage_case", "id": "b2", "exc": "OperationalError"})  # fmt: skip

    assert [record.getMessage() for record in caplog.records] == [
        "Task helpline.casework.tasks.triage_case[b2] raised unexpected: OperationalError"
    ]


def test_with_per_task_lines_on_the_periodic_ticks_are_still_left_out_but_their_failures_are_not(caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="celery.app.trace")  # CELERY_TASK_LOG_LEVEL=INFO
    trace = logging.getLogger("celery.app.trace")
    success = "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"

    def succeeded(name: str, task_id: str) -> dict:
        return {"name": name, "id": task_id, "runtime": 0.01, "return_value": None}

    trace.info(success, succeeded("notifications.tasks.run_escalations", "a1"))
    trace.info(success, succeeded("helpline.cases.tasks.record_heartbeat", "a2"))
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "run-escalations",
                                          "notifications.tasks.run_escalations")  # fmt: skip
    trace.info(success, succeeded("helpline.casework.tasks.triage_case", "b1"))
    trace.error("Task %(name)s[%(id)s] raised unexpected: %(exc)s",
                {"name": "notifications.tasks.run_escalations", "id": "a3", "exc": "OperationalError"})  # fmt: skip

    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 2
    assert "triage_case[b1] succeeded" in logged[0]
    assert "run_escalations[a3] raised unexpected" in logged[1]


def test_log_lines_carry_utc_with_the_offset_whatever_the_local_time_zone():
    record = logging.makeLogRecord({"msg": "ready", "levelname": "INFO", "name": "celery.apps.worker"})
    record.created = dt.datetime(2026, 3, 29, 1, 30, 0, 250000, tzinfo=dt.UTC).timestamp()  # CET becomes CEST at 1:00
    record.msecs = 250

    line = UTCFormatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record)

    assert line == "2026-03-29T01:30:00.250+00:00 INFO celery.apps.worker ready"


def test_a_worker_triaging_without_its_model_makes_health_degraded_until_it_is_restarted_with_one(
    client, clock, monkeypatch, tmp_path
):
    from triage import semantic_model
    from triage.services import classify

    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "missing.npz")
    semantic_model.forget_semantic_model()
    try:
        everything_beats()
        classify("Muž me tuče, pomozite")  # a worker's triage, by the rules alone

        body = client.get("/healthz/").json()
        assert body["status"] == "degraded" and body["semantic_triage"] == "rules only in 1 process(es)"
        assert any("triaging by the rules alone" in problem for problem in body["problems"])

        # Restarted with its model: the old process's report ages out within a few minutes.
        monkeypatch.setattr(semantic_model, "head_file", None)
        semantic_model.forget_semantic_model()
        classify("Muž me tuče, pomozite")
        clock.shift(200)
        everything_beats()
        body = client.get("/healthz/").json()
        assert body["status"] == "ok" and body["semantic_triage"] == "ok", body["problems"]
    finally:
        semantic_model.forget_semantic_model()


def test_a_worker_still_without_its_model_minutes_later_is_still_reported(client, clock, monkeypatch, tmp_path):
    """Its first triage reported "rules only"; so must its later ones, or /healthz/ said "ok" three minutes on."""
    from triage import semantic_model
    from triage.services import classify

    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "missing.npz")
    monkeypatch.setattr(time, "monotonic", time.time)  # the report's own clock moves with the test's
    semantic_model.forget_semantic_model()
    try:
        classify("Muž me tuče, pomozite")
        for _ in range(5):  # ten minutes of triage by the rules alone, in the same process
            clock.shift(120)
            classify("Ne mogu više, sve je spremno")
        everything_beats()

        body = client.get("/healthz/").json()
        assert body["status"] == "degraded" and body["semantic_triage"] == "rules only in 1 process(es)"
    finally:
        semantic_model.forget_semantic_model()


def test_a_worker_without_its_model_is_still_reported_through_a_quiet_night(client, clock, monkeypatch, tmp_path):
    """It reported "rules only" when its load failed; with no triage for three minutes the report aged out and
    /healthz/ said "ok", though the next case it triages is read by the rules alone. The ticks it runs meanwhile
    keep the report fresh."""
    from helpline.cases.tasks import record_heartbeat
    from triage import semantic_model
    from triage.services import classify

    monkeypatch.setattr(semantic_model, "head_file", tmp_path / "missing.npz")
    monkeypatch.setattr(time, "monotonic", time.time)  # the report's own clock moves with the test's
    semantic_model.forget_semantic_model()
    try:
        classify("Muž me tuče, pomozite")  # the process's one triage of the night
        for _ in range(10):  # twenty quiet minutes in which the process runs only its periodic tasks
            clock.shift(120)
            record_heartbeat.apply()
        everything_beats()

        body = client.get("/healthz/").json()
        assert body["status"] == "degraded" and body["semantic_triage"] == "rules only in 1 process(es)"
    finally:
        semantic_model.forget_semantic_model()


def test_a_centre_that_turned_the_model_off_sees_so_on_healthz_without_an_alarm(client, clock, settings):
    from triage import semantic_model
    from triage.services import classify

    settings.SEMANTIC_TRIAGE = False
    semantic_model.forget_semantic_model()
    try:
        everything_beats()
        classify("Muž me tuče, pomozite")

        body = client.get("/healthz/").json()
        assert body["status"] == "ok", body["problems"]
        assert body["semantic_triage"] == "turned off: triage by the rules alone (SEMANTIC_TRIAGE=false)"
    finally:
        semantic_model.forget_semantic_model()


def test_a_worker_beats_for_itself_and_each_of_its_queues_in_one_statement(client, clock, django_assert_num_queries):
    names = [worker_heartbeat_name("worker@centre"), *(queue_heartbeat_name(queue) for queue in dispatch.QUEUES)]
    with django_assert_num_queries(1):
        services.record_heartbeats(names)  # the first beat: every row new
    clock.shift(60)
    with django_assert_num_queries(1):
        services.record_heartbeats(names)  # a minute later: every row refreshed
    services.record_heartbeat(BEAT_HEARTBEAT)
    clock.shift(1)

    body = client.get("/healthz/").json()
    assert body["workers"] == {"worker@centre": "ok"} and set(body["queues"].values()) == {"ok"}, body["problems"]
