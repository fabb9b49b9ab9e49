"""identity-service (Python) answers as the Rust one: the Rust crate's own
tests, and every route and error branch of components/identity-core."""

import json

import pytest

import app
from hms.testing import Core

ID = "identity-service"


@pytest.fixture
def core():
    with Core(app.service) as core:
        s = core.store(ID)
        s.data["citizen/C12345"] = b'{"status":"active","name":"Ada Example"}'
        s.data["citizen/C99999"] = b'{"status":"revoked","name":"Eve Revokedson"}'
        yield core


@pytest.fixture
def admin(core):
    return core.token("identity-admin")


def verify(core, body, token):
    return core.request("POST", "/identity/verify", body=body, token=token)


# -- the Rust crate's tests


def test_unknown_paths_and_methods(core):
    r = core.request("GET", "/identity/verify")
    assert r.status == 405
    assert r.body == b'{"code":"method_not_allowed","message":"use POST"}'
    assert r.header("allow") == "POST"
    r = core.request("DELETE", "/identity/citizens/C12345")
    assert r.status == 405
    assert r.body == b'{"code":"method_not_allowed","message":"use GET, PUT"}'
    assert r.header("allow") == "GET, PUT"
    r = core.request("POST", "/identity/other?x=1")
    assert r.status == 404
    assert r.body == b'{"code":"not_found","message":"no route for /identity/other"}'
    for path in ["/identity/citizens/", "/identity/citizens/C1/x", "/identity"]:
        assert core.request("GET", path).status == 404, path


def test_routes_need_a_bearer_token(core):
    for method, path in [("POST", "/identity/verify"), ("GET", "/identity/citizens/C12345"),
                         ("PUT", "/identity/citizens/C12345")]:
        r = core.request(method, path, body=b'{"id":"C12345"}', headers={"authorization": "Basic x"})
        assert r.status == 401, path
        assert r.body == (b'{"code":"unauthorized","message":'
                          b'"missing or malformed Authorization: Bearer header"}')


@pytest.mark.parametrize("id", ["C12345", "a" * 64, "x-1"])
def test_good_citizen_ids(core, admin, id):
    assert verify(core, json.dumps({"id": id}), admin).status in (200, 404)


@pytest.mark.parametrize("id", ["", "C 1", "C/1", "Ç1", "a" * 65, "C1\n"])
def test_bad_citizen_ids(core, admin, id):
    r = verify(core, json.dumps({"id": id}), admin)
    assert r.status == 400
    assert r.json() == {"code": "bad_request",
                        "message": "a citizen ID is 1-64 ASCII letters, digits or '-'"}
    assert core.events == []


# -- verify


def test_verify_outcomes_and_events(core):
    token = core.token("citizen-portal")
    r = verify(core, '{"id":"C12345"}', token)
    assert (r.status, r.body) == (200, b'{"citizen_id":"C12345","status":"verified"}')
    assert r.header("content-type") == "application/json"
    r = verify(core, '{"id":"C99999"}', token)
    assert (r.status, r.body) == (200, b'{"citizen_id":"C99999","status":"revoked"}')
    r = verify(core, '{"id":"X1"}', token)
    assert (r.status, r.body) == (404, b'{"citizen_id":"X1","status":"not_found"}')
    assert core.messages(ID, "info") == ["Verified ID C12345", "ID C99999 is revoked", "ID X1 not found"]


@pytest.mark.parametrize("body", [
    '["C12345"]', '{"id":"C12345","extra":{"id":1}}', '{"x":1,"x":2,"id":"C12345"}',
    b'{"id":"C12345","x":"\xff"}', '{"id":"C12345","x":"\\ud800"}',
])
def test_verify_accepts_what_serde_accepts(core, body):
    assert verify(core, body, core.token("p")).status == 200


@pytest.mark.parametrize("body", [
    "", "{", '{"id":5}', "{}", '"x"', "[]", '["C12345",1]', '{"id":"a","id":"b"}',
    '{"id":"C12345"} x', '{"id":"C12345","x":NaN}', b'\xef\xbb\xbf{"id":"C12345"}',
])
def test_verify_refuses_bad_json(core, body):
    r = verify(core, body, core.token("p"))
    assert r.status == 400
    assert r.json()["code"] == "bad_request"
    assert r.json()["message"].startswith("invalid JSON body: ")


def test_token_problems_are_401(core):
    key = core.api_key("p")
    token = core.auth_authenticate(key)
    r = verify(core, '{"id":"C12345"}', "nonsense")
    assert r.status == 401 and r.json()["message"].startswith("invalid token: ")
    core.revoke(key)
    assert verify(core, '{"id":"C12345"}', token).json() == {"code": "unauthorized", "message": "key revoked"}
    token = core.token("p")
    core.advance(10_000)
    assert verify(core, '{"id":"C12345"}', token).json() == {"code": "unauthorized", "message": "token expired"}


