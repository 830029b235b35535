"""The Celery app. Configuration comes from Django settings (CELERY_*), read once in settings.py."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpline.project.settings")

app = Celery("helpline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
