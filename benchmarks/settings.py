"""The service's settings plus the benchmark's bare-insert endpoint; only benchmarks/run.py uses this module."""
from helpline.project.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
