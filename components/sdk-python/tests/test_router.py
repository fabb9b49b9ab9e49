"""The Rust SDK's router tests (components/sdk/src/router.rs), case by case."""

import json

import pytest

from hms import HttpError, Params, Request, Response, Router
from hms._router import _Pattern
from hms.schema import Struct


def request(method, path):
    return Request(method, path)


def body(response):
    return json.loads(response.body)


def echo(name):
    """A handler answering 200 with its name and what it was given."""

    def handler(req, params):
        return Response.json(200, {
            "route": name,
            "method": req.method,
            "named": [[k, params[k]] for k in params],
            "rest": params.rest,
        })

    return handler


def router():
    return (
        Router()
        .post("/identity/verify", echo("verify"))
        .get("/identity/citizens/{id}", echo("show"))
        .put("/identity/citizens/{id}", echo("put"))
        .get("/identity/citizens/new", echo("new"))
        .delete("/files/...", echo("files"))
        .get("/files/{name}", echo("file"))
        .route("PURGE", "/", echo("root"))
        .get("/pairs/{a}/{b}", echo("pair"))
    )


def call(method, path):
    return router().handle(request(method, path))


def test_literal_paths_match_exactly():
    r = call("POST", "/identity/verify?trace=1")
    assert r.status == 200
    assert body(r)["route"] == "verify"
    assert body(r)["rest"] is None
    assert body(call("PURGE", "/"))["route"] == "root"
    for path in ["/identity/verify/", "/identity", "/identity/verify/x", "/Identity/verify",
                 "identity/verify", "", "*"]:
        assert call("POST", path).status == 404, path


def test_parameters_capture_one_segment():
    r = call("GET", "/identity/citizens/C12345")
    assert body(r)["route"] == "show"
    assert body(r)["named"] == [["id", "C12345"]]
    r = call("PUT", "/identity/citizens/C%2012?x=y")
    assert body(r)["route"] == "put"
    assert body(r)["named"] == [["id", "C%2012"]]
    r = call("GET", "/pairs/1/2")
    assert body(r)["named"] == [["a", "1"], ["b", "2"]]
    # Neither an empty segment nor two segments.
    for path in ["/identity/citizens/", "/identity/citizens/a/b", "/pairs//2"]:
        assert call("GET", path).status == 404, path

    params = Params([("id", "C1")])
    assert params["id"] == "C1"
    assert params.get("other") is None
    with pytest.raises(KeyError, match=r"no parameter \{other\}"):
        params["other"]


def test_literals_beat_parameters_beat_rest():
    # Registered after {id}, still preferred.
    assert body(call("GET", "/identity/citizens/new"))["route"] == "new"
    assert body(call("GET", "/files/a"))["route"] == "file"
    # Only the rest pattern is registered for DELETE.
    r = call("DELETE", "/files/a")
    assert body(r)["route"] == "files"
    assert body(r)["rest"] == "a"


def test_rest_matches_the_prefix_and_below():
    for path, rest in [("/files", ""), ("/files/", ""), ("/files/a", "a"), ("/files/a/b/", "a/b/")]:
        r = call("DELETE", path)
        assert r.status == 200, path
        assert body(r)["rest"] == rest, path
    assert call("DELETE", "/filesystem").status == 404

    everything = Router().get("/...", echo("all"))
    for path in ["/", "/a", "/a/b"]:
        assert everything.handle(request("GET", path)).status == 200


def test_unknown_paths_are_404():
    r = call("GET", "/nowhere?x=1")
    assert r.status == 404
    assert body(r) == {"code": "not_found", "message": "no route for /nowhere"}
    assert r.body == b'{"code":"not_found","message":"no route for /nowhere"}'
    assert r.headers.get("content-type") == "application/json"
    assert Router().handle(request("GET", "/")).status == 404


def test_other_methods_are_405_with_allow():
    r = call("GET", "/identity/verify")
    assert r.status == 405
    assert body(r) == {"code": "method_not_allowed", "message": "use POST"}
    assert r.headers.get("allow") == "POST"

    # Registration order, each method once; HEAD is not implied by GET.
    r = call("HEAD", "/identity/citizens/C1")
    assert r.status == 405
    assert r.headers.get("allow") == "GET, PUT"
    assert body(r)["message"] == "use GET, PUT"
    r = call("DELETE", "/identity/citizens/new")
    assert r.headers.get("Allow") == "GET, PUT"

    # Every pattern matching the path counts.
    r = call("PUT", "/files/a")
    assert r.headers.get("allow") == "DELETE, GET"
    # Methods compare by name, case-sensitively.
    assert call("POST", "/identity/verify").status == 200
    assert call("post", "/identity/verify").status == 405


def test_handlers_may_answer_early_with_errors():
    N = Struct("Body", n=int)

    def strict(req, params):
        b = req.json(N)
        if params["id"] == "x":
            raise HttpError(403, "forbidden", "not x")
        return Response.json(200, b["n"])

    r = Router().post("/n/{id}", strict)
    req = Request("POST", "/n/a", body=b'{"n": 7}')
    assert r.handle(req).body == b"7"
    req.target = "/n/x"
    assert r.handle(req).status == 403
    req.body = b"{"
    assert r.handle(req).status == 400


def test_handlers_may_return_dicts_and_lists():
    r = Router().get("/d", lambda req, p: {"a": 1}).get("/l", lambda req, p: [1, "ü"])
    d = r.handle(request("GET", "/d"))
    assert (d.status, d.body, d.headers.get("content-type")) == (200, b'{"a":1}', "application/json")
    assert r.handle(request("GET", "/l")).body == '[1,"ü"]'.encode()
    bad = Router().get("/x", lambda req, p: "text")
    with pytest.raises(TypeError, match="return a Response"):
        bad.handle(request("GET", "/x"))


def test_patterns_start_with_a_slash():
    with pytest.raises(ValueError, match="must start with '/'"):
        Router().get("identity", echo("x"))


def test_malformed_patterns_are_refused():
    for pattern in ["/a/{}", "/a/{id", "/a/x{id}", "/.../a", "/a/{id}/{id}", "/a/{", "/a/}"]:
        with pytest.raises(ValueError):
            _Pattern(pattern)
    assert _Pattern("/").segments == [(False, "")]
