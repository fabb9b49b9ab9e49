"""Routing requests to handlers by method and path (mirrors
``components/sdk/src/router.rs``; its tests are ported in
``tests/test_router.py``).

A pattern is a path of ``/``-separated segments, each one of

* a literal, matched exactly (``identity``);
* a parameter ``{name}``, matching any one non-empty segment, available to
  the handler as ``params["name"]``;

optionally ending in ``/...``, which matches the path so far and anything
below it (``/files/...`` matches ``/files``, ``/files/`` and ``/files/a/b``);
what it matched is ``params.rest``. Matching is on the path without the
query, exactly as sent: nothing is percent-decoded, and ``/a/`` is not ``/a``.

When several patterns match a path, the most specific one whose method
matches wins: segment by segment, a literal beats a parameter, and a
parameter beats ``/...``; between equals, the first registered. A path no
pattern matches is a 404 ``not_found`` (``no route for <path>``); a path some
pattern matches, but none for the request's method, is a 405
``method_not_allowed`` with an ``Allow`` header naming those patterns'
methods in the order they were registered (``use <methods>``). ``HEAD`` is
not implied by ``GET``, nor ``OPTIONS`` answered: register them if wanted.
"""

from collections.abc import Mapping

from ._http import HttpError, Response

__all__ = ["Params", "Router", "to_response"]


class Params(Mapping):
    """What a pattern's parameters (and its ``/...``) matched: a read-only
    mapping ``name -> segment``; ``rest`` is what a trailing ``/...``
    matched, without its leading ``/`` (``"a/b"`` for ``/files/a/b`` against
    ``/files/...``, ``""`` for ``/files``), or ``None`` without ``/...``."""

    __slots__ = ("_named", "rest")

    def __init__(self, named=(), rest=None):
        self._named = dict(named)
        self.rest = rest

    def __getitem__(self, name):
        try:
            return self._named[name]
        except KeyError:
            raise KeyError(f"the route has no parameter {{{name}}}") from None

    def __iter__(self):
        return iter(self._named)

    def __len__(self):
        return len(self._named)

    def __repr__(self):
        return f"Params({self._named!r}, rest={self.rest!r})"


class _Pattern:
    __slots__ = ("text", "segments", "rest", "rank")

    def __init__(self, pattern):
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise ValueError(f"route pattern {pattern!r} must start with '/'")
        body = pattern[1:]
        if body == "...":
            body, rest = None, True
        elif body.endswith("/..."):
            body, rest = body[: -len("/...")], True
        else:
            rest = False
        segments = []  # (is_param, text)
        for segment in body.split("/") if body is not None else ():
            name = segment[1:-1] if segment.startswith("{") and segment.endswith("}") and len(segment) >= 2 else None
            if name and "{" not in name and "}" not in name:
                if (True, name) in segments:
                    raise ValueError(f"route pattern {pattern!r} names {{{name}}} twice")
                segments.append((True, name))
            elif "{" in segment or "}" in segment or segment == "...":
                raise ValueError(f"route pattern {pattern!r} has a malformed segment {segment!r}")
            else:
                segments.append((False, segment))
        self.text = pattern
        self.segments = segments
        self.rest = rest
        # Specificity, compared lexicographically: per segment 2 for a
        # literal and 1 for a parameter, then 0 for `/...` or 3 for an exact end.
        self.rank = [1 if is_param else 2 for is_param, _ in segments] + [0 if rest else 3]

    def matches(self, path):
        """The Params if ``path`` (the segments after the leading ``/``) matches."""
        n = len(self.segments)
        if (len(path) < n) if self.rest else (len(path) != n):
            return None
        named = []
        for (is_param, text), value in zip(self.segments, path):
            if is_param:
                if not value:
                    return None
                named.append((text, value))
            elif text != value:
                return None
        return Params(named, "/".join(path[n:]) if self.rest else None)


def to_response(result):
    """What a handler returned, as a Response: a Response as is, a dict or
    list as 200 JSON. Anything else is a TypeError."""
    if isinstance(result, Response):
        return result
    if isinstance(result, (dict, list)):
        return Response.json(200, result)
    raise TypeError(
        f"a handler returned {type(result).__name__}; return a Response, a dict or a list"
    )


class Router:
    """Handlers by method and path pattern (see the module docs). A handler
    is called as ``handler(req, params)`` and returns a Response, a dict or a
    list (200 JSON), or raises :class:`HttpError`."""

    def __init__(self):
        self._routes = []  # (method, pattern, handler)

    def route(self, method, pattern, handler):
        """Route ``method`` requests for paths matching ``pattern`` to
        ``handler``. A malformed pattern is a ValueError (not starting with
        ``/``, a ``{`` or ``}`` that is not a whole ``{name}`` segment,
        ``...`` anywhere but at the end, a parameter name used twice)."""
        self._routes.append((method, _Pattern(pattern), handler))
        return self

    def get(self, pattern, handler):
        return self.route("GET", pattern, handler)

    def head(self, pattern, handler):
        return self.route("HEAD", pattern, handler)

    def post(self, pattern, handler):
        return self.route("POST", pattern, handler)

    def put(self, pattern, handler):
        return self.route("PUT", pattern, handler)

    def delete(self, pattern, handler):
        return self.route("DELETE", pattern, handler)

    def patch(self, pattern, handler):
        return self.route("PATCH", pattern, handler)

    def routes(self):
        """``(method, pattern)`` of every route, in registration order."""
        return [(m, p.text) for m, p, _ in self._routes]

    def handle(self, req):
        """Answer ``req`` with the best matching route's handler (an
        HttpError it raises becomes its response), or with a 404 or 405.
        Other exceptions propagate."""
        path = req.path
        # A path not in origin form (e.g. `*`) matches nothing.
        segments = path[1:].split("/") if path.startswith("/") else None
        best = None
        allowed = []
        for method, pattern, handler in self._routes:
            params = pattern.matches(segments) if segments is not None else None
            if params is None:
                continue
            if method not in allowed:
                allowed.append(method)
            if method == req.method and (best is None or pattern.rank > best[0].rank):
                best = (pattern, handler, params)
        if best is not None:
            try:
                return to_response(best[1](req, best[2]))
            except HttpError as e:
                return e.response()
        if not allowed:
            return Response.error(404, "not_found", f"no route for {path}")
        allow = ", ".join(allowed)
        return Response.error(405, "method_not_allowed", f"use {allow}").with_header("allow", allow)
