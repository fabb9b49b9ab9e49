"""Core audit logging (``hms:core/logging``): ``log.info("Verified ID C1")``.

The host stamps every event with its sequence number, time, service name and
the request's trace id, and makes it durable before the request's response
leaves. ``print`` output (stdout, at ``info``) and stderr (at ``warn``) are
captured into the audit log too, one event per line: prefer these functions.
"""

from . import _backend

__all__ = ["LEVELS", "event", "debug", "info", "warn", "warning", "error"]

LEVELS = ("debug", "info", "warn", "error")


def event(level, message):
    """Log ``message`` at ``level`` (one of :data:`LEVELS`)."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    message = str(message)
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: replace them, never fail to log
        message = message.encode("utf-8", "replace").decode("utf-8")
    _backend.core().log_event(level, message)


def debug(message):
    event("debug", message)


def info(message):
    event("info", message)


def warn(message):
    event("warn", message)


warning = warn


def error(message):
    event("error", message)
