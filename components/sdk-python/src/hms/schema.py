"""Typed JSON structs, checked the way serde checks a Rust struct, so that a
Python service accepts and refuses the same bodies as its Rust twin.

    Citizen = Struct("Citizen", status=one_of("active", "revoked"),
                     name=optional(str))
    record = req.json(Citizen)      # {"status": "active", "name": None}

A struct is a JSON object of its fields (unknown fields ignored, a field
given twice refused, a missing field refused unless it is ``optional`` or
has a ``default``), or, as serde also accepts, an array of the field values
in declaration order. Field types: ``str``, ``int``, ``float``, ``bool``,
``optional(T)`` (``null`` or absent is ``None``), ``one_of(*names)`` (a Rust
unit enum: ``"name"``, or ``{"name": null}``), ``ANY`` (any JSON value,
unchecked). ``loads`` raises ``ValueError`` with a serde-like reason.
Strings of the declared fields must be valid Unicode; the rest of the
document is only parsed, as serde skips what it does not read.
"""

from ._http import loads as _loads

__all__ = ["Struct", "optional", "one_of", "ANY", "field"]

_MISSING = object()


class _Pairs(list):
    """A JSON object as its (key, value) pairs, duplicates kept."""


def _plain(value):
    """A parsed value with every _Pairs turned into a dict (last key wins)."""
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _describe(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, _Pairs):
        return "map"
    return "sequence"


def _check_unicode(s):
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("invalid unicode code point") from None
    return s


class _Type:
    expected = "a value"
    optional = False

    def check(self, value):
        raise NotImplementedError


class _Scalar(_Type):
    def __init__(self, kind):
        self.kind = kind
        self.expected = {str: "a string", int: "i64", float: "f64", bool: "a boolean"}[kind]

    def check(self, value):
        kind = self.kind
        if kind is str and isinstance(value, str):
            return _check_unicode(value)
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            if -(2**63) <= value < 2**63:
                return value
            raise ValueError(f"invalid value: integer `{value}`, expected i64")
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"invalid type: {_describe(value)}, expected {self.expected}")


class _Optional(_Type):
    optional = True

    def __init__(self, inner):
        self.inner = _type(inner)
        self.expected = self.inner.expected

    def check(self, value):
        return None if value is None else self.inner.check(value)


class _OneOf(_Type):
    def __init__(self, names):
        self.names = tuple(names)
        self.expected = " or ".join(f"`{n}`" for n in self.names)

    def check(self, value):
        if isinstance(value, _Pairs):
            # serde's externally tagged form of a unit variant: {"name": null}
            if len(value) != 1:
                raise ValueError("expected one variant name, found a map of " f"{len(value)}")
            (value, payload), = value
            if payload is not None:
                raise ValueError(f"invalid type: {_describe(payload)}, expected unit variant")
        if not isinstance(value, str):
            raise ValueError(f"invalid type: {_describe(value)}, expected variant identifier")
        if value not in self.names:
            raise ValueError(f"unknown variant `{value}`, expected {self.expected}")
        return value


class _Any(_Type):
    def check(self, value):
        try:
            return _plain(value)
        except RecursionError:
            raise ValueError("nested too deep") from None


ANY = _Any()


def _type(t):
    if isinstance(t, _Type):
        return t
    if t in (str, int, float, bool):
        return _Scalar(t)
    raise TypeError(f"not a schema type: {t!r}")


def optional(t):
    """``null`` or absent is ``None``, else ``t``."""
    return _Optional(t)


def one_of(*names):
    """A string naming one of ``names`` (a Rust unit enum)."""
    return _OneOf(names)


class field:
    """A field with a default used when it is absent: ``field(int, default=0)``."""

    def __init__(self, t, default=_MISSING):
        self.type = _type(t)
        self.default = default


class Struct:
    """A named struct of typed fields (keyword arguments, in order)."""

    def __init__(self, struct_name, /, **fields):
        self.name = struct_name
        self.fields = []
        for key, spec in fields.items():
            if not isinstance(spec, field):
                spec = field(spec)
            default = spec.default
            if default is _MISSING and spec.type.optional:
                default = None
            self.fields.append((key, spec.type, default))

    def loads(self, data):
        """Parse JSON text (bytes or str) as this struct: a dict of its fields."""
        return self.check(_loads(data, validate_unicode=False, object_pairs_hook=_Pairs))

    def check(self, value):
        """Check an already parsed value (dicts are fine too) as this struct."""
        if isinstance(value, dict):
            value = _Pairs(value.items())
        if isinstance(value, _Pairs):
            seen = {}
            for key, v in value:
                for name, _, _ in self.fields:
                    if key == name:
                        if name in seen:
                            raise ValueError(f"duplicate field `{name}`")
                        seen[name] = v
            out = {}
            for name, t, default in self.fields:
                if name in seen:
                    out[name] = self._field(name, t, seen[name])
                elif default is not _MISSING:
                    out[name] = default
                else:
                    raise ValueError(f"missing field `{name}`")
            return out
        if isinstance(value, list):
            n = len(self.fields)
            if len(value) > n:
                raise ValueError(f"invalid length {len(value)}, expected struct {self.name} with {n} elements")
            out = {}
            for i, (name, t, default) in enumerate(self.fields):
                if i < len(value):
                    out[name] = self._field(name, t, value[i])
                elif default is not _MISSING:
                    out[name] = default
                else:
                    plural = "element" if n == 1 else "elements"
                    raise ValueError(f"invalid length {len(value)}, expected struct {self.name} with {n} {plural}")
            return out
        raise ValueError(f"invalid type: {_describe(value)}, expected struct {self.name}")

    @staticmethod
    def _field(name, t, value):
        try:
            return t.check(value)
        except ValueError as e:
            raise ValueError(f"{e} (field `{name}`)") from None

    def __repr__(self):
        return f"Struct({self.name!r}, {[n for n, _, _ in self.fields]})"
