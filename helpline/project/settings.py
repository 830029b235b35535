"""Settings for the helpline service, read once from the environment (django-environ).

With no environment at all the service runs on embedded defaults: SQLite (WAL) and a filesystem Celery broker
under var/, so `make run` works on a fresh machine with Python alone. DATABASE_URL and CELERY_BROKER_URL point
it at PostgreSQL and Redis.
"""
import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path

import environ
from celery.schedules import crontab
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent  # the repository: helpline/project/settings.py

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real deployments set the environment

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_key(name: str, make: Callable[[], str]) -> str:
    """A key generated once under var/ for a development machine; production sets it in the environment."""
    key_file = VAR_DIR / name
    if not key_file.exists():
        key_file.write_text(make())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _local_key("secret_key", lambda: secrets.token_urlsafe(50))
DEBUG = env.bool("DEBUG", default=False)

# "production" makes the keys below mandatory: a deployment must never fall back to a key file that sits next to
# the data it protects (and is copied into the same backups).
DEPLOYMENT = env.str("DEPLOYMENT", default="development")


def _required_key(variable: str, local_file: str, make: Callable[[], str]) -> str:
    value = env.str(variable, default="")
    if value:
        return value
    if DEPLOYMENT == "production":
        raise ImproperlyConfigured(
            f"{variable} is not set. In production the keys that protect citizens' data come from the environment; "
            f"generate one with `python manage.py generate_keys` and keep it apart from the database and its "
            f"backups (README, 'Keys')."
        )
    return _local_key(local_file, make)


# Field-level encryption (helpline.cases.encryption): Fernet keys, comma separated, the first encrypts and all
# decrypt, so a key is rotated by putting a new one first and running `manage.py rotate_keys`.
FIELD_ENCRYPTION_KEYS = [
    key.strip()
    for key in _required_key(
        "FIELD_ENCRYPTION_KEYS", "field_encryption_key", lambda: Fernet.generate_key().decode()
    ).split(",")
    if key.strip()
]
for _position, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS: key {_position} is not a Fernet key (32 bytes, url-safe base64); "
            f"`python manage.py generate_keys` makes one."
        ) from None
# The keyed hash (HMAC-SHA256) of phone numbers, e-mails and search words: lookups without clear values.
BLIND_INDEX_KEY = _required_key("BLIND_INDEX_KEY", "blind_index_key", lambda: secrets.token_urlsafe(48))

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The https origin Twilio calls, e.g. https://sos.example.ba. Twilio signs the public URL; behind a proxy
# Django sees another scheme and host, so signatures are checked against this origin plus the request path.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    # The admin without autodiscovery at start: helpline/project/urls.py loads the admin modules, so workers and
    # beat, which never serve a URL, skip them (import-export, openpyxl and numpy: about half their start time).
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    # Staff API tokens that expire, one per device, revoked by logout (helpline.access).
    "knox",
    # Failed logins counted in the database, per username and address, on every way in (helpline.access.lockout).
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "phonenumber_field",
    "django_htmx",
    "csp",
    "simple_history",
    "helpline.access",
    "import_export",
    "helpline.cases",
    "helpline.intake",
    "helpline.console",
    "helpline.drill",
    "helpline.operations",
    "helpline.welfare",
    "helpline.visits",
    "helpline.privacy",
    "triage",
    "notifications",
]

