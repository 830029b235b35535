"""The helpline project: settings, Celery app, the case domain and the intake channels."""
import os

# Set before anything imports numpy. Its OpenBLAS would otherwise start a thread per core for the triage model's
# small matrix products and keep them spinning between products, on the core another process needs: measured on
# a 2-core box, the model's CPU a message fell from 98 to 51 ms with one thread, at the same wall time. Workers
# get their parallelism from processes. An operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from helpline.project.celery import app as celery_app

__all__ = ["celery_app"]
