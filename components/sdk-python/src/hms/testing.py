"""A pure-Python stand-in for Core and the host, to unit-test a service's
handlers with pytest on ordinary CPython (no componentize-py, no wasm).

    import app, pytest
    from hms.testing import Core

    @pytest.fixture
    def core():
        with Core(app.service) as core:     # installs itself; removed on exit
            yield core

    def test_verify(core):
        core.store("identity-service").set_json("citizen/C1", {"status": "active"})
        r = core.request("POST", "/identity/verify", json={"id": "C1"},
                         token=core.token("citizen-portal"))
        assert r.status == 200 and r.json()["status"] == "verified"
        assert core.messages("identity-service") == ["Verified ID C1"]

What it does like the host:

* **Routing** to deployed services by their host routes (``/prefix/...``,
  exact paths; the most specific wins); no service: 404 ``no service serves
  <path>``.
* **Store**: one in-memory store per service, with the host's semantics:
  key and value limits, total quota, ``list_keys`` pages and cursors,
  ``compare_and_swap``, ``increment`` (``NotANumber`` on non-integers and
  overflow). ``core.store(name).fail("reason")`` makes it ``Unavailable``.
* **Audit log**: ``core.events`` (``Event(service, level, message)``), and
  ``core.messages(service, level)``.
* **Auth**: ``core.api_key(subject)`` (like ``hms-host keys create``),
  ``core.token(subject)``, ``core.revoke(key)``, ``core.advance(seconds)``
  for expiry; ``own_token`` gives a ``workload`` token of the running
  service.
* **Registry and calls**: ``hms.call``/``hms.client.send`` to the host's own
  URL are dispatched in-process with the caller policy (``callers``) checked
  against the calling service, as the host does (403 ``X may not call Y``
  and a ``warn`` event of the callee); ``core.register_external(name, host,
  port, handler)`` adds an external service, answered by ``handler(req)``
  (a function returning a Response, or a Service); any other destination is
  refused with ``HttpRequestDenied``.

Calls into Core happen as the service that handles the request; outside a
request (e.g. a test preparing data through ``hms.store``) as the first
service given to ``Core``, or ``with core.as_service(name):``.
"""

import contextlib
import re
from dataclasses import dataclass
from typing import NamedTuple

from . import _backend
from . import auth as _auth
from . import client as _client
from . import registry as _registry
from . import store as _store
from ._http import Headers, Request, Response
from ._http import dumps as _dumps
from ._http import loads as _loads
from ._router import to_response
from ._service import Service

__all__ = ["Core", "MemoryStore", "Event"]

_NAME = re.compile(r"[a-z0-9-]{1,64}")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FORBIDDEN_HEADERS = {
    "connection", "host", "http2-settings", "keep-alive", "proxy-connection",
    "te", "transfer-encoding", "upgrade",
}
_I64 = (-(2**63), 2**63 - 1)


class Event(NamedTuple):
    """An audit event: the service that logged it, its level, its message
    (a tuple: compares equal to ``(service, level, message)``)."""

    service: str
    level: str
    message: str


class MemoryStore:
    """One service's store, with the host's limits (``max_key_bytes``,
    ``max_value_bytes``, ``quota`` bytes of keys plus values). ``data`` is
    the dict of keys to bytes; ``set_json``/``get_json`` help tests."""

    def __init__(self, max_key_bytes=1024, max_value_bytes=1024 * 1024, quota=64 * 1024 * 1024):
        self.data = {}
        self.max_key_bytes = max_key_bytes
        self.max_value_bytes = max_value_bytes
        self.quota = quota
        self.unavailable = None

    def fail(self, reason="database is locked"):
        """Every operation from now on raises ``Unavailable(reason)``
        (``fail(None)`` heals it)."""
        self.unavailable = reason

    def used(self):
        return sum(len(k.encode()) + len(v) for k, v in self.data.items())

    def _check(self, key, value=None):
        # In the host's order: the key, the value, then the database.
        if not key:
            raise _store.InvalidKey("empty")
        n = len(key.encode("utf-8"))
        if n > self.max_key_bytes:
            raise _store.InvalidKey(f"{n} bytes; at most {self.max_key_bytes} are allowed")
        if value is not None and len(value) > self.max_value_bytes:
            raise _store.ValueTooLarge(self.max_value_bytes)
        if self.unavailable is not None:
            raise _store.Unavailable(self.unavailable)

    def _put(self, key, value):
        old = self.data.get(key)
        size = len(key.encode())
        used = self.used()
        after = used - (0 if old is None else size + len(old)) + size + len(value)
        if after > self.quota and after > used:
            raise _store.QuotaExceeded(self.quota)
        self.data[key] = value

    def get(self, key):
        self._check(key)
        return self.data.get(key)

    def set(self, key, value):
        value = bytes(value)
        self._check(key, value)
        self._put(key, value)

    def delete(self, key):
        self._check(key)
        return self.data.pop(key, None) is not None

    def list_keys(self, prefix, cursor, limit):
        if not 1 <= limit <= _store.MAX_PAGE:
            raise _store.InvalidKey(f"limit {limit}: pages hold 1 to {_store.MAX_PAGE} keys")
        if self.unavailable is not None:
            raise _store.Unavailable(self.unavailable)
        after = cursor if cursor is not None and cursor >= prefix else None
        keys = sorted(k for k in self.data if k.startswith(prefix) and (after is None or k > after))
        page = keys[:limit]
        return _store.KeyPage(page, page[-1] if len(keys) > limit else None)

    def compare_and_swap(self, key, expected, value):
        value = bytes(value)
        self._check(key, value)
        if self.data.get(key) != expected:
            return False
        self._put(key, value)
        return True

    def increment(self, key, delta):
        self._check(key)
        old = self.data.get(key)
        if old is None:
            base = 0
        else:
            try:
                text = old.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise _store.NotANumber() from None
            if not _INTEGER.fullmatch(text) or not _I64[0] <= int(text) <= _I64[1]:
                raise _store.NotANumber()
            base = int(text)
        total = base + delta
        if not _I64[0] <= total <= _I64[1]:
            raise _store.NotANumber()
        self._put(key, str(total).encode())
        return total

    def get_json(self, key):
        value = self.data.get(key)
        return None if value is None else _loads(value)

    def set_json(self, key, value):
        self.data[key] = _dumps(value)


