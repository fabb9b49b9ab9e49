"""Buffered HTTP values: :class:`Request`, :class:`Response`, :class:`Headers`
and :class:`HttpError` (mirrors ``components/sdk/src/http.rs``)."""

import json as _json
import re
from urllib.parse import parse_qsl

__all__ = ["Headers", "Request", "Response", "HttpError", "dumps", "loads", "MAX_JSON_DEPTH"]

#: Deepest nesting of arrays and objects ``loads`` accepts. CPython's JSON
#: parser recurses on the C stack, and inside a component that stack runs
#: out at about 1000 levels (a trap, not an exception); serde_json parses
#: what it reads to 128 levels, and skips deeper values it ignores.
MAX_JSON_DEPTH = 512

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_FOLD = bytes.maketrans(b"{}", b"[]")


def _to_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _no_constants(name):
    # JSON has no NaN or Infinity; Python's json module would accept them.
    raise ValueError(f"{name} is not JSON")


def dumps(value):
    """``value`` as compact JSON text in UTF-8 bytes, the way serde_json
    writes it (no spaces, non-ASCII kept as is, no NaN)."""
    return _json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _bad_unicode(value):
    """Whether any string in ``value`` holds a lone surrogate (not Unicode)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _check_depth(data):
    """ValueError if ``data`` (bytes) nests deeper than MAX_JSON_DEPTH, or
    its brackets outside strings do not pair up (then it is no JSON anyway)."""
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return
    brackets = _STRING.sub(b"", data).translate(_FOLD, _NOT_BRACKETS)
    too_deep = b"[" * (MAX_JSON_DEPTH + 1)
    for _ in range(MAX_JSON_DEPTH + 1):
        if not brackets:
            return
        if too_deep in brackets:
            break
        # Each pass removes the innermost pairs: one level of nesting.
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            raise ValueError("unbalanced brackets")
        brackets = shorter
    raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")


def loads(data, *, validate_unicode=True, object_pairs_hook=None):
    """Parse JSON text (bytes or str). Raises ``ValueError`` with the reason.

    Like serde_json: the text must be UTF-8 (no BOM), ``NaN``/``Infinity``
    are refused, nothing may follow the value. Nesting deeper than
    :data:`MAX_JSON_DEPTH` is refused. With ``validate_unicode=False``
    invalid UTF-8 and lone ``\\ud800`` escapes are kept as lone surrogates
    instead of refused: serde_json accepts them in values it does not read,
    so a caller that checks the strings it uses can accept what a Rust
    service accepts.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        _check_depth(data)
        try:
            text = data.decode("utf-8", "strict" if validate_unicode else "surrogateescape")
        except UnicodeDecodeError as e:
            raise ValueError(f"invalid UTF-8 at byte {e.start}") from None
    else:
        _check_depth(data.encode("utf-8", "surrogatepass"))
        text = data
    try:
        value = _json.loads(
            text, parse_constant=_no_constants, object_pairs_hook=object_pairs_hook
        )
    except RecursionError:
        raise ValueError("recursion limit exceeded") from None
    if validate_unicode and _bad_unicode(value):
        raise ValueError("lone surrogate in a string")
    return value


class Headers:
    """HTTP headers: an ordered list of ``(name, value)`` pairs, names matched
    case-insensitively (and kept lower-case, as wasi:http delivers them),
    values kept as the raw bytes.

    ``get(name)`` is the first value as text (``None`` when absent or not
    UTF-8), ``get_all(name)`` every value, ``raw(name)`` the first value's
    bytes; ``add`` appends, ``set`` replaces, ``remove`` deletes;
    ``items()`` is the raw pairs. A dict or a list of pairs builds one.
    """

    __slots__ = ("_items",)

    def __init__(self, items=None):
        self._items = []
        if items is None:
            return
        if isinstance(items, Headers):
            items = items._items
        elif hasattr(items, "items"):
            items = items.items()
        for name, value in items:
            self.add(name, value)

    def add(self, name, value):
        self._items.append((str(name).lower(), _to_bytes(value)))

    def set(self, name, value):
        self.remove(name)
        self.add(name, value)

    def remove(self, name):
        name = name.lower()
        self._items = [(n, v) for n, v in self._items if n != name]

    def raw(self, name):
        name = name.lower()
        for n, v in self._items:
            if n == name:
                return v
        return None

    def get(self, name, default=None):
        value = self.raw(name)
        if value is None:
            return default
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return default

    def get_all(self, name):
        name = name.lower()
        return [v.decode("utf-8", "replace") for n, v in self._items if n == name]

    def items(self):
        return list(self._items)

    def __contains__(self, name):
        return self.raw(name) is not None

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __eq__(self, other):
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self):
        return f"Headers({self._items!r})"