MIDDLEWARE = [
    # The container's health check asks http://127.0.0.1:8000/healthz/: answered whatever ALLOWED_HOSTS says.
    "helpline.project.local_health_check.LoopbackHealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: an oversized one is answered 413 (helpline/project/request_limits.py).
    "helpline.project.request_limits.RequestBodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Records who made each change kept in history (escalation policies), as the admin's user.
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "helpline.project.urls"
WSGI_APPLICATION = "helpline.project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "helpline.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web, worker and beat processes read while one writes; IMMEDIATE takes the write lock at
    # BEGIN, so two writers queue for `timeout` seconds instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # A PostgreSQL that hangs (frozen, or its host gone) must not hang a request: connecting gives up after
    # DATABASE_CONNECT_TIMEOUT seconds (libpq's least is 2), and then the intake spools the contact and answers.
    # TCP keepalives and tcp_user_timeout drop an open connection to a host that stopped answering within about
    # 20 s instead of the kernel's two hours; gunicorn's 30 s timeout is the last resort for a frozen server process.
    DATABASES["default"].setdefault("OPTIONS", {})
    for option, value in {
        "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=3),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 2,
        "tcp_user_timeout": 20_000,  # milliseconds
    }.items():
        DATABASES["default"]["OPTIONS"].setdefault(option, value)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One process-local cache by default; set CACHE_URL (e.g. redis://redis:6379/1) when several web processes
# must share throttling counters.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # The throttles read the cache on the public intake: a Redis down or frozen must cost a request at most a
    # fraction of a second, after which the process uses a local cache for a while (helpline/project/cache.py).
    CACHES["default"]["BACKEND"] = "helpline.project.cache.FailOpenRedisCache"
    CACHES["default"].setdefault("OPTIONS", {}).update({"socket_connect_timeout": 0.2, "socket_timeout": 0.2})

# Contacts that arrived while the database was unreachable wait here, one file each, until the replay stores them
# (helpline/intake/spool.py). The web and the process that replays (worker or `manage.py replay_intake_spool`)
# must see the same directory.
INTAKE_SPOOL_DIR = Path(env.str("INTAKE_SPOOL_DIR", default=str(VAR_DIR / "spool")))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Language and time -----------------------------------------------------------------------------------
LANGUAGE_CODE = "bs"
LANGUAGES = [("bs", _("Bosnian")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "helpline" / "locale"]
TIME_ZONE = "Europe/Sarajevo"
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Security --------------------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
# No other site ever learns where a person came from (the quick-exit link above all). Not "no-referrer": with it,
# Chromium sends "Origin: null" on form posts and Django's CSRF check refuses every submitted form.
SECURE_REFERRER_POLICY = "same-origin"
# A citizen's form refused for its token (cookies blocked or cleared) comes back with what they wrote.
CSRF_FAILURE_VIEW = "helpline.project.errors.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_HTTPS_PROXY", False) else None
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("BEHIND_HTTPS_PROXY", default=False)
# Production (README, "Production settings"): HTTPS only, and browsers told so. Off by default, because a
# development machine serves plain http and an HSTS header, once seen, cannot be taken back for its max-age.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]  # the container's own health check asks over plain http
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# A strict Content Security Policy (django-csp): scripts and styles only from our own static files, so an
# injected message text can never run in a social worker's browser. The API docs use drf-spectacular's
# split view for the same reason (its script is a file, not inline).
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "media-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- REST framework --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "inquiries": env.str("INQUIRY_THROTTLE_RATE", default="10/minute"),
        "inquiries_daily": env.str("INQUIRY_DAILY_CAP", default="200/day"),
        "inquiry_status": env.str("INQUIRY_STATUS_THROTTLE_RATE", default="60/minute"),
        "login": env.str("LOGIN_THROTTLE_RATE", default="10/minute"),
    },
    # How many proxies stand before the app; 0 trusts no X-Forwarded-For, so a client cannot dodge the
    # per-IP throttle by sending its own header.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "SOS helpline API",
    "DESCRIPTION": "Public inquiries for citizens; cases, roster and figures for staff.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's assets come from the drf-spectacular-sidecar package: no internet needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation documents the errors it can answer with (401, 403, 404, 400, 413, 429): helpline/api/schema.py.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "helpline.api.schema.document_error_responses",
    ],
}

# --- Celery ----------------------------------------------------------------------------------------------
# The embedded broker is kombu's SQLAlchemy transport on an SQLite file of its own (helpline.operations.broker):
# a message is a row written and taken inside a transaction, so no process can read one half-written. It has no
# visibility timeout: a message taken by a worker that dies is gone, which is acceptable only because the
# database is the truth and periodic sweeps find work whose message was lost.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"sqlite:///{VAR_DIR / 'broker.sqlite3'}")
IS_EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("sqlite://")
if IS_EMBEDDED_BROKER:
    import helpline.operations.broker  # noqa: F401  (registers the sqlite:// broker scheme with kombu)

    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    # Intake must answer within a second even when the broker is gone: fail fast, the sweep recovers.
    # visibility_timeout: a message a worker took and never acknowledged (acks_late, and the worker was SIGKILLed,
    # ran out of memory or lost its host) is handed out again after this; Redis's default is an hour. It must stay
    # above the hard time limit and the longest countdown a task is published with (a retry's, 300 s at most:
    # notifications/tasks.py), or a task still running or waiting is handed to a second worker as well.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 5, "visibility_timeout": 600}
