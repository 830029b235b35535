"""gunicorn for `make run` (started by deploy/supervisord.conf): its log lines in the service's one format, UTC."""
import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = 2
threads = 4
timeout = 30
# Intake answers within a second, so a stop (Ctrl-C, a restart) need not wait gunicorn's default 30 s.
graceful_timeout = 5
accesslog = "-"
# The time is the line's own UTC timestamp (below), so gunicorn's local-time %(t)s is left out. The path without
# its query string (%(U)s, not the request line %(r)s): a search's query carries names, numbers and message words.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'

_line = {"()": "helpline.operations.logs.UTCFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"generic": _line},
    "filters": {"redact": {"()": "helpline.operations.logs.RedactPhoneNumbers"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stdout",
                    "filters": ["redact"]},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr",
                          "filters": ["redact"]},
    },
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
