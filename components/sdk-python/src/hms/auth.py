"""Core authentication (``hms:core/auth``).

* ``own_token()``: a token for this service's own identity (no secret).
* ``verify(token)``: the :class:`Claims` of a valid token, else an
  :class:`AuthError`.
* ``authenticate(api_key)``: exchange an API key for a token.

Every ``AuthError`` reads as the reason a client may be told
(``invalid API key``, ``key revoked``, ``token expired``,
``invalid token: <why>``).
"""

from dataclasses import dataclass

from . import _backend

__all__ = [
    "Claims", "AuthError", "InvalidKey", "Revoked", "Expired", "InvalidToken",
    "own_token", "verify", "authenticate",
]


@dataclass(frozen=True)
class Claims:
    """What a verified token says about its bearer."""

    #: The service (or outside client) the token was issued to.
    subject: str
    #: The API key the token came from, or ``workload`` for a service's own token.
    key_id: str
    #: Issue and expiry time, seconds since the Unix epoch.
    issued_at: int
    expires_at: int


class AuthError(Exception):
    """Why authentication or verification failed."""


class InvalidKey(AuthError):
    """The API key is unknown or malformed."""

    def __init__(self):
        super().__init__("invalid API key")


class Revoked(AuthError):
    """The API key (or the key a token came from) has been revoked."""

    def __init__(self):
        super().__init__("key revoked")


class Expired(AuthError):
    """The token's lifetime is over."""

    def __init__(self):
        super().__init__("token expired")


class InvalidToken(AuthError):
    """The token is malformed, wrongly signed or not issued by this host."""

    def __init__(self, reason):
        super().__init__(f"invalid token: {reason}")
        self.reason = reason


def _text(value, what):
    if not isinstance(value, str):
        raise TypeError(f"{what} is a str, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def own_token():
    """A token for this service's own identity."""
    return _backend.core().auth_own_token()


def verify(token):
    """The claims of ``token``; raises an :class:`AuthError` subclass."""
    if _text(token, "a token") is None:
        raise InvalidToken("not valid Unicode")
    return _backend.core().auth_verify(token)


def authenticate(api_key):
    """A token for ``api_key``; raises :class:`InvalidKey` or :class:`Revoked`."""
    if _text(api_key, "an API key") is None:
        raise InvalidKey()
    return _backend.core().auth_authenticate(api_key)
