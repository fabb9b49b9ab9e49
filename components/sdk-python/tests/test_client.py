"""Outgoing calls: URL joining (client.rs tests), call(), caller policy."""

import pytest

from hms import CallError, Response, Service, ServiceNotFound, auth, call, client, registry
from hms.client import split_url
from hms.testing import Core


def test_urls_and_paths_join():
    assert split_url("http://127.0.0.1:8080", "/identity/verify") == ("http", "127.0.0.1:8080", "/identity/verify")
    assert split_url("HTTPS://svc.example/base/", "identity/verify?x=1") == ("https", "svc.example", "/base/identity/verify?x=1")
    assert split_url("http://h/base?q=1#frag", "/p") == ("http", "h", "/base/p")
    assert split_url("http://h:1/ok?q=1#frag", "") == ("http", "h:1", "/ok?q=1")
    assert split_url("http://h?q", "") == ("http", "h", "/?q")
    assert split_url("http://h", "") == ("http", "h", "/")
    assert split_url("ftp://h/x", "") == ("ftp", "h", "/x")


def test_bad_urls_are_refused():
    for url in ["127.0.0.1:8080", "http://", "http:///path", "/relative"]:
        with pytest.raises(client.InvalidUrl):
            split_url(url, "/x")


def test_errors_say_what_failed():
    e = client.Refused("HttpRequestDenied")
    assert str(e) == "request refused: HttpRequestDenied" and isinstance(e, CallError)
    assert str(client.Failed("ConnectionRefused")) == "request failed: ConnectionRefused"
    r = client.ClientResponse(404, [("Content-Type", "application/json")], b'{"status":"not_found"}')
    assert not r.ok
    assert r.header("content-type") == "application/json"
    assert r.json()["status"] == "not_found"
    assert r.text == '{"status":"not_found"}'
    assert str(ServiceNotFound("x")) == "x is not registered"


def services():
    callee = Service("callee", ["/callee/..."], callers=["caller"])

    @callee.post("/callee/echo")
    def echo(req, params):
        claims = auth.verify(req.bearer_token())
        return {"subject": claims.subject, "key_id": claims.key_id, "body": req.json(),
                "type": req.header("content-type")}

    @callee.get("/callee/plain")
    def plain(req, params):
        return Response(200, req.target.encode())

    caller = Service("caller", ["/caller/..."])

    @caller.post("/caller/go")
    def go(req, params):
        target = req.json()["target"]
        answer = call(target, "/callee/echo", json={"n": 1})
        return Response(answer.status, answer.body, answer.headers)

    intruder = Service("intruder", ["/intruder/..."])

    @intruder.post("/intruder/go")
    def sneak(req, params):
        answer = call("callee", "/callee/echo", json={})
        return Response(answer.status, answer.body)

    return callee, caller, intruder


def test_call_sends_own_token_and_json():
    with Core(*services()) as core:
        r = core.request("POST", "/caller/go", json={"target": "callee"})
        assert r.status == 200
        assert r.json() == {"subject": "caller", "key_id": "workload", "body": {"n": 1},
                            "type": "application/json"}


def test_caller_policy():
    with Core(*services()) as core:
        r = core.request("POST", "/intruder/go")
        assert r.status == 403
        assert r.json() == {"code": "forbidden", "message": "intruder may not call callee"}
        assert core.messages("callee", "warn") == [
            "refused a call from intruder: only caller may call callee"]
        # Outside clients are not callers: they bring their own credentials.
        r = core.request("POST", "/callee/echo", json={}, token=core.token("portal"))
        assert r.json()["subject"] == "portal"
        assert core.request("POST", "/callee/echo", json={}, caller="intruder").status == 403


def test_unregistered_services_and_refused_destinations():
    with Core(*services()) as core:
        r = core.request("POST", "/caller/go", json={"target": "nobody"})
        assert r.status == 500          # ServiceNotFound escaped the handler
        assert "ServiceNotFound: nobody is not registered" in core.events[-1].message
        with core.as_service("caller"):
            with pytest.raises(ServiceNotFound):
                call("nobody", "/x")
            with pytest.raises(client.Refused) as e:
                client.get("http://203.0.113.9:80", "/x")
            assert e.value.code == "HttpRequestDenied"
            with pytest.raises(client.InvalidRequest):
                client.send("GET", core.url, "/callee/plain", [("host", "evil")])
            r = client.get(core.url + "/callee", "plain?x=1")
            assert r.text == "/callee/plain?x=1"


def test_external_services():
    with Core(*services()) as core:
        core.register_external("stats", "10.0.0.5", 9000, lambda req: {"path": req.target})
        core.register_external("down", "10.0.0.6", 9000)
        with core.as_service("caller"):
            ep = registry.discover("stats")
            assert (ep.url, ep.host, ep.port) == ("http://10.0.0.5:9000", "10.0.0.5", 9000)
            assert call("stats", "/v1/x", method="GET").json() == {"path": "/v1/x"}
            with pytest.raises(client.Failed, match="ConnectionRefused"):
                call("down", "/")
            registry.register("mine", "example.org", 443)
            assert registry.discover("mine").url == "http://example.org:443"
            with pytest.raises(registry.NameTaken):
                registry.register("callee", "example.org", 80)
            with pytest.raises(registry.InvalidName):
                registry.register("Bad Name", "example.org", 80)
            with pytest.raises(registry.InvalidAddress):
                registry.register("x", "", 80)
            ep = registry.discover("callee")
            assert (ep.url, ep.port) == ("http://127.0.0.1:8080", 8080)
            assert registry.discover("nobody") is None
