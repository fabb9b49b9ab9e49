"""Service: decorators, error answers, and exceptions -> 500 + one event."""

import pytest

from hms import HttpError, Request, Response, Service, log
from hms.testing import Core, Event


def make():
    service = Service("scratch", ["/scratch/..."], callers=["report-service"])

    @service.get("/scratch/boom")
    def boom(req, params):
        return {"n": 1 / 0}

    @service.post("/scratch/items/{id}")
    def item(req, params):
        if params["id"] == "taken":
            raise HttpError(409, "conflict", "item taken")
        body = req.json()
        log.info(f"stored {params['id']}")
        return Response.json(201, {"id": params["id"], "body": body})

    @service.get("/scratch/exit")
    def leave(req, params):
        raise SystemExit(3)

    return service


def test_service_info():
    s = make()
    assert (s.name, s.routes, s.callers) == ("scratch", ["/scratch/..."], ["report-service"])
    assert s.router.routes() == [("GET", "/scratch/boom"), ("POST", "/scratch/items/{id}"),
                                 ("GET", "/scratch/exit")]
    for bad in ["", "Upper", "a_b", "x" * 65, None]:
        with pytest.raises(ValueError):
            Service(bad, ["/x/..."])
    with pytest.raises(TypeError):
        Service("x", "/x/...")
    with pytest.raises(ValueError):
        Service("x", ["x/..."])
    with pytest.raises(ValueError):
        make().get("no-slash")(lambda req, params: {})


def test_an_exception_is_a_500_and_one_event():
    with Core(make()) as core:
        r = core.request("GET", "/scratch/boom?secret=1")
        assert r.status == 500
        assert r.body == b'{"code":"internal","message":"internal error"}'
        assert r.header("content-type") == "application/json"
        assert len(core.events) == 1
        event = core.events[0]
        assert (event.service, event.level) == ("scratch", "error")
        assert event.message.startswith("unhandled ZeroDivisionError in GET /scratch/boom\n")
        assert "Traceback (most recent call last)" in event.message
        assert "in boom" in event.message
        assert event.message.rstrip().endswith("ZeroDivisionError: division by zero")
        assert "secret" not in event.message
        # SystemExit does not escape either: it would end the instance.
        r = core.request("GET", "/scratch/exit")
        assert r.status == 500 and len(core.events) == 2


def test_tracebacks_are_bounded():
    service = Service("deep", ["/deep"])

    @service.get("/deep")
    def deep(req, params):
        def down(n):
            return down(n + 1)
        return down(0)

    with Core(service) as core:
        assert core.request("GET", "/deep").status == 500
        (event,) = core.events
        assert "RecursionError" in event.message
        assert len(event.message) < 17 * 1024


def test_http_errors_and_bad_json_are_answers_not_events():
    with Core(make()) as core:
        r = core.request("POST", "/scratch/items/taken", json={})
        assert (r.status, r.json()) == (409, {"code": "conflict", "message": "item taken"})
        r = core.request("POST", "/scratch/items/a", body=b"{")
        assert r.status == 400 and r.json()["message"].startswith("invalid JSON body: ")
        assert core.events == []
        r = core.request("POST", "/scratch/items/a", json={"x": [1]})
        assert (r.status, r.json()) == (201, {"id": "a", "body": {"x": [1]}})
        assert core.events == [Event("scratch", "info", "stored a")]


def test_routing_answers():
    with Core(make()) as core:
        r = core.request("DELETE", "/scratch/boom")
        assert (r.status, r.header("allow")) == (405, "GET")
        assert r.json() == {"code": "method_not_allowed", "message": "use GET"}
        r = core.request("GET", "/scratch/none?q")
        assert r.json() == {"code": "not_found", "message": "no route for /scratch/none"}
        # Not the service's host route at all: the host answers.
        r = core.request("GET", "/elsewhere")
        assert r.json() == {"code": "not_found", "message": "no service serves /elsewhere"}


def test_handle_without_a_core_still_answers():
    service = make()
    r = service.handle(Request("POST", "/scratch/items/taken"))
    assert r.status == 409


def test_subclass_dispatch():
    class Plain(Service):
        def dispatch(self, req):
            return Response(200, b"plain")

    with Core(Plain("plain", ["/plain/..."])) as core:
        assert core.request("GET", "/plain/anything").body == b"plain"