CELERY_BROKER_CONNECTION_TIMEOUT = 0.5
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_TASK_IGNORE_RESULT = True
# There is no result backend (Celery's stateless "disabled" one), so every thread may share it. Unshared, Celery
# builds it anew in each thread that sends a task, scanning every installed package's entry points to do so: about
# 7 ms of CPU per contact, since the request path publishes from a short-lived thread (helpline/cases/dispatch.py).
# A real result backend set one day must be thread-safe too (Redis's is: it uses a connection pool).
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# On Redis a worker takes one message at a time, so a long task never holds others back. The embedded broker runs
# Celery's blocking loop, which fetches again only after a 2 s wait once its prefetch is used up (measured: one
# triage every 2 s per worker with a multiplier of 1): there a worker takes up to 16 at a time. A worker killed
# loses those; the sweeps (untriaged cases, queued notifications) send them again within a minute.
CELERY_WORKER_PREFETCH_MULTIPLIER = 16 if IS_EMBEDDED_BROKER else 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Every task names its queue (a test checks): a surge on one never starves another.
CELERY_TASK_ROUTES = {
    # Beat's heartbeat rides the tick queue of the critical worker, which is never niced or behind a backlog: a
    # late heartbeat must mean beat is missing. (Each queue's consumer has a heartbeat of its own.)
    "helpline.cases.tasks.record_heartbeat": {"queue": "escalation"},
    "helpline.casework.tasks.triage_case": {"queue": "triage"},
    "helpline.casework.tasks.sweep_untriaged": {"queue": "default"},
    # The model's second look has a worker of its own (deploy/supervisord.conf): triage never waits for it.
    "helpline.casework.tasks.second_look": {"queue": "model"},
    # Waiting cases given out as room frees up: on the tick queue, so a backlog of triage never delays it.
    "helpline.casework.tasks.assign_waiting": {"queue": "escalation"},
    "triage.tasks.generate_shifts": {"queue": "default"},
    "notifications.tasks.send_notification": {"queue": "notifications"},
    "helpline.welfare.tasks.advance_welfare_campaigns": {"queue": "notifications"},
    "helpline.welfare.tasks.escalate_welfare_visits": {"queue": "escalation"},
    "notifications.tasks.relay_notifications": {"queue": "default"},
    # The escalation tick is how an unanswered case reaches someone: it has its own queue and the critical
    # worker takes it, never behind a surge's backlog of notifications (the surge benchmark measured 42 s there).
    "notifications.tasks.run_escalations": {"queue": "escalation"},
    "notifications.tasks.send_roster_gap_report": {"queue": "notifications"},
    "notifications.tasks.hand_on_cases_of_the_departed": {"queue": "escalation"},
    "notifications.tasks.send_surge_digests": {"queue": "notifications"},
    "notifications.tasks.send_crisis_broadcast": {"queue": "notifications"},
    "notifications.tasks.ring_stalled_broadcasts": {"queue": "default"},
    # Supervisors must hear that staff alerts are failing even while the notifications queue is backed up.
    "notifications.tasks.alert_on_failing_delivery": {"queue": "escalation"},
    "helpline.intake.tasks.replay_intake_spool": {"queue": "default"},
    "helpline.intake.tasks.recover_missed_contacts": {"queue": "default"},
    # A worker overdue on a home visit is chased on the same queue as an unanswered case.
    "helpline.visits.tasks.run_visit_escalations": {"queue": "escalation"},
    "helpline.visits.tasks.purge_visit_addresses": {"queue": "default"},
    "helpline.welfare.tasks.purge_visit_notices": {"queue": "default"},
    "helpline.privacy.tasks.anonymise_expired_cases": {"queue": "default"},
    "helpline.privacy.tasks.clear_expired_sessions": {"queue": "default"},
}
# Tasks outside an app's tasks.py (the case-work layer is not a Django app of its own).
CELERY_IMPORTS = ["helpline.casework.tasks"]
# A stopped worker gives its running tasks this long to finish, then hands back what is left (acks_late). Celery
# applies it to a cold shutdown only, so the workers run with REMAP_SIGTERM=SIGQUIT (docker-compose.yml,
# deploy/supervisord.conf): SIGTERM, what docker and supervisord send, then starts it. A warm shutdown, Celery's
# default on SIGTERM, would wait for the tasks without a limit, until the SIGKILL.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 10.0
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = True
# A hung task (a socket without a timeout, a lock never granted) holds a pool process for ever: two on the critical
# worker stop every ladder. The longest task that works is the model's second look, which reads batches for 20 s
# (SECOND_LOOK_SECONDS) and then finishes its batch (a second or two; the model reads a message in tens of ms);
# the spool replay and a crisis broadcast go on where they stopped in their next run; the daily anonymisation has
# an hour of its own (helpline/privacy/tasks.py).
# SoftTimeLimitExceeded is raised in the task first, then the process is killed; below the broker's visibility
# timeout. The alerts worker's thread pool does not enforce them (its sends time out after 10 s themselves).
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Often, so /healthz/ can call beat missing after a few seconds (HEALTH_BEAT_MAX_AGE_SECONDS).
    "heartbeat": {"task": "helpline.cases.tasks.record_heartbeat", "schedule": 2.0, "options": {"expires": 5}},
    "sweep-untriaged": {"task": "helpline.casework.tasks.sweep_untriaged", "schedule": 10.0},
    # Cases waiting for room go to whoever has it within about two seconds (a no-op query when nobody waits).
    "assign-waiting": {"task": "helpline.casework.tasks.assign_waiting", "schedule": 2.0, "options": {"expires": 5}},
    "generate-shifts": {"task": "triage.tasks.generate_shifts", "schedule": 3600.0},
    # Each triage rings the model worker; this ring finds what a lost doorbell or a killed worker left (one
    # indexed query when nothing waits). Expired rings are dropped: a backlog needs one ring, not many.
    "second-look": {"task": "helpline.casework.tasks.second_look", "schedule": 10.0, "options": {"expires": 10}},
    # Every second: one indexed query, and a due step runs at most about a second late.
    # A tick not started within 5 s is dropped: the next one does the same work, and ticks must not pile up.
    "run-escalations": {"task": "notifications.tasks.run_escalations", "schedule": 1.0, "options": {"expires": 5}},
    "hand-on-cases-of-the-departed": {
        "task": "notifications.tasks.hand_on_cases_of_the_departed", "schedule": 60.0, "options": {"expires": 55}
    },
    "relay-notifications": {"task": "notifications.tasks.relay_notifications", "schedule": 10.0},
    # In surge mode, one message a minute per person instead of one per case (a no-op otherwise).
    "surge-digests": {"task": "notifications.tasks.send_surge_digests", "schedule": 60.0},
    # A crisis broadcast whose doorbell was lost is rung again (a no-op query otherwise).
    "stalled-broadcasts": {"task": "notifications.tasks.ring_stalled_broadcasts", "schedule": 30.0},
    "delivery-failure-alert": {
        "task": "notifications.tasks.alert_on_failing_delivery", "schedule": 30.0, "options": {"expires": 25}
    },
    # Stores contacts spooled while the database was unreachable; a no-op (one directory listing) otherwise.
    "replay-intake-spool": {"task": "helpline.intake.tasks.replay_intake_spool", "schedule": 10.0},
    # Contacts Twilio took while our webhooks could not be reached (helpline/intake/recovery.py).
    "recover-missed-contacts": {
        "task": "helpline.intake.tasks.recover_missed_contacts", "schedule": 60.0, "options": {"expires": 55}
    },
    # Welfare campaigns: ask, call, visit and escalate what is due (helpline/welfare/services.py). Every second:
    # a question from the helpline's number takes that second's slot, and the next waits for the next tick.
    # It expires after 30 s, not 5: behind a surge's backlog on the notifications queue (tens of seconds) every
    # tick expired unrun, and nobody was asked, called or visited until the backlog cleared.
    "welfare-campaigns": {"task": "helpline.welfare.tasks.advance_welfare_campaigns", "schedule": 1.0,
                          "options": {"expires": 30}},
    # A welfare visit nobody takes reaches supervisors from the tick queue too, never behind that backlog (the
    # campaign tick runs the same steps; each step runs once, whichever gets there first).
    "welfare-visit-escalations": {
        "task": "helpline.welfare.tasks.escalate_welfare_visits", "schedule": 5.0, "options": {"expires": 10}
    },
    "roster-gap-report": {
        "task": "notifications.tasks.send_roster_gap_report",
        "schedule": crontab(hour=7, minute=0),
    },
    "visit-escalations": {
        "task": "helpline.visits.tasks.run_visit_escalations", "schedule": 5.0, "options": {"expires": 10}
    },
    "purge-visit-addresses": {
        "task": "helpline.visits.tasks.purge_visit_addresses", "schedule": crontab(hour=3, minute=30)
    },
    "purge-welfare-visit-notices": {
        "task": "helpline.welfare.tasks.purge_visit_notices", "schedule": crontab(hour=3, minute=35)
    },
    # Retention: anonymise the personal data of cases whose period ended (helpline/privacy/services.py).
    "anonymise-expired-cases": {
        "task": "helpline.privacy.tasks.anonymise_expired_cases", "schedule": crontab(minute=45)
    },
    "clear-expired-sessions": {
        "task": "helpline.privacy.tasks.clear_expired_sessions", "schedule": crontab(hour=3, minute=50)
    },
}
# Routine INFO lines about these are dropped (LOGGING): at one to ten seconds apart they would bury everything else.
QUIET_TICK_TASKS = [
    entry["task"]
    for entry in CELERY_BEAT_SCHEDULE.values()
    if isinstance(entry["schedule"], float) and entry["schedule"] <= 60
]
# Web, worker and beat write through LOGGING below rather than Celery's own handlers: one format, one time zone.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# /healthz/ says "degraded" when beat's heartbeat, or a queue's consumer heartbeat (each worker writes one every
# WORKER_HEARTBEAT_SECONDS for each queue it takes), is older than this.
HEALTH_BEAT_MAX_AGE_SECONDS = env.float("HEALTH_BEAT_MAX_AGE_SECONDS", default=10.0)
WORKER_HEARTBEAT_SECONDS = 2.0
HEALTH_WORKER_MAX_AGE_SECONDS = env.float("HEALTH_WORKER_MAX_AGE_SECONDS", default=10.0)
# ... and when a case's escalation step is overdue by more than this: the tick runs every second, so a step this
# late is one that fails on every try (helpline/cases/ticks.py), or a tick queue nobody gets to.
HEALTH_ESCALATION_MAX_LATE_SECONDS = env.float("HEALTH_ESCALATION_MAX_LATE_SECONDS", default=60.0)
# The semantic model beside the rules (triage/semantic_model.py). Off, every case is triaged by the rules alone and
# no case waits for the model's second look: for a box without the memory for it (about 100 MB in each worker
# process that loads it), and for issue 18's benchmark of the rules' pipeline. The rules alone miss most dangers
# said in words they do not list (README, "Semantic triage"), so /healthz/ shows it off. Set alike for every process.
SEMANTIC_TRIAGE = env.bool("SEMANTIC_TRIAGE", default=True)

