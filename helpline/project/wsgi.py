"""WSGI entry point used by gunicorn."""
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpline.project.settings")
application = get_wsgi_application()

# Build the URLs (and with them the admin, see urls.py) now, while gunicorn starts, not on a citizen's request.
get_resolver().resolve("/healthz/")
