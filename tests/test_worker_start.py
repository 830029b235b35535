"""A worker that dies is started again by supervisord or docker, and must be working again within seconds: what it
loads at start is what the restart costs, so it loads the task modules and not what only the web needs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin

ROOT = Path(__file__).resolve().parent.parent
WEB_ONLY = ("import_export.admin", "openpyxl", "numpy", "helpline.console.admin", "helpline.api.views")


def test_a_starting_worker_loads_its_tasks_but_not_the_admin_or_the_web_views():
    script = (
        "import json, sys, django; django.setup();"
        "from helpline.project.celery import app; app.loader.import_default_modules();"
        f"print(json.dumps({{'loaded': [m for m in {WEB_ONLY!r} if m in sys.modules], 'tasks': sorted(app.tasks)}}))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "helpline.project.settings", "CELERY_SKIP_CHECKS": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["loaded"] == []
    assert "helpline.casework.tasks.triage_case" in outcome["tasks"]
    assert "notifications.tasks.send_notification" in outcome["tasks"]


@pytest.mark.django_db
def test_the_web_still_has_every_apps_admin(client):
    client.get("/healthz/")  # any request: the URLs, and with them the admin modules, are loaded
    registered = {model._meta.label for model in admin.site._registry}
    assert {"helpline.Case", "triage.TriageRule", "auth.User"} <= registered, registered