@dataclass
class _Key:
    subject: str
    revoked: bool = False


@dataclass
class _Token:
    claims: _auth.Claims


class Core:
    """An in-memory Core and host serving ``services`` (see the module docs).

    ``url`` is the host's address (what discovery answers for components);
    ``token_ttl`` the lifetime of tokens in seconds; ``now`` the clock's
    start (seconds since the epoch; ``advance`` moves it); the store limits
    are the host's defaults.
    """

    def __init__(self, *services, url="http://127.0.0.1:8080", token_ttl=900, now=1_800_000_000,
                 max_key_bytes=1024, max_value_bytes=1024 * 1024, store_quota=64 * 1024 * 1024):
        self.url = url.rstrip("/")
        self.authority = _client.split_url(self.url, "")[1]
        self.token_ttl = token_ttl
        self.now = now
        self.events = []
        self._limits = dict(max_key_bytes=max_key_bytes, max_value_bytes=max_value_bytes,
                            quota=store_quota)
        self._services = {}   # name -> Service
        self._external = {}   # name -> (host, port, handler, registered_by)
        self._stores = {}
        self._keys = {}       # key id -> _Key
        self._tokens = {}     # token -> _Token
        self._context = []
        self._previous = None
        self._installed = False
        for service in services:
            self.deploy(service)

    # -- set-up
    def install(self):
        """Answer every Core call of the SDK (``with Core(...)`` does this)."""
        if not self._installed:
            self._previous = _backend.install(self)
            self._installed = True
        return self

    def uninstall(self):
        if self._installed:
            _backend.install(self._previous)
            self._installed = False

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.uninstall()

    def deploy(self, service):
        """Serve ``service`` (a :class:`hms.Service`) as a deployed component."""
        if not isinstance(service, Service):
            raise TypeError("deploy an hms.Service")
        self._services[service.name] = service
        return service

    def register_external(self, name, host, port, handler=None):
        """Register an external service, as an operator does. Calls to
        ``http://host:port`` are answered by ``handler(req)`` (a function
        returning a Response, dict or list, or a Service); without one they
        fail with ``ConnectionRefused``."""
        self._external[name] = (host, port, handler, None)

    def store(self, service):
        """The :class:`MemoryStore` of ``service`` (a name)."""
        if service not in self._stores:
            self._stores[service] = MemoryStore(**self._limits)
        return self._stores[service]

    @contextlib.contextmanager
    def as_service(self, name):
        """Make Core calls in the block as service ``name``."""
        self._context.append(name)
        try:
            yield
        finally:
            self._context.pop()

    def current_service(self):
        if self._context:
            return self._context[-1]
        if self._services:
            return next(iter(self._services))
        raise RuntimeError("hms.testing: no service to act as: deploy one or use core.as_service(name)")

    # -- auth helpers for tests
    def api_key(self, subject):
        """A new API key for ``subject`` (like ``hms-host keys create``)."""
        key_id = f"{len(self._keys) + 1:012x}"
        self._keys[key_id] = _Key(subject)
        return f"hmsk_{key_id}_secret"

    def token(self, subject):
        """A token for ``subject`` (a fresh API key exchanged at once)."""
        return self.auth_authenticate(self.api_key(subject))

    def revoke(self, api_key):
        """Revoke ``api_key``: it and every token from it stop working."""
        self._keys[self._key_id(api_key)].revoked = True

    def advance(self, seconds):
        """Move the clock on (tokens expire after ``token_ttl``)."""
        self.now += seconds

    def messages(self, service=None, level=None):
        """The messages of the events of ``service`` (and ``level``), in order."""
        return [e.message for e in self.events
                if (service is None or e.service == service) and (level is None or e.level == level)]

    # -- requests from outside
    def request(self, method, target, *, json=None, body=None, headers=None, token=None, caller=None):
        """Send a request to the host, as an outside client (or, with
        ``caller``, as that service calling through the host: then its
        caller policy applies). ``json`` is encoded as the body; ``token``
        becomes ``Authorization: Bearer``. Answers a ClientResponse."""
        headers = Headers(headers)
        if json is not None:
            body = _dumps(json)
            if "content-type" not in headers:
                headers.add("content-type", "application/json")
        if token is not None:
            headers.set("authorization", f"Bearer {token}")
        with self._installed_for_call():
            return self._dispatch(Request(method, target, headers, body or b""), caller)

    @contextlib.contextmanager
    def _installed_for_call(self):
        if self._installed:
            yield
            return
        self.install()
        try:
            yield
        finally:
            self.uninstall()

    def _route(self, path):
        best, best_len = None, -1
        for service in self._services.values():
            for route in service.routes:
                if route.endswith("/..."):
                    prefix = route[: -len("/...")]
                    hit = path == prefix or path.startswith(prefix + "/") or prefix == ""
                    length = len(prefix)
                else:
                    hit = path == route
                    length = len(route) + 1  # an exact route beats a prefix of it
                if hit and length > best_len:
                    best, best_len = service, length
        return best

    def _dispatch(self, req, caller):
        service = self._route(req.path)
        if service is None:
            response = Response.error(404, "not_found", f"no service serves {req.path}")
        elif caller is not None and service.callers is not None and caller not in service.callers:
            self.events.append(Event(service.name, "warn",
                                     f"refused a call from {caller}: only {', '.join(service.callers)}"
                                     f" may call {service.name}"))
            response = Response.error(403, "forbidden", f"{caller} may not call {service.name}")
        else:
            with self.as_service(service.name):
                response = service.handle(req)
        return _client.ClientResponse(response.status, response.headers, response.body)

    # -- the backend the SDK calls
    def store_get(self, key):
        return self.store(self.current_service()).get(key)

    def store_set(self, key, value):
        self.store(self.current_service()).set(key, value)

    def store_delete(self, key):
        return self.store(self.current_service()).delete(key)

    def store_list_keys(self, prefix, cursor, limit):
        return self.store(self.current_service()).list_keys(prefix, cursor, limit)

    def store_compare_and_swap(self, key, expected, value):
        return self.store(self.current_service()).compare_and_swap(key, expected, value)

    def store_increment(self, key, delta):
        return self.store(self.current_service()).increment(key, delta)

    def log_event(self, level, message):
        self.events.append(Event(self.current_service(), level, message))

    def _key_id(self, api_key):
        m = re.fullmatch(r"hmsk_([0-9a-f]{12})_secret", api_key or "")
        if not m or m.group(1) not in self._keys:
            raise _auth.InvalidKey()
        return m.group(1)

    def _issue(self, subject, key_id):
        token = f"test-token.{len(self._tokens) + 1}.{subject}"
        now = int(self.now)
        self._tokens[token] = _Token(_auth.Claims(subject, key_id, now, now + self.token_ttl))
        return token

    def auth_authenticate(self, api_key):
        key_id = self._key_id(api_key)
        if self._keys[key_id].revoked:
            raise _auth.Revoked()
        return self._issue(self._keys[key_id].subject, key_id)

    def auth_own_token(self):
        return self._issue(self.current_service(), "workload")

    def auth_verify(self, token):
        entry = self._tokens.get(token)
        if entry is None:
            raise _auth.InvalidToken("malformed or unknown token")
        claims = entry.claims
        if claims.key_id != "workload" and self._keys[claims.key_id].revoked:
            raise _auth.Revoked()
        if claims.expires_at <= self.now:
            raise _auth.Expired()
        return claims

    def registry_discover(self, name):
        if name in self._services:
            host, _, port = self.authority.rpartition(":")
            return _registry.Endpoint(name, self.url, host, int(port or 80), "sha256:test")
        if name in self._external:
            host, port, _, _ = self._external[name]
            return _registry.Endpoint(name, f"http://{host}:{port}", host, port, "external")
        return None

    def registry_register(self, name, host, port):
        if not _NAME.fullmatch(name or ""):
            raise _registry.InvalidName(f"{name!r}: use 1-64 characters of a-z, 0-9 and -")
        if name in self._services:
            raise _registry.NameTaken(f"{name} is a deployed component")
        if not host or not 1 <= port <= 65535:
            raise _registry.InvalidAddress(f"{host}:{port}")
        self._external[name] = (host, port, None, self.current_service())

    def http_send(self, method, scheme, authority, target, headers, body):
        for name, _ in headers:
            if name in _FORBIDDEN_HEADERS:
                raise _client.InvalidRequest(f"invalid request header {name!r}: Forbidden")
        req = Request(method, target, headers, body or b"")
        if authority == self.authority:
            return self._dispatch(req, self.current_service())
        for host, port, handler, _ in self._external.values():
            if authority == f"{host}:{port}":
                if handler is None:
                    raise _client.Failed("ConnectionRefused")
                if isinstance(handler, Service):
                    response = handler.handle(req)
                else:
                    response = to_response(handler(req))
                return _client.ClientResponse(response.status, response.headers, response.body)
        raise _client.Refused("HttpRequestDenied")
