"""Tests of {{name}} on plain CPython, against hms.testing's in-memory Core."""

import pytest

import app
from hms.testing import Core


@pytest.fixture
def core():
    with Core(app.service) as core:
        yield core


def test_items_round_trip(core):
    r = core.request("PUT", "/{{name}}/items/a", json={"text": "hello"})
    assert (r.status, r.json()) == (200, {"text": "hello"})
    assert core.request("GET", "/{{name}}/items/a").json() == {"text": "hello"}
    assert core.request("GET", "/{{name}}/items/b").status == 404
    assert core.request("PUT", "/{{name}}/items/a", body=b"{").status == 400
    assert core.messages("{{name}}") == ["stored item a"]
