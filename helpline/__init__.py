"""The helpline project: settings, Celery app, the case domain and the intake channels."""
from helpline.project.celery import app as celery_app

__all__ = ["celery_app"]