# --- Twilio and SMS --------------------------------------------------------------------------------------
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_PHONE_NUMBER = env.str("TWILIO_PHONE_NUMBER", default="")
# Only for tests and drills: send Twilio API requests to a local stub instead of api.twilio.com.
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="")
SMS_PER_SECOND = env.int("SMS_PER_SECOND", default=1)  # a Twilio long code takes about one message a second
CALLS_PER_SECOND = env.int("CALLS_PER_SECOND", default=1)  # Twilio places 1 call a second per account (CPS)
# Every SMS to a staff member goes from here when set: a second number, or a Messaging Service ("MG..."). Twilio
# queues what a number sends beyond its rate, in order; on the SOS number alone, a staff alert waits there behind
# every answer to the citizens before it (a surge's thousands of TwiML answers: an hour at one a second). Staff
# reply to it ("OK 1234"): its incoming messages must reach /webhooks/twilio/sms/ as the SOS number's do.
STAFF_ALERT_SENDER = env.str("STAFF_ALERT_SENDER", default="")
# Its sending rate: a second long code takes about one a second; a Messaging Service, one a second per number.
STAFF_ALERT_SMS_PER_SECOND = env.int("STAFF_ALERT_SMS_PER_SECOND", default=1)
# Supervisors' alerts that staff alerts are failing go from here when set (another number or Messaging Service
# than the failing one's); otherwise from the SOS number.
DELIVERY_ALERT_SENDER = env.str("DELIVERY_ALERT_SENDER", default="")
# Welfare campaigns send through a Messaging Service ("MG...") when set, spreading over its pool of numbers: the
# campaign's rate is SMS_PER_SECOND times WELFARE_SENDING_NUMBERS (without one, the helpline's number alone).
WELFARE_MESSAGING_SERVICE_SID = env.str("WELFARE_MESSAGING_SERVICE_SID", default="")
WELFARE_SENDING_NUMBERS = env.int("WELFARE_SENDING_NUMBERS", default=1)
WELFARE_CALL_RING_SECONDS = env.int("WELFARE_CALL_RING_SECONDS", default=30)
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=6)
NOTIFICATION_RETRY_BASE_SECONDS = env.float("NOTIFICATION_RETRY_BASE_SECONDS", default=5.0)
STAFF_CALL_RETRY_SECONDS = env.int("STAFF_CALL_RETRY_SECONDS", default=60)
# The board proposes surge mode past this many waiting cases per person on duty.
SURGE_CASES_PER_PERSON = env.float("SURGE_CASES_PER_PERSON", default=5.0)
# Once nothing has waited for this many minutes in surge mode, the board and one SMS propose ending it.
SURGE_CLEARED_MINUTES = env.int("SURGE_CLEARED_MINUTES", default=30)
# A staff member who answers a call-out with "1" is on duty for this many hours from the time they give.
CALL_OUT_SHIFT_HOURS = env.int("CALL_OUT_SHIFT_HOURS", default=8)
# Called (and texted) when a case's ladder reaches its last resort: for example the head of the centre. E.164.
ESCALATION_FALLBACK_NUMBERS = env.list("ESCALATION_FALLBACK_NUMBERS", default=[])
SMS_BACKEND = env.str("SMS_BACKEND", default="console")
# <Say> has no Bosnian voice; Croatian is the closest one Twilio offers. Each can be changed per deployment.
TWILIO_SAY_VOICES = {
    "bs": {"language": env.str("TWILIO_SAY_LANGUAGE_BS", default="hr-HR"), "voice": env.str("TWILIO_VOICE_BS", "")},
    "en": {"language": env.str("TWILIO_SAY_LANGUAGE_EN", default="en-GB"), "voice": env.str("TWILIO_VOICE_EN", "")},
}

