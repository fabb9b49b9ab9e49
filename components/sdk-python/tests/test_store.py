"""hms.store over the in-memory store of hms.testing: the host's semantics."""

import pytest

from hms import Service, store
from hms.schema import Struct
from hms.testing import Core


@pytest.fixture
def core():
    with Core(Service("probe", ["/probe/..."]), max_key_bytes=16, max_value_bytes=8,
              store_quota=40) as core:
        yield core


def test_get_set_delete(core):
    assert store.get("a") is None
    store.set("a", b"1")
    store.set("b", "ü")
    assert store.get("a") == b"1"
    assert store.get("b") == "ü".encode()
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert core.store("probe").data == {"b": "ü".encode()}
    with pytest.raises(TypeError):
        store.set("c", 5)


def test_limits(core):
    with pytest.raises(store.InvalidKey) as e:
        store.get("")
    assert e.value.reason == "empty" and str(e.value) == "invalid key: empty"
    with pytest.raises(store.InvalidKey, match="17 bytes; at most 16 are allowed"):
        store.set("k" * 17, b"")
    with pytest.raises(store.ValueTooLarge) as e:
        store.set("k", b"123456789")
    assert e.value.limit == 8


def test_quota(core):
    for i in range(3):
        store.set(f"key{i}", b"1234567")     # 11 bytes each
    with pytest.raises(store.QuotaExceeded) as e:
        store.set("key3", b"1234567")
    assert e.value.quota == 40
    store.set("key0", b"1")                  # shrinking is always allowed
    store.set("key3", b"1234567")
    assert isinstance(e.value, store.StoreError)


def test_unavailable(core):
    core.store("probe").fail("disk on fire")
    with pytest.raises(store.Unavailable) as e:
        store.get("a")
    assert e.value.reason == "disk on fire"
    with pytest.raises(store.InvalidKey):       # the key is checked first
        store.get("")
    core.store("probe").fail(None)
    assert store.get("a") is None


def test_paging(core):
    core.store("probe").max_key_bytes = 64
    core.store("probe").quota = 10_000
    names = [f"c/{i:02}" for i in range(7)] + ["b", "d", "c"]
    for name in names:
        store.set(name, b"")
    page = store.list_keys("c/", None, 3)
    assert page.keys == ["c/00", "c/01", "c/02"] and page.next == "c/02"
    page = store.list_keys("c/", page.next, 3)
    assert page.keys == ["c/03", "c/04", "c/05"]
    page = store.list_keys("c/", page.next, 3)
    assert page.keys == ["c/06"] and page.next is None
    assert list(store.keys("c/", page_size=2)) == [f"c/{i:02}" for i in range(7)]
    assert [p.keys for p in store.pages("c/0", page_size=4)] == [
        ["c/00", "c/01", "c/02", "c/03"], ["c/04", "c/05", "c/06"]]
    assert list(store.keys()) == sorted(names)
    # A cursor before the prefix starts at the prefix; exactly full is the last page.
    assert store.list_keys("c/", "a", 7).keys == [f"c/{i:02}" for i in range(7)]
    assert store.list_keys("c/", "a", 7).next is None
    for limit in (0, 1001):
        with pytest.raises(store.InvalidKey, match="pages hold 1 to 1000 keys"):
            store.list_keys("", None, limit)


def test_compare_and_swap(core):
    assert store.compare_and_swap("k", None, b"1") is True
    assert store.compare_and_swap("k", None, b"2") is False
    assert store.compare_and_swap("k", b"2", b"3") is False
    assert store.compare_and_swap("k", "1", "3") is True
    assert store.get("k") == b"3"
    with pytest.raises(store.ValueTooLarge):
        store.compare_and_swap("k", b"3", b"123456789")


def test_increment(core):
    core.store("probe").max_value_bytes = 100
    core.store("probe").quota = 10_000
    assert store.increment("n") == 1
    assert store.increment("n", 41) == 42
    assert store.increment("n", -50) == -8
    assert store.get("n") == b"-8"
    store.set("m", b" +7 ")
    assert store.increment("m", 0) == 7
    for bad in [b"x", b"1.5", b"1_000", b"", "٣".encode(), b"\xff"]:
        store.set("bad", bad)
        with pytest.raises(store.NotANumber):
            store.increment("bad")
    store.set("big", str(2**63 - 1).encode())
    with pytest.raises(store.NotANumber):
        store.increment("big")
    assert store.increment("big", -1) == 2**63 - 2
    with pytest.raises(TypeError):
        store.increment("n", 1.5)


def test_json(core):
    core.store("probe").max_value_bytes = 1000
    core.store("probe").quota = 10_000
    store.set_json("j", {"status": "active", "name": "Ü"})
    assert store.get("j") == '{"status":"active","name":"Ü"}'.encode()
    assert store.get_json("j") == {"status": "active", "name": "Ü"}
    assert store.get_json("missing") is None
    assert store.get_json("missing", default={}) == {}
    store.set("broken", b"{")
    with pytest.raises(store.DecodeError) as e:
        store.get_json("broken")
    assert e.value.key == "broken"
    S = Struct("S", status=str)
    assert store.get_json("j", S) == {"status": "active"}
    store.set("wrong", b'{"status":1}')
    with pytest.raises(store.DecodeError):
        store.get_json("wrong", S)


def test_stores_are_per_service(core):
    other = core.deploy(Service("other", ["/other/..."]))
    store.set("k", b"probe")
    with core.as_service(other.name):
        assert store.get("k") is None
        store.set("k", b"other")
    assert store.get("k") == b"probe"


def test_what_core_cannot_take_is_refused_before_it_reaches_the_bindings(core):
    # A lone surrogate or a wrong type would trap the component while
    # lowering the call; they are errors here instead.
    with pytest.raises(store.InvalidKey, match="not valid Unicode"):
        store.get("k\udcff")
    with pytest.raises(store.InvalidKey, match="not valid Unicode"):
        store.list_keys("\ud800")
    with pytest.raises(TypeError):
        store.get(5)
    with pytest.raises(TypeError):
        store.list_keys("", None, "10")
    with pytest.raises(ValueError):
        store.increment("n", 2**63)