# -- admin routes


def test_admin_put_and_get(core, admin):
    r = core.request("PUT", "/identity/citizens/C40004", token=admin,
                     body='{"status":"active","name":"Grace Example","extra":1}')
    assert (r.status, r.body) == (200, b'{"citizen_id":"C40004","name":"Grace Example","status":"active"}')
    # Stored exactly as the Rust version stores it.
    assert core.store(ID).data["citizen/C40004"] == b'{"status":"active","name":"Grace Example"}'
    assert core.messages(ID) == ["Citizen C40004 set to active by identity-admin"]
    r = core.request("GET", "/identity/citizens/C40004", token=admin)
    assert (r.status, r.body) == (200, b'{"citizen_id":"C40004","name":"Grace Example","status":"active"}')

    r = core.request("PUT", "/identity/citizens/C40004", token=admin, body='["revoked"]')
    assert r.body == b'{"citizen_id":"C40004","name":null,"status":"revoked"}'
    assert core.store(ID).data["citizen/C40004"] == b'{"status":"revoked"}'
    r = core.request("PUT", "/identity/citizens/C40004", token=admin, body='{"status":{"active":null}}')
    assert r.json()["status"] == "active"
    assert verify(core, '{"id":"C40004"}', admin).json()["status"] == "verified"

    r = core.request("GET", "/identity/citizens/C77777", token=admin)
    assert (r.status, r.json()) == (404, {"code": "not_found", "message": "no record of citizen C77777"})


@pytest.mark.parametrize("body", [
    '{"status":"gone"}', '{"name":"x"}', '{"status":"active","name":5}', '{"status":"active","status":"revoked"}',
    '{"status":"active","name":"\\ud800"}', '["active","x",1]', "null",
])
def test_put_refuses_bad_records(core, admin, body):
    r = core.request("PUT", "/identity/citizens/C40004", token=admin, body=body)
    assert r.status == 400, body
    assert r.json()["message"].startswith("invalid JSON body: ")
    assert "citizen/C40004" not in core.store(ID).data


def test_admin_routes_need_an_admin(core):
    token = core.token("citizen-portal")
    for method in ["GET", "PUT"]:
        r = core.request(method, "/identity/citizens/C12345", token=token, body='{"status":"active"}')
        assert (r.status, r.json()) == (403, {"code": "forbidden",
                                              "message": "citizen-portal may not manage citizen records"})
    # The subject is checked before the ID, the ID before the body.
    assert core.request("GET", "/identity/citizens/C%201", token=token).status == 403
    admin = core.token("identity-admin")
    assert core.request("PUT", "/identity/citizens/C%201", token=admin, body="{").json()["message"].startswith("a citizen ID")


def test_corrupt_records_are_500_and_logged(core, admin):
    core.store(ID).data["citizen/C1"] = b'{"status":"unknown"}'
    core.store(ID).data["citizen/C2"] = b"not json"
    for id in ["C1", "C2"]:
        r = verify(core, json.dumps({"id": id}), admin)
        assert (r.status, r.json()) == (500, {"code": "internal", "message": f"the record of citizen {id} is corrupt"})
        r = core.request("GET", f"/identity/citizens/{id}", token=admin)
        assert r.status == 500
    errors = core.messages(ID, "error")
    assert len(errors) == 4
    assert errors[0].startswith("Record of citizen C1 is corrupt: ")


def test_store_failures(core, admin):
    core.store(ID).fail("database is locked")
    r = verify(core, '{"id":"C12345"}', admin)
    assert (r.status, r.json()) == (503, {"code": "store_unavailable",
                                          "message": "citizen store unavailable: database is locked"})
    core.store(ID).fail(None)
    core.store(ID).max_value_bytes = 10
    r = core.request("PUT", "/identity/citizens/C5", token=admin, body='{"status":"active"}')
    assert (r.status, r.json()) == (413, {"code": "payload_too_large", "message": "a record may have at most 10 bytes"})
    core.store(ID).max_value_bytes = 1000
    core.store(ID).quota = 100
    r = core.request("PUT", "/identity/citizens/C5", token=admin, body='{"status":"active"}')
    assert (r.status, r.json()) == (507, {"code": "insufficient_storage", "message": "the citizen store is full (100 bytes)"})


def test_only_report_service_may_call(core, admin):
    assert app.service.callers == ["report-service"]
    r = core.request("POST", "/identity/verify", body='{"id":"C12345"}', token=admin, caller="report-service")
    assert r.status == 200
    r = core.request("POST", "/identity/verify", body='{"id":"C12345"}', token=admin, caller="other-service")
    assert (r.status, r.json()) == (403, {"code": "forbidden", "message": "other-service may not call identity-service"})