PHONENUMBER_DEFAULT_REGION = "BA"
PHONENUMBER_DB_FORMAT = "E164"

# --- The helpline's world (DOMAIN.md) --------------------------------------------------------------------
HELPLINE_NAME = env.str("HELPLINE_NAME", default="SOS telefon")
EMERGENCY_NUMBERS = {
    "police": env.str("EMERGENCY_POLICE", default="122"),
    "fire": env.str("EMERGENCY_FIRE", default="123"),
    "ambulance": env.str("EMERGENCY_AMBULANCE", default="124"),
    "domestic_violence_fbih": env.str("EMERGENCY_DV_FBIH", default="1265"),
    "domestic_violence_rs": env.str("EMERGENCY_DV_RS", default="1264"),
    "children": env.str("EMERGENCY_CHILDREN", default="080 05 03 05"),
}
# Home visits (helpline.visits): minutes between the steps of an overdue visit's ladder, and between the rounds of
# an alarm; how many minutes pressing 1 on the overdue call adds; days an ended visit's address is kept.
VISIT_ESCALATION_WAIT_MINUTES = env.int("VISIT_ESCALATION_WAIT_MINUTES", default=5)
VISIT_ALARM_REPEAT_MINUTES = env.int("VISIT_ALARM_REPEAT_MINUTES", default=3)
VISIT_SAFE_CALL_EXTENSION_MINUTES = env.int("VISIT_SAFE_CALL_EXTENSION_MINUTES", default=15)
VISIT_ADDRESS_RETENTION_DAYS = env.int("VISIT_ADDRESS_RETENTION_DAYS", default=30)
# Retention by purpose (helpline.privacy; Zakon o zaštiti ličnih podataka: storage limitation). A resolved or closed
# case's personal data is anonymised this many days after it ended; dates, channel, priority, category and times stay
# for the figures. Keys are "category:outcome", "*:outcome" or "category", and the first that fits wins in that
# order (a bot or a drill was never a person, whatever its category), then RETENTION_DEFAULT_DAYS. Outcomes:
# resolved, closed, automated (the form's bot trap caught it), drill.
# The defaults are a starting point for a centre's data protection officer, not legal advice: child protection and
# domestic violence files are kept as long as proceedings may need them (set what your entity's law requires).
# RETENTION_DAYS in the environment ("information=183,child_protection:closed=3650") changes or adds keys.
RETENTION_DEFAULT_DAYS = env.int("RETENTION_DEFAULT_DAYS", default=730)
RETENTION_DAYS = {
    "information": 183,
    "other": 365,
    "material_need": 730,
    "addiction": 1825,
    "mental_health": 1825,
    "elderly_disability": 1825,
    "suicide_self_harm": 1825,
    "domestic_violence": 3650,
    "child_protection": 3650,
    "*:automated": 30,
    "*:drill": 30,
    **{key: int(days) for key, days in env.dict("RETENTION_DAYS", default={}).items()},
}
# The daily anonymisation works in batches, each its own transaction: stopped half-way, the next run goes on.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=200)
# The read log (helpline.privacy): a staff member who opens more cases than this in a day that were never theirs is
# flagged to supervisors; a conversation polled by an open page counts as one read per this many seconds.
READ_LOG_UNUSUAL_CASES_PER_DAY = env.int("READ_LOG_UNUSUAL_CASES_PER_DAY", default=15)
READ_LOG_POLL_EVERY_SECONDS = env.int("READ_LOG_POLL_EVERY_SECONDS", default=600)
# Where the quick-exit button on the public form leaves to: a neutral site that does not look like help.
QUICK_EXIT_URL = env.str("QUICK_EXIT_URL", default="https://www.google.com/search?q=vremenska+prognoza")
MAX_MESSAGE_LENGTH = 5000
# Twilio joins a long SMS into one webhook of at most 1,600 characters; a longer signed body is cut to this.
SMS_MAX_LENGTH = 1600
# Request bodies: far above any form, reply or webhook (a 5,000-character message in Cyrillic, form-encoded, is
# about 60 KB), far below what could fill memory or the database. A larger body gets a 413 (request_limits.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("REQUEST_BODY_MAX_KB", default=256) * 1024
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_MB", default=10) * 1024 * 1024  # the welfare register's spreadsheet
# The longest voicemail a caller may leave, in seconds.
VOICEMAIL_MAX_SECONDS = env.int("VOICEMAIL_MAX_SECONDS", default=180)
# How long each person in the live-call hunt is rung before the next one.
VOICE_RING_SECONDS = env.int("VOICE_RING_SECONDS", default=20)

