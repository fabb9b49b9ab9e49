"""hms.schema accepts and refuses what serde does for a Rust struct (the
cases were checked against the Rust identity-service)."""

import pytest

from hms.schema import ANY, Struct, field, one_of, optional

Verify = Struct("VerifyRequest", id=str)
Citizen = Struct("Citizen", status=one_of("active", "revoked"), name=optional(str))


@pytest.mark.parametrize("text, value", [
    ('{"id":"C1"}', {"id": "C1"}),
    ('{"id":"C1","x":{"id":1},"y":[[[]]]}', {"id": "C1"}),   # unknown fields ignored
    ('{"x":1,"x":2,"id":"C1"}', {"id": "C1"}),               # unknown duplicates too
    ('["C1"]', {"id": "C1"}),                                 # serde: a struct may be an array
    (b'{"id":"C1","x":"\xff"}', {"id": "C1"}),                # what is not read is not checked
    ('{"id":"C1","x":"\\ud800"}', {"id": "C1"}),
    ('{"id":"C1","x":1e400}', {"id": "C1"}),
])
def test_accepted(text, value):
    assert Verify.loads(text) == value


@pytest.mark.parametrize("text, reason", [
    ('{"id":5}', "invalid type: integer `5`, expected a string"),
    ('{"id":null}', "invalid type: null, expected a string"),
    ("{}", "missing field `id`"),
    ('{"id":"a","id":"b"}', "duplicate field `id`"),
    ('"x"', 'invalid type: string "x", expected struct VerifyRequest'),
    ("[]", "invalid length 0, expected struct VerifyRequest with 1 element"),
    ('["C1", 1]', "invalid length 2"),
    ('{"id":"\\ud800"}', "invalid unicode code point"),
    (b'{"id":"\xff"}', "invalid unicode code point"),
    ('{"id":"C1"} x', "Extra data"),
    ('{"id":"C1","x":NaN}', "NaN is not JSON"),
])
def test_refused(text, reason):
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("(", r"\(")):
        Verify.loads(text)


def test_enums_options_and_defaults():
    assert Citizen.loads('{"status":"active"}') == {"status": "active", "name": None}
    assert Citizen.loads('{"status":"revoked","name":null}') == {"status": "revoked", "name": None}
    assert Citizen.loads('{"status":{"active":null},"name":"Ada"}') == {"status": "active", "name": "Ada"}
    assert Citizen.loads('["revoked"]') == {"status": "revoked", "name": None}
    assert Citizen.loads('["active","Ada"]') == {"status": "active", "name": "Ada"}
    for bad in ['{"status":"gone"}', '{"status":"Active"}', '{"status":{"active":1}}',
                '{"status":{}}', '{"status":"active","name":5}', '{"name":"x"}', '["active","x",1]']:
        with pytest.raises(ValueError):
            Citizen.loads(bad)
    with pytest.raises(ValueError, match="unknown variant `gone`, expected `active` or `revoked`"):
        Citizen.loads('{"status":"gone"}')

    S = Struct("S", n=field(int, default=0), f=optional(float), b=optional(bool), any=optional(ANY))
    assert S.loads("{}") == {"n": 0, "f": None, "b": None, "any": None}
    assert S.loads('{"n":-3,"f":1,"b":true,"any":{"a":[{"b":1}]}}') == {
        "n": -3, "f": 1.0, "b": True, "any": {"a": [{"b": 1}]}}
    for bad in ['{"n":true}', '{"n":1.5}', '{"n":9223372036854775808}', '{"b":1}', '{"f":"1"}']:
        with pytest.raises(ValueError):
            S.loads(bad)
    assert S.check({"n": 2}) == {"n": 2, "f": None, "b": None, "any": None}
