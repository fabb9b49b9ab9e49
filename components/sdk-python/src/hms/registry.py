"""Core service registry (``hms:core/registry``).

``discover(name)`` is the :class:`Endpoint` of a service, or ``None``;
``register(name, host, port)`` registers an external service under a name
(raising a :class:`RegistryError` subclass).
"""

from dataclasses import dataclass

from . import _backend

__all__ = [
    "Endpoint", "RegistryError", "InvalidName", "NameTaken", "InvalidAddress",
    "discover", "register",
]


@dataclass(frozen=True)
class Endpoint:
    """Where a service is reachable: send requests to ``url`` + path."""

    name: str
    url: str
    host: str
    port: int
    #: Content digest of a deployed component, or what an external service registered with.
    version: str


class RegistryError(Exception):
    """Why a registration was refused."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class InvalidName(RegistryError):
    """Names are 1-64 characters of ``a-z``, ``0-9`` and ``-``."""


class NameTaken(RegistryError):
    """A deployed component already serves under this name."""


class InvalidAddress(RegistryError):
    """The host or port is not usable."""


def _valid(text):
    """A str Core can take (valid Unicode: a lone surrogate would trap the
    component in the bindings)."""
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def discover(name):
    """The endpoint of service ``name``, or ``None`` if none is registered."""
    if not isinstance(name, str):
        raise TypeError(f"a service name is a str, not {type(name).__name__}")
    if not _valid(name):
        return None
    return _backend.core().registry_discover(name)


def register(name, host, port):
    """Register an external (non-wasm) service at ``host:port`` as ``name``."""
    if not _valid(name):
        raise InvalidName(f"{name!r} is not a service name")
    if not _valid(host) or isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidAddress(f"{host!r}:{port!r}")
    _backend.core().registry_register(name, host, port)
