"""The component side: Core calls through the WIT imports, and the
``wasi:http/incoming-handler`` and ``hms:core/manifest`` exports (mirrors
``components/sdk/src/server.rs``, ``body.rs`` and ``client.rs``).

Imported only inside a component (by ``hms.component``): it needs the
bindings componentize-py generates for ``hms.bindings`` at build time.
Everything here blocks on wasi:io pollables (no asyncio), as the Rust SDK does.
"""

from componentize_py_types import Err, Ok

from . import _backend, _service
from . import auth as _auth
from . import client as _client
from . import registry as _registry
from . import store as _store
from ._http import Request, Response
from .bindings.exports import manifest as _manifest
from .bindings.imports import auth as wit_auth
from .bindings.imports import logging as wit_logging
from .bindings.imports import outgoing_handler, streams, types
from .bindings.imports import registry as wit_registry
from .bindings.imports import store as wit_store

#: Largest body read (requests and call responses); the host's per-service
#: limit (1 MiB by default) is smaller.
MAX_BODY = 16 * 1024 * 1024
_CHUNK = 64 * 1024
#: blocking-write-and-flush accepts at most 4096 bytes per call.
_WRITE_CHUNK = 4096

_LEVELS = {
    "debug": wit_logging.Level.DEBUG,
    "info": wit_logging.Level.INFO,
    "warn": wit_logging.Level.WARN,
    "error": wit_logging.Level.ERROR,
}

_METHODS = {
    types.Method_Get: "GET", types.Method_Head: "HEAD", types.Method_Post: "POST",
    types.Method_Put: "PUT", types.Method_Delete: "DELETE", types.Method_Patch: "PATCH",
    types.Method_Options: "OPTIONS", types.Method_Connect: "CONNECT",
    types.Method_Trace: "TRACE",
}
_WASI_METHODS = {name: cls for cls, name in _METHODS.items()}


def _store_error(e):
    v = e.value
    if isinstance(v, wit_store.StoreError_InvalidKey):
        return _store.InvalidKey(v.value)
    if isinstance(v, wit_store.StoreError_ValueTooLarge):
        return _store.ValueTooLarge(v.value)
    if isinstance(v, wit_store.StoreError_QuotaExceeded):
        return _store.QuotaExceeded(v.value)
    if isinstance(v, wit_store.StoreError_NotANumber):
        return _store.NotANumber()
    return _store.Unavailable(getattr(v, "value", repr(v)))


def _auth_error(e):
    v = e.value
    if isinstance(v, wit_auth.AuthError_InvalidKey):
        return _auth.InvalidKey()
    if isinstance(v, wit_auth.AuthError_Revoked):
        return _auth.Revoked()
    if isinstance(v, wit_auth.AuthError_Expired):
        return _auth.Expired()
    return _auth.InvalidToken(getattr(v, "value", repr(v)))


def _registry_error(e):
    v = e.value
    cls = {
        wit_registry.RegistryError_InvalidName: _registry.InvalidName,
        wit_registry.RegistryError_NameTaken: _registry.NameTaken,
    }.get(type(v), _registry.InvalidAddress)
    return cls(getattr(v, "value", repr(v)))