# One format for web, worker and beat (Celery keeps these handlers: CELERY_WORKER_HIJACK_ROOT_LOGGER), with UTC
# timestamps. The ticks that run every few seconds are not logged at INFO unless they have something to say.
_CELERY_TASK_LOG_LEVEL = env.str("CELERY_TASK_LOG_LEVEL", default="WARNING")
_QUIET_TICKS = {"()": "helpline.operations.logs.QuietTicks", "tasks": QUIET_TICK_TASKS}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "helpline.operations.logs.UTCFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "filters": {"quiet_ticks": _QUIET_TICKS, "redact": {"()": "helpline.operations.logs.RedactPhoneNumbers"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Celery's "Task ... received" and "... succeeded" lines for every task: ~49,000 an hour while a backlog
        # drains, burying the service's own lines (case stored, assigned, escalated). Failures stay (ERROR);
        # CELERY_TASK_LOG_LEVEL=INFO brings the per-task lines back when debugging.
        "celery.app.trace": {"filters": ["quiet_ticks"], "level": _CELERY_TASK_LOG_LEVEL},
        "celery.worker.strategy": {"filters": ["quiet_ticks"], "level": _CELERY_TASK_LOG_LEVEL},
        "celery.beat": {"filters": ["quiet_ticks"]},
        # Celery gives these two handlers of its own (local time, another format) unless they have one already.
        **{name: {"handlers": ["console"], "propagate": False} for name in ("multiprocessing", "celery.task")},
        # The twilio library logs each API request at INFO with its query (a lookup carries the number it asks about).
        "twilio.http_client": {"level": "WARNING"},
    },
}

