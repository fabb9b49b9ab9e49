"""Calls to other services over ``wasi:http/outgoing-handler`` (mirrors
``components/sdk/src/client.rs``).

``call(service, path, json=...)`` is the usual way: it discovers
``service`` in the registry, sends this service's own token as
``Authorization: Bearer`` and answers a :class:`ClientResponse`.
``send`` is any method to any URL. Every call is made in full: the request
body is sent whole and the response body read whole (up to 16 MiB). Any HTTP
status, 4xx and 5xx included, is a :class:`ClientResponse`; a
:class:`CallError` means there was no response to read.
"""

from . import _backend, auth, registry
from ._http import Headers
from ._http import dumps as _dumps
from ._http import loads as _loads

__all__ = [
    "ClientResponse", "CallError", "ServiceNotFound", "InvalidUrl",
    "InvalidRequest", "Refused", "Failed", "BodyError",
    "call", "send", "send_json", "post_json", "get", "split_url",
]

#: Largest response body read.
MAX_BODY = 16 * 1024 * 1024

_NO_JSON = object()


class ClientResponse:
    """The answer to an outgoing call, body included."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers=None, body=b""):
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)

    @property
    def ok(self):
        """A 2xx status."""
        return 200 <= self.status < 300

    def header(self, name):
        return self.headers.get(name)

    def json(self, schema=None):
        """The body parsed as JSON (as ``schema``, a :class:`hms.schema.Struct`,
        if given); ``ValueError`` if it is not."""
        return schema.loads(self.body) if schema is not None else _loads(self.body)

    @property
    def text(self):
        """The body as text, invalid UTF-8 replaced."""
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"ClientResponse({self.status}, {self.body[:80]!r})"


class CallError(Exception):
    """Why an outgoing call got no response."""


class ServiceNotFound(CallError):
    """``call`` found no service of that name in the registry."""

    def __init__(self, service):
        super().__init__(f"{service} is not registered")
        self.service = service


class InvalidUrl(CallError):
    """The URL is not absolute (``scheme://host[:port][/path]``) or wasi:http
    refuses one of its parts."""


class InvalidRequest(CallError):
    """The method or a header was refused by wasi:http (e.g. ``host``), or
    the body could not be encoded, before anything was sent."""


class Refused(CallError):
    """``outgoing-handler`` refused the request outright, e.g. with
    ``HttpRequestDenied`` from the host's outbound policy. ``code`` is the
    wasi:http error code's name."""

    def __init__(self, code):
        super().__init__(f"request refused: {code}")
        self.code = code


class Failed(CallError):
    """The request was handed over but no response came back (connection
    refused, DNS, timeout...). ``code`` is the wasi:http error code's name."""

    def __init__(self, code):
        super().__init__(f"request failed: {code}")
        self.code = code


class BodyError(CallError):
    """The response body could not be read, or the request body written."""


def split_url(url, path):
    """``(scheme, authority, path_with_query)`` of ``url`` + ``path``.

    ``url`` is a base URL such as a registry endpoint's
    ``http://127.0.0.1:8080``; a path in it is kept as a prefix of ``path``
    (which may carry a query). With an empty ``path``, ``url`` is used as it
    is, query included. A fragment is dropped. :class:`InvalidUrl` if it is
    not absolute."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidUrl(f"not an absolute URL: {url}")
    rest = rest.split("#", 1)[0]
    cut = len(rest)
    for i, c in enumerate(rest):
        if c in "/?":
            cut = i
            break
    authority, tail = rest[:cut], rest[cut:]
    if not authority:
        raise InvalidUrl(f"no host in URL: {url}")
    if not path:
        target = tail if tail.startswith("/") else "/" + tail
    else:
        base = tail.split("?", 1)[0]
        target = base.rstrip("/") + "/" + path.lstrip("/")
    return scheme.lower(), authority, target


def send(method, url, path="", headers=(), body=None):
    """Send ``method`` to ``url`` + ``path`` with ``headers`` (pairs or a
    dict) and, if given, ``body`` (bytes), and read the whole response. A
    body gets a ``content-length`` unless ``headers`` has one. A header
    wasi:http forbids (such as ``host``) is an :class:`InvalidRequest`."""
    scheme, authority, target = split_url(url, path)
    for part in (scheme, authority, target):
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidUrl(f"not valid Unicode: {part!r}") from None
    if not isinstance(method, str) or not method:
        raise InvalidRequest(f"invalid method {method!r}")
    headers = Headers(headers)
    for name, _ in headers:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"invalid request header {name!r}") from None
    if body is not None:
        body = bytes(body)
        if "content-length" not in headers:
            headers.add("content-length", str(len(body)))
    return _backend.core().http_send(method, scheme, authority, target, headers.items(), body)


def send_json(method, url, path, value, bearer=None):
    """``send`` ``value`` as JSON, with ``Authorization: Bearer <bearer>`` if given."""
    try:
        data = _dumps(value)
    except (TypeError, ValueError) as e:
        raise InvalidRequest(f"cannot encode request body: {e}") from None
    headers = [("content-type", "application/json")]
    if bearer is not None:
        headers.append(("authorization", f"Bearer {bearer}"))
    return send(method, url, path, headers, data)


def post_json(url, path, value, bearer=None):
    return send_json("POST", url, path, value, bearer)


def get(url, path, bearer=None):
    """GET without a body, with ``Authorization: Bearer <bearer>`` if given."""
    headers = [] if bearer is None else [("authorization", f"Bearer {bearer}")]
    return send("GET", url, path, headers)


def call(service, path, json=_NO_JSON, method="POST", headers=None, body=None):
    """Call another service by name: discover it, send ``method`` ``path``
    with this service's own token, and return its :class:`ClientResponse`.

    ``json`` (any JSON value) is sent as the body with ``content-type:
    application/json``; or pass raw ``body`` bytes; with neither, no body.
    :class:`ServiceNotFound` if ``service`` is not registered, another
    :class:`CallError` if no response came back. The callee may refuse this
    service (403) by its caller policy."""
    endpoint = registry.discover(service)
    if endpoint is None:
        raise ServiceNotFound(service)
    all_headers = Headers(headers)
    if json is not _NO_JSON:
        if body is not None:
            raise TypeError("pass json or body, not both")
        try:
            body = _dumps(json)
        except (TypeError, ValueError) as e:
            raise InvalidRequest(f"cannot encode request body: {e}") from None
        if "content-type" not in all_headers:
            all_headers.add("content-type", "application/json")
    all_headers.set("authorization", f"Bearer {auth.own_token()}")
    return send(method, endpoint.url, path, all_headers, body)