def error_code_name(code):
    """A wasi:http error-code as Rust's Debug writes it: ``HttpRequestDenied``,
    ``InternalError(Some("..."))``."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    if not hasattr(code, "value"):
        return name
    value = code.value
    if value is None:
        return f"{name}(None)"
    if isinstance(value, str):
        return f'{name}(Some("{value}"))'
    if isinstance(value, int):
        return f"{name}(Some({value}))"
    return f"{name}({value!r})"


class WasmCore:
    """Core as the host provides it through the WIT imports."""

    # -- store
    def store_get(self, key):
        try:
            return wit_store.get(key)
        except Err as e:
            raise _store_error(e) from None

    def store_set(self, key, value):
        try:
            wit_store.set(key, value)
        except Err as e:
            raise _store_error(e) from None

    def store_delete(self, key):
        try:
            return wit_store.delete(key)
        except Err as e:
            raise _store_error(e) from None

    def store_list_keys(self, prefix, cursor, limit):
        try:
            page = wit_store.list_keys(prefix, cursor, limit)
        except Err as e:
            raise _store_error(e) from None
        return _store.KeyPage(list(page.keys), page.next)

    def store_compare_and_swap(self, key, expected, value):
        try:
            return wit_store.compare_and_swap(key, expected, value)
        except Err as e:
            raise _store_error(e) from None

    def store_increment(self, key, delta):
        try:
            return wit_store.increment(key, delta)
        except Err as e:
            raise _store_error(e) from None

    # -- logging
    def log_event(self, level, message):
        wit_logging.log_event(_LEVELS[level], message)

    # -- auth
    def auth_own_token(self):
        return wit_auth.own_token()

    def auth_verify(self, token):
        try:
            c = wit_auth.verify(token)
        except Err as e:
            raise _auth_error(e) from None
        return _auth.Claims(c.subject, c.key_id, c.issued_at, c.expires_at)

    def auth_authenticate(self, api_key):
        try:
            return wit_auth.authenticate(api_key)
        except Err as e:
            raise _auth_error(e) from None

    # -- registry
    def registry_discover(self, name):
        e = wit_registry.discover_service(name)
        if e is None:
            return None
        return _registry.Endpoint(e.name, e.url, e.host, e.port, e.version)

    def registry_register(self, name, host, port):
        try:
            wit_registry.register_service(name, host, port)
        except Err as e:
            raise _registry_error(e) from None

    # -- outgoing HTTP
    def http_send(self, method, scheme, authority, target, headers, body):
        fields = types.Fields()
        for name, value in headers:
            try:
                fields.append(name, value)
            except Err as e:
                fields.__exit__(None, None, None)
                raise _client.InvalidRequest(
                    f"invalid request header {name!r}: {type(e.value).__name__.removeprefix('HeaderError_')}"
                ) from None
        request = types.OutgoingRequest(fields)
        wasi_method = _WASI_METHODS.get(method)
        try:
            try:
                request.set_method(wasi_method() if wasi_method else types.Method_Other(method))
            except Err:
                raise _client.InvalidRequest(f"invalid method {method}") from None
            wasi_scheme = {"http": types.Scheme_Http, "https": types.Scheme_Https}.get(scheme)
            try:
                request.set_scheme(wasi_scheme() if wasi_scheme else types.Scheme_Other(scheme))
            except Err:
                raise _client.InvalidUrl(f"invalid scheme {scheme}") from None
            try:
                request.set_authority(authority)
            except Err:
                raise _client.InvalidUrl(f"invalid authority: {authority}") from None
            try:
                request.set_path_with_query(target)
            except Err:
                raise _client.InvalidUrl(f"invalid path: {target}") from None
        except _client.CallError:
            request.__exit__(None, None, None)
            raise
        outgoing_body = request.body()
        # Hand the request over first, then stream the body: the host may
        # only start reading the body once it has the request.
        try:
            future = outgoing_handler.handle(request, None)
        except Err as e:
            outgoing_body.__exit__(None, None, None)
            raise _client.Refused(error_code_name(e.value)) from None
        # If the body cannot be written, the response future says why (or
        # the server answered without reading it all).
        _write_all(outgoing_body, body or b"")
        with future:
            with future.subscribe() as pollable:
                pollable.block()
            result = future.get()
        if result is None or isinstance(result, Err):
            raise _client.Failed('InternalError(Some("response already taken or not ready"))')
        if isinstance(result.value, Err):
            raise _client.Failed(error_code_name(result.value.value))
        with result.value.value as response:
            status = response.status()
            with response.headers() as h:
                headers = h.entries()
            try:
                data = _read_all(response.consume())
            except _BodyError as e:
                raise _client.BodyError(str(e)) from None
        return _client.ClientResponse(status, headers, data)


class _BodyError(Exception):
    pass


def _read_all(body):
    """Read an incoming body to its end and finish it."""
    data = bytearray()
    with body.stream() as stream:
        while True:
            try:
                data += stream.blocking_read(_CHUNK)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise _BodyError("reading body failed") from None
            if len(data) > MAX_BODY:
                raise _BodyError(f"body larger than {MAX_BODY} bytes")
    trailers = types.IncomingBody.finish(body)
    trailers.__exit__(None, None, None)
    return bytes(data)


def _write_all(body, data):
    """Write ``data`` as the whole outgoing body and finish it; whether all
    of it was written (False: the other side went away)."""
    try:
        with body.write() as stream:
            view = memoryview(data)
            for i in range(0, len(data), _WRITE_CHUNK):
                stream.blocking_write_and_flush(bytes(view[i : i + _WRITE_CHUNK]))
    except Err:
        body.__exit__(None, None, None)
        return False
    try:
        types.OutgoingBody.finish(body, None)
    except Err:
        return False
    return True


def _read_request(request):
    method = request.method()
    name = _METHODS.get(type(method))
    if name is None:
        name = method.value  # Method_Other
    target = request.path_with_query() or "/"
    with request.headers() as h:
        headers = h.entries()
    try:
        body = request.consume()
    except Err:
        raise _BodyError("request body already consumed") from None
    data = _read_all(body)
    request.__exit__(None, None, None)
    return Request(name, target, headers, data)


def _outgoing_response(response):
    """A wasi outgoing-response for ``response``, or a reason it is refused."""
    pairs = [(n, v) for n, v in response.headers.items() if n != "content-length"]
    try:
        for name, _ in pairs:
            name.encode("utf-8")
    except UnicodeEncodeError:
        return None, "invalid response header: not valid Unicode"
    try:
        fields = types.Fields.from_list(pairs)
    except Err as e:
        return None, f"invalid response header: {type(e.value).__name__.removeprefix('HeaderError_')}"
    try:
        fields.set("content-length", [str(len(response.body)).encode()])
    except Err as e:
        fields.__exit__(None, None, None)
        return None, f"cannot set content-length: {e.value!r}"
    status = response.status
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 0xFFFF:
        fields.__exit__(None, None, None)
        return None, f"invalid status code {status!r}"
    outgoing = types.OutgoingResponse(fields)
    try:
        outgoing.set_status_code(status)
    except Exception:  # Err, or a number a u16 cannot hold
        outgoing.__exit__(None, None, None)
        return None, f"invalid status code {response.status}"
    return outgoing, None


def _send_response(response, response_out, state):
    outgoing, problem = _outgoing_response(response)
    if outgoing is None:
        # The handler produced something wasi:http refuses (a bad header
        # name or status): answer a plain 500 instead, and say why.
        _service.report_exception(ValueError(problem), "sending the response")
        response = _service.internal_error()
        outgoing, problem = _outgoing_response(response)
    body = outgoing.body()
    state["set"] = True
    types.ResponseOutparam.set(response_out, Ok(outgoing))
    # The client may have gone away; there is nobody left to tell, and it is
    # no error of the service.
    _write_all(body, response.body)


def exports(service):
    """The ``IncomingHandler`` and ``Manifest`` classes componentize-py
    exports for ``service``."""

    class IncomingHandler:
        def handle(self, request, response_out):
            state = {"set": False}
            try:
                try:
                    req = _read_request(request)
                except _BodyError as e:
                    response = Response.error(400, "bad_request", str(e))
                else:
                    response = service.handle(req)
                _send_response(response, response_out, state)
            except BaseException as e:  # noqa: BLE001 - never trap the instance
                # Only a fault of the SDK itself gets here.
                _service.report_exception(e, "the hms SDK")
                if not state["set"]:
                    _send_response(_service.internal_error(), response_out, state)

    class Manifest:
        def describe(self):
            return _manifest.ServiceInfo(name=service.name, routes=list(service.routes))

        def callers(self):
            return None if service.callers is None else list(service.callers)

    return IncomingHandler, Manifest


_backend.install(WasmCore())
