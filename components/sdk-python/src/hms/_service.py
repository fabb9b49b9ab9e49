"""The :class:`Service`: a name, host routes, a caller policy and handlers."""

import re
import sys
import traceback

from . import log
from ._http import Response
from ._router import Router

__all__ = ["Service", "MAX_TRACEBACK"]

_NAME = re.compile(r"[a-z0-9-]{1,64}")

#: Longest traceback put in the audit event of an unhandled exception, in
#: characters (the end is kept: it names the exception and where it was raised).
MAX_TRACEBACK = 16 * 1024

#: Every Service created, in order; the component entry point picks one.
created = []


class Service:
    """An hms service.

    ``name`` is what others discover it by (1-64 of ``a-z0-9-``), ``routes``
    the host-level paths sent to it (``/identity/...``: that prefix and
    everything below it; ``/exact/path``), ``callers`` the services allowed
    to call it through the host (``None``: any; the host answers others 403
    before the service runs).

    Handlers are registered with the decorators ``get``, ``post``, ``put``,
    ``delete``, ``patch``, ``head`` or ``route(method, pattern)`` and are
    called as ``handler(req, params)``: ``req`` a :class:`hms.Request`,
    ``params`` a :class:`hms.Params` (``params["id"]``, ``params.rest``).
    A handler returns a :class:`hms.Response`, or a dict or list (200 JSON),
    or raises :class:`hms.HttpError`; any other exception is answered 500
    ``internal`` and logged as one ``error`` event with its traceback.
    """

    def __init__(self, name, routes, callers=None):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"service name {name!r}: use 1-64 characters of a-z, 0-9 and -")
        if isinstance(routes, str):
            raise TypeError("routes is a list of paths, e.g. ['/identity/...']")
        routes = list(routes)
        for route in routes:
            if not isinstance(route, str) or not route.startswith("/"):
                raise ValueError(f"route {route!r} must start with '/'")
        if callers is not None:
            if isinstance(callers, str):
                raise TypeError("callers is a list of service names or None")
            callers = list(callers)
        self.name = name
        self.routes = routes
        self.callers = callers
        self.router = Router()
        created.append(self)

    def route(self, method, pattern):
        """Decorator: route ``method`` requests matching ``pattern`` here."""

        def register(handler):
            self.router.route(method, pattern, handler)
            return handler

        return register

    def get(self, pattern):
        return self.route("GET", pattern)

    def head(self, pattern):
        return self.route("HEAD", pattern)

    def post(self, pattern):
        return self.route("POST", pattern)

    def put(self, pattern):
        return self.route("PUT", pattern)

    def delete(self, pattern):
        return self.route("DELETE", pattern)

    def patch(self, pattern):
        return self.route("PATCH", pattern)

    def dispatch(self, req):
        """Answer ``req`` through the router (404/405 included). Override in
        a subclass to handle requests another way; exceptions propagate."""
        return self.router.handle(req)

    def handle(self, req):
        """Answer one request; never raises. An unhandled exception is a 500
        ``{"code":"internal","message":"internal error"}`` (the client learns
        nothing more) and one ``error`` audit event with the traceback."""
        try:
            return self.dispatch(req)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - a handler must never trap the instance
            report_exception(e, f"{req.method} {req.path}")
            return internal_error()

    def __repr__(self):
        return f"Service({self.name!r}, {self.routes!r})"


def internal_error():
    return Response.error(500, "internal", "internal error")


def report_exception(e, where):
    """Log ``e`` as one error event: what raised it and its traceback."""
    try:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()
        if len(text) > MAX_TRACEBACK:
            text = "...\n" + text[-MAX_TRACEBACK:]
        message = f"unhandled {type(e).__name__} in {where}\n{text}"
    except BaseException:  # noqa: BLE001 - e.g. MemoryError while formatting
        message = f"unhandled {type(e).__name__} in {where}"
    try:
        log.error(message)
    except BaseException:  # noqa: BLE001 - no Core: nothing more to do
        print(message, file=sys.stderr)
