"""report-service (Python) answers as components/report does, against the
real identity app and against stubs of identity for the odd answers."""

import importlib.util
import pathlib

import pytest

import app
import hms
from hms.testing import Core

REPORT = "report-service"


def load_identity():
    """The Python identity-service (components/identity-py/app.py)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "identity-py" / "app.py"
    spec = importlib.util.spec_from_file_location("identity_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def core():
    identity = load_identity()
    with Core(app.service, identity.service) as core:
        s = core.store("identity-service")
        s.data["citizen/C12345"] = b'{"status":"active","name":"Ada Example"}'
        s.data["citizen/C99999"] = b'{"status":"revoked","name":"Eve Revokedson"}'
        yield core


def check(core, body):
    return core.request("POST", "/reports/identity-check", body=body)


def test_the_seed_flow(core):
    r = check(core, '{"id":"C12345"}')
    assert (r.status, r.body) == (200, b'{"report":"ID C12345 is verified"}')
    assert check(core, '{"id":"C99999"}').json() == {"report": "ID C99999 is revoked"}
    assert check(core, '{"id":"X1"}').json() == {"report": "ID X1 is not on record"}
    assert core.events == [
        ("identity-service", "info", "Verified ID C12345"), (REPORT, "info", "Generated report for C12345"),
        ("identity-service", "info", "ID C99999 is revoked"), (REPORT, "info", "Generated report for C99999"),
        ("identity-service", "info", "ID X1 not found"), (REPORT, "info", "Generated report for X1"),
    ]


def test_bad_requests(core):
    for body in ["{", '{"id":5}', "{}", '"C1"']:
        r = check(core, body)
        assert r.status == 400 and r.json()["message"].startswith("invalid JSON body: "), body
    for blank in ['{"id":""}', '{"id":" \\t\\u3000"}']:
        assert check(core, blank).json() == {"code": "bad_request", "message": "`id` must not be empty"}
    # Not Rust whitespace: identity judges it.
    r = check(core, '{"id":"\\u001c"}')
    assert r.status == 400
    assert r.json()["message"].startswith("identity-service refused the ID: ")
    r = check(core, '{"id":"C 1"}')
    assert r.json() == {"code": "bad_request", "message": 'identity-service refused the ID: '
                        '{"code":"bad_request","message":"a citizen ID is 1-64 ASCII letters, digits or \'-\'"}'}
    assert core.messages(REPORT) == []
    assert check(core, '["C12345"]').status == 200


def test_identity_not_registered():
    with Core(app.service) as core:
        r = check(core, '{"id":"C12345"}')
        assert (r.status, r.json()) == (503, {"code": "dependency_unavailable",
                                              "message": "identity-service is not registered"})


def stub(status, body):
    identity = hms.Service("identity-service", ["/identity/..."], callers=["report-service"])

    @identity.post("/identity/verify")
    def verify(req, params):
        assert hms.auth.verify(req.bearer_token()).subject == REPORT
        assert req.body == b'{"id":"C1"}'
        return hms.Response(status, body)

    return identity


@pytest.mark.parametrize("status, body, expected", [
    (200, b'{"status":"confirmed","citizen_id":"C1"}', (200, {"report": "ID C1 is confirmed"})),
    (201, b'{"status":"fine"}', (200, {"report": "ID C1 is fine"})),
    (200, b"nope", (502, {"code": "upstream_error"})),
    (200, b'{"status":5}', (502, {"code": "upstream_error"})),
    (404, b'{"status":"gone"}', (502, {"code": "upstream_error", "message": 'identity-service answered 404: {"status":"gone"}'})),
    (404, b"x", (502, {"code": "upstream_error", "message": "identity-service answered 404: x"})),
    (400, b"bad", (400, {"code": "bad_request", "message": "identity-service refused the ID: bad"})),
    (500, b"\xff", (502, {"code": "upstream_error", "message": "identity-service answered 500: \ufffd"})),
])
def test_identity_answers_in_words(status, body, expected):
    with Core(app.service, stub(status, body)) as core:
        r = core.request("POST", "/reports/identity-check", json={"id": "C1", "extra": True})
        assert r.status == expected[0]
        for k, v in expected[1].items():
            assert r.json()[k] == v
        assert core.messages(REPORT) == (["Generated report for C1"] if r.status == 200 else [])


def test_calls_that_fail():
    with Core(app.service) as core:
        core.register_external("identity-service", "10.0.0.9", 80)
        r = check(core, '{"id":"C1"}')
        assert (r.status, r.json()) == (502, {"code": "upstream_error",
                                              "message": "calling identity-service failed: request failed: ConnectionRefused"})
