"""Request, Response and Headers (components/sdk/src/http.rs tests and more)."""

import pytest

from hms import Headers, HttpError, Request, Response


def request(headers, body):
    return Request("POST", "/identity/verify?x=1", headers, body)


def test_path_query_and_headers():
    req = request([("authorization", "Bearer abc")], "")
    assert req.path == "/identity/verify"
    assert req.query == "x=1"
    assert req.query_params == {"x": "1"}
    assert Request("GET", "/a").query == ""
    assert req.header("Authorization") == "Bearer abc"
    assert req.bearer_token() == "abc"
    assert request([("authorization", "Basic abc")], "").bearer_token() is None
    assert request([("authorization", "Bearer ")], "").bearer_token() is None
    assert request([("authorization", "bearer  abc ")], "").bearer_token() == "abc"
    assert request([("authorization", "Bearer")], "").bearer_token() is None
    assert request([], "").bearer_token() is None


def test_headers_are_case_insensitive_and_keep_raw_bytes():
    h = Headers({"Content-Type": "application/json"})
    h.add("X-A", b"1")
    h.add("x-a", "2")
    assert h.get("content-type") == "application/json"
    assert h["CONTENT-TYPE"] == "application/json"
    assert h.get_all("X-a") == ["1", "2"]
    assert "x-A" in h and "x-b" not in h
    h.set("x-a", "3")
    assert h.get_all("x-a") == ["3"]
    h.add("bin", b"\xff")
    assert h.get("bin") is None and h.raw("bin") == b"\xff"
    h.remove("bin")
    assert h.items() == [("content-type", b"application/json"), ("x-a", b"3")]
    with pytest.raises(KeyError):
        h["nope"]


def test_json_body_and_errors():
    assert request([], '{"id":"C1"}').json() == {"id": "C1"}
    for bad in ["{", "", '{"a":NaN}', '{"a":1} x', b'\xef\xbb\xbf{}', b'{"a":"\xff"}', '{"a":"\\ud800"}']:
        with pytest.raises(HttpError) as e:
            request([], bad).json()
        r = e.value.response()
        assert r.status == 400, bad
        assert r.json_body()["code"] == "bad_request"
        assert r.json_body()["message"].startswith("invalid JSON body: ")
        assert r.headers.get("content-type") == "application/json"
    # Invalid Unicode may be kept, for callers that check what they use.
    assert request([], b'{"a":"\xff"}').json(validate_unicode=False) == {"a": "\udcff"}


def test_deep_json_is_a_400_not_a_crash():
    # Inside a component CPython's parser would exhaust the wasm stack at
    # about 1000 levels (a trap): deeper than MAX_JSON_DEPTH is refused first.
    from hms._http import MAX_JSON_DEPTH, loads
    n = MAX_JSON_DEPTH
    assert loads("[" * n + "]" * n) is not None
    assert loads('{"a":' * n + "1" + "}" * n) is not None
    assert loads('["' + "[" * 10_000 + '"]') == ["[" * 10_000]     # brackets in strings do not count
    assert loads(r'["\"[[[", {"a": [[]]}]') == ['"[[[', {"a": [[]]}]
    for deep in ["[" * (n + 1) + "]" * (n + 1), '{"a":' * (n + 1) + "1" + "}" * (n + 1),
                 "[[]," * (n + 1) + "1" + "]" * (n + 1), "[" * 100_000, "]" * 1000 + "[" * 1000]:
        with pytest.raises(HttpError) as e:
            request([], deep).json()
        assert e.value.status == 400


def test_responses():
    r = Response.json(201, {"ü": [1, None]})
    assert r.status == 201
    assert r.body == '{"ü":[1,null]}'.encode()
    assert r.headers.items() == [("content-type", b"application/json")]
    e = Response.error(403, "forbidden", "nope").with_header("x-why", "because")
    assert e.body == b'{"code":"forbidden","message":"nope"}'
    assert e.headers.get("x-why") == "because"
    with pytest.raises(TypeError):
        Response.json(200, {"a": object()})
    with pytest.raises(ValueError):
        Response.json(200, float("nan"))
    assert HttpError(409, "conflict", "taken", headers={"retry-after": "1"}).response().headers.get("retry-after") == "1"
