"""Every task lands on a queue some worker consumes: by its route, and by the queue= the code passes when it
publishes. A task sent to a queue nobody reads is a case nobody triages."""
import ast
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from helpline.cases import dispatch
from helpline.project.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
APPS = ("helpline", "triage", "notifications")


def _consumed_queues(text: str) -> list[set[str]]:
    return [set(found.split(",")) for found in re.findall(r"--queues[\"', ]+([a-z,]+)", text)]


def _workers(text: str) -> list[tuple[set[str], str]]:
    """Each worker command's queues and pool (Celery's default, prefork, where none is given)."""
    commands = [line for line in text.splitlines() if "--queues" in line]
    pools = [re.search(r"--pool[\"', ]+([a-z]+)", line) for line in commands]
    return [
        (queues, pool.group(1) if pool else "prefork")
        for queues, pool in zip(_consumed_queues("\n".join(commands)), pools, strict=True)
    ]


def test_every_task_has_a_route_to_a_known_queue():
    celery_app.autodiscover_tasks(list(APPS), force=True)
    celery_app.loader.import_default_modules()
    ours = [name for name in celery_app.tasks if name.split(".")[0] in APPS]
    assert "helpline.casework.tasks.triage_case" in ours
    routes = django_settings.CELERY_TASK_ROUTES
    assert [name for name in ours if name not in routes] == []
    assert {route["queue"] for route in routes.values()} <= set(dispatch.QUEUES)
    # The escalation tick never waits behind a backlog of notifications.
    assert routes["notifications.tasks.run_escalations"]["queue"] == dispatch.ESCALATION_QUEUE
    assert django_settings.CELERY_BEAT_SCHEDULE["run-escalations"]["options"]["expires"] <= 5
    # So do the welfare visits nobody has taken, and the hand-on of cases of someone who left.
    assert routes["helpline.welfare.tasks.escalate_welfare_visits"]["queue"] == dispatch.ESCALATION_QUEUE
    assert routes["notifications.tasks.hand_on_cases_of_the_departed"]["queue"] == dispatch.ESCALATION_QUEUE


@pytest.mark.parametrize("path", ["deploy/supervisord.conf", "docker-compose.yml"])
def test_every_queue_is_consumed_by_a_worker_and_critical_work_has_workers_of_its_own(path):
    workers = _workers((ROOT / path).read_text())
    assert set().union(*(queues for queues, _pool in workers)) == set(dispatch.QUEUES)
    # Critical triage and the escalation tick: one process of their own, never behind a backlog or a send.
    assert ({dispatch.CRITICAL_QUEUE, dispatch.ESCALATION_QUEUE}, "prefork") in workers
    # The SMS and calls about critical cases: sends that wait on Twilio side by side, in threads.
    assert ({dispatch.ALERTS_QUEUE}, "threads") in workers
    # Should either be down, the general worker takes their queues too.
    general = max((queues for queues, _pool in workers), key=len)
    assert {dispatch.CRITICAL_QUEUE, dispatch.ALERTS_QUEUE, dispatch.ESCALATION_QUEUE} <= general


def _queue_arguments(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "queue":
                    yield keyword.value


def test_the_queue_the_code_passes_when_it_publishes_is_always_a_known_one():
    """A literal queue name must be one of dispatch.QUEUES; a named one must be dispatch's own constant."""
    known_names = {name for name in vars(dispatch) if name.endswith("_QUEUE")}
    checked = 0
    for path in [p for app in APPS for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]:
        for value in _queue_arguments(ast.parse(path.read_text(), str(path))):
            checked += 1
            if isinstance(value, ast.Constant):
                assert value.value in dispatch.QUEUES, f"{path}: queue={value.value!r}"
            elif isinstance(value, ast.Name) and value.id.endswith("_QUEUE"):
                assert value.id in known_names, f"{path}: queue={value.id}"
    assert checked > 5


def test_publishing_to_an_unknown_queue_fails_loudly_instead_of_losing_the_task():
    with pytest.raises(ValueError, match="unknown queue"):
        dispatch.publish("helpline.casework.tasks.triage_case", 1, queue="critcal")


def test_ringing_doorbells_from_the_request_path_builds_celerys_result_backend_once_at_most(queues, monkeypatch):
    """Each publish runs in a thread of its own; Celery builds a result backend per thread unless it may share one,
    and building one scans every installed package's entry points: milliseconds of CPU on every contact."""
    built = []
    build = celery_app._get_backend
    monkeypatch.setattr(celery_app, "_get_backend", lambda: built.append(1) or build())
    for case_id in (1, 2, 3):
        assert dispatch.publish("helpline.casework.tasks.triage_case", case_id, queue=dispatch.TRIAGE_QUEUE)
    assert len(built) <= 1
    assert queues.size(dispatch.TRIAGE_QUEUE) == 3
