"""The service's private, durable store (``hms:core/store``).

Keys are non-empty UTF-8 strings; values are bytes (``str`` values are
stored as UTF-8); JSON text is the convention (``get_json``/``set_json``).
Every write returns once it is durable. Errors are :class:`StoreError`
subclasses: :class:`InvalidKey`, :class:`ValueTooLarge`,
:class:`QuotaExceeded`, :class:`NotANumber`, :class:`Unavailable`; a stored
value that is not the JSON asked for is a :class:`DecodeError` (not a
``StoreError``: the store worked).

    store.set_json("citizen/C1", {"status": "active"})
    store.get_json("citizen/C1")           # {"status": "active"}
    store.increment("visits")              # 1
    for key in store.keys("citizen/"):     # every key, page by page
        ...
"""

from dataclasses import dataclass

from . import _backend
from ._http import dumps as _dumps
from ._http import loads as _loads

__all__ = [
    "StoreError", "InvalidKey", "ValueTooLarge", "QuotaExceeded", "NotANumber",
    "Unavailable", "DecodeError", "KeyPage", "MAX_PAGE",
    "get", "set", "delete", "list_keys", "pages", "keys", "compare_and_swap",
    "increment", "get_json", "set_json",
]

#: Most keys one page may hold.
MAX_PAGE = 1000


class StoreError(Exception):
    """Why a store operation failed (the WIT ``store-error``)."""


class InvalidKey(StoreError):
    """The key is empty or longer than the service's key limit (or a page
    limit is outside 1-1000)."""

    def __init__(self, reason):
        super().__init__(f"invalid key: {reason}")
        self.reason = reason

    def __repr__(self):
        return f'InvalidKey("{self.reason}")'


class ValueTooLarge(StoreError):
    """The value is longer than the service's value limit, ``limit`` bytes."""

    def __init__(self, limit):
        super().__init__(f"value over the limit of {limit} bytes")
        self.limit = limit

    def __repr__(self):
        return f"ValueTooLarge({self.limit})"


class QuotaExceeded(StoreError):
    """The write would take the service over its quota of ``quota`` bytes."""

    def __init__(self, quota):
        super().__init__(f"the store's quota of {quota} bytes would be exceeded")
        self.quota = quota

    def __repr__(self):
        return f"QuotaExceeded({self.quota})"


class NotANumber(StoreError):
    """``increment`` found a value that is not a decimal integer, or the sum
    would overflow a signed 64-bit integer."""

    def __init__(self):
        super().__init__("the value is not a decimal integer, or the sum overflows")

    def __repr__(self):
        return "NotANumber"


class Unavailable(StoreError):
    """The host could not read or write the database."""

    def __init__(self, reason):
        super().__init__(f"store unavailable: {reason}")
        self.reason = reason

    def __repr__(self):
        return f'Unavailable("{self.reason}")'


class DecodeError(ValueError):
    """The value at ``key`` is not the JSON asked for."""

    def __init__(self, key, reason):
        super().__init__(f"the value at {key} is not valid JSON: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class KeyPage:
    """One page of keys, in ascending order; ``next`` is the cursor of the
    next page, ``None`` on the last."""

    keys: list
    next: "str | None"


def _key(key, what="key"):
    """``key`` if it is a str Core can take (valid Unicode), else an error
    (a lone surrogate would otherwise trap the component in the bindings)."""
    if not isinstance(key, str):
        raise TypeError(f"a store {what} is a str, not {type(key).__name__}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(f"the {what} is not valid Unicode") from None
    return key


def _bytes(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"store values are bytes or str, not {type(value).__name__}")


def get(key):
    """The value at ``key`` (bytes), or ``None``."""
    return _backend.core().store_get(_key(key))


def set(key, value):
    """Set ``key`` to ``value`` (bytes, or str stored as UTF-8)."""
    _backend.core().store_set(_key(key), _bytes(value))


def delete(key):
    """Remove ``key``; whether it was there."""
    return _backend.core().store_delete(_key(key))


def list_keys(prefix="", cursor=None, limit=100):
    """One :class:`KeyPage` of the keys starting with ``prefix``, at most
    ``limit`` (1-1000), after ``cursor`` (the previous page's ``next``)."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError("limit must be an int")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidKey(f"limit {limit}: pages hold 1 to {MAX_PAGE} keys")
    prefix = _key(prefix, "prefix")
    cursor = None if cursor is None else _key(cursor, "cursor")
    return _backend.core().store_list_keys(prefix, cursor, limit)


def pages(prefix="", page_size=100):
    """Every page of keys starting with ``prefix``, following the cursors."""
    cursor = None
    while True:
        page = list_keys(prefix, cursor, page_size)
        yield page
        if page.next is None:
            return
        cursor = page.next


def keys(prefix="", page_size=100):
    """Every key starting with ``prefix``, in ascending order, fetched
    ``page_size`` at a time."""
    for page in pages(prefix, page_size):
        yield from page.keys


def compare_and_swap(key, expected, value):
    """Set ``key`` to ``value`` only if its value is ``expected`` (``None``:
    only if absent); whether it was set. Atomic."""
    return _backend.core().store_compare_and_swap(
        _key(key), None if expected is None else _bytes(expected), _bytes(value)
    )


def increment(key, delta=1):
    """Add ``delta`` to the decimal integer at ``key`` (absent counts as 0);
    the sum. Atomic. :class:`NotANumber` if the value is not an integer or
    the sum overflows 64 bits."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError("delta must be an int")
    if not -(2**63) <= delta < 2**63:
        raise ValueError("delta must fit in a signed 64-bit integer")
    return _backend.core().store_increment(_key(key), delta)


def get_json(key, schema=None, default=None):
    """The value at ``key`` parsed as JSON (as a :class:`hms.schema.Struct`
    if one is given), or ``default`` if there is none. A value that does
    not parse is a :class:`DecodeError`."""
    value = get(key)
    if value is None:
        return default
    try:
        return schema.loads(value) if schema is not None else _loads(value)
    except ValueError as e:
        raise DecodeError(key, e) from None


def set_json(key, value):
    """Set ``key`` to ``value`` as compact JSON text."""
    set(key, _dumps(value))