class HttpError(Exception):
    """Raise from a handler to answer with the error shape
    ``{"code": code, "message": message}`` and ``status``."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = str(message)
        self.headers = headers

    def response(self):
        response = Response.error(self.status, self.code, self.message)
        for name, value in Headers(self.headers):
            response.headers.add(name, value)
        return response

    def __repr__(self):
        return f"HttpError({self.status}, {self.code!r}, {self.message!r})"


class Request:
    """An incoming request, read in full.

    ``method`` is the name as sent (``"GET"``; case-sensitive), ``target`` the
    path and query as sent (``/identity/verify?x=1``), ``path`` the part
    before ``?`` and ``query`` the part after it (``""`` if none);
    ``headers`` are :class:`Headers`; ``body`` is bytes.
    """

    __slots__ = ("method", "target", "headers", "body")

    def __init__(self, method="GET", target="/", headers=None, body=b""):
        self.method = method
        self.target = target
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = _to_bytes(body)

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""

    @property
    def query_params(self):
        """The query as a dict (first value of each name, percent-decoded)."""
        params = {}
        for name, value in parse_qsl(self.query, keep_blank_values=True):
            params.setdefault(name, value)
        return params

    def header(self, name):
        """The first value of header ``name`` (any case), or ``None``."""
        return self.headers.get(name)

    def bearer_token(self):
        """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
        value = self.header("authorization")
        if value is None:
            return None
        scheme, sep, token = value.strip().partition(" ")
        token = token.strip()
        if not sep or scheme.lower() != "bearer" or not token:
            return None
        return token

    def text(self):
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self, schema=None, *, validate_unicode=True):
        """The body parsed as JSON; a bad body raises a 400 ``bad_request``
        :class:`HttpError` (``invalid JSON body: ...``).

        With a :class:`hms.schema.Struct` as ``schema`` the body must be that
        struct (the answer is a dict of its fields), checked the way serde
        checks a Rust struct; then only the fields the struct declares must
        be valid Unicode, as in Rust. Nesting deeper than
        :data:`MAX_JSON_DEPTH` levels is a 400 too.
        """
        try:
            if schema is not None:
                return schema.loads(self.body)
            return loads(self.body, validate_unicode=validate_unicode)
        except ValueError as e:
            raise HttpError(400, "bad_request", f"invalid JSON body: {e}") from None

    def __repr__(self):
        return f"Request({self.method!r}, {self.target!r})"


class Response:
    """A response to send, body included: ``status``, :class:`Headers` and
    ``body`` bytes. ``Response.json(status, value)`` and
    ``Response.error(status, code, message)`` build the usual ones."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status=200, body=b"", headers=None):
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = _to_bytes(body)

    @classmethod
    def json(cls, status, value):
        """``value`` as compact JSON with ``content-type: application/json``.
        A value JSON cannot encode raises ``TypeError``/``ValueError``."""
        return cls(status, dumps(value), [("content-type", "application/json")])

    @classmethod
    def error(cls, status, code, message):
        """The project-wide error shape ``{"code": ..., "message": ...}``."""
        return cls.json(status, {"code": code, "message": str(message)})

    def with_header(self, name, value):
        """Add a header; returns the response."""
        self.headers.add(name, value)
        return self

    def json_body(self):
        """The body parsed as JSON (for tests)."""
        return loads(self.body)

    def __repr__(self):
        return f"Response({self.status}, {self.body[:80]!r})"