# --- Staff console ---
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:queue"
LOGOUT_REDIRECT_URL = "console:login"
# A signed-in session lasts a night shift at most; after CONSOLE_IDLE_MINUTES without a click it ends. The
# queue's polling is not a click: an unattended screen must not keep a session open (helpline.console.middleware).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
CONSOLE_IDLE_MINUTES = env.int("CONSOLE_IDLE_MINUTES", default=30)

# --- Logging in (helpline.access) ---
# One lockout for the admin, the console and the API token login (django-axes), counted in the database so every
# web process sees the same numbers. Three counters: failures for one username from one address, from one address
# for any username, and for one username from every address (helpline/access/lockout.py). An attacker's failures
# never lock the same person out at an address they have signed in from before.
AUTHENTICATION_BACKENDS = ["helpline.access.lockout.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "helpline.access.lockout.TwoCounterHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
LOGIN_FAILURES_PER_USERNAME = env.int("LOGIN_FAILURES_PER_USERNAME", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
# ... and for everyone at that address, even the people who sign in there: an infected PC behind the office's
# address guessing a few passwords of each colleague, under the per-username limit every cool-off, for ever.
LOGIN_FAILURES_PER_ADDRESS_FOR_EVERYONE = env.int(
    "LOGIN_FAILURES_PER_ADDRESS_FOR_EVERYONE", default=5 * LOGIN_FAILURES_PER_ADDRESS
)
# Guesses at one name from many addresses together; not counted at an address the person signed in from before.
LOGIN_FAILURES_PER_USERNAME_EVERYWHERE = env.int("LOGIN_FAILURES_PER_USERNAME_EVERYWHERE", default=50)
AXES_FAILURE_LIMIT = 1  # the handler answers 1 when either counter has reached its own limit
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = False  # a right password must not wipe an address's count of guesses at other names
# The address is REMOTE_ADDR, or with NUM_PROXIES > 0 the one the last trusted proxy saw (as DRF's throttles do):
# a client's own X-Forwarded-For never counts.
AXES_CLIENT_IP_CALLABLE = "helpline.access.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "helpline.access.lockout.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password", "otp_token"]  # masked in axes' log lines
# A second factor (django-otp, TOTP with recovery codes): supervisors must have one for the board, the roster and
# the supervisor API, and everyone for the admin; workers may add one, and are then asked for it at every sign-in.
SECOND_FACTOR_REQUIRED = env.bool("SECOND_FACTOR_REQUIRED", default=True)
OTP_TOTP_ISSUER = HELPLINE_NAME
# API tokens (django-rest-knox): one per login (per device), valid for a shift and a half, refused once expired.
REST_KNOX = {
    "TOKEN_TTL": dt.timedelta(hours=env.int("API_TOKEN_HOURS", default=12)),
    "AUTH_HEADER_PREFIX": "Token",
}
# How often the queue and the board ask the server for news.
CONSOLE_POLL_SECONDS = env.int("CONSOLE_POLL_SECONDS", default=5)
# How often a citizen's open conversation page asks for new replies (htmx; without JavaScript, a reload shows them).
CITIZEN_POLL_SECONDS = env.int("CITIZEN_POLL_SECONDS", default=10)
MIDDLEWARE = [
    *MIDDLEWARE,
    "helpline.project.outage.CitizenPagesWithoutTheDatabaseMiddleware",
    "helpline.console.middleware.DeactivatedStaffMiddleware",
    "helpline.console.middleware.IdleSessionMiddleware",
    "helpline.console.middleware.SecondFactorMiddleware",
]
