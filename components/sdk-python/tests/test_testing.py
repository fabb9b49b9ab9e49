"""The fake Core's auth and log behave like the host's."""

import pytest

from hms import Service, auth, log
from hms.testing import Core, Event


def test_keys_tokens_and_expiry():
    with Core(Service("svc", ["/svc"]), token_ttl=60) as core:
        key = core.api_key("citizen-portal")
        token = auth.authenticate(key)
        claims = auth.verify(token)
        assert claims.subject == "citizen-portal"
        assert claims.expires_at - claims.issued_at == 60
        own = auth.verify(auth.own_token())
        assert (own.subject, own.key_id) == ("svc", "workload")
        with pytest.raises(auth.InvalidKey, match="invalid API key"):
            auth.authenticate("nope")
        with pytest.raises(auth.InvalidToken) as e:
            auth.verify("garbage")
        assert str(e.value).startswith("invalid token: ")
        core.advance(60)
        with pytest.raises(auth.Expired, match="token expired"):
            auth.verify(token)
        token = auth.authenticate(key)
        core.revoke(key)
        with pytest.raises(auth.Revoked, match="key revoked"):
            auth.verify(token)
        with pytest.raises(auth.Revoked):
            auth.authenticate(key)


def test_log_levels():
    with Core(Service("svc", ["/svc"])) as core:
        log.debug("d")
        log.info("i")
        log.warn("w")
        log.error(3)
        assert core.events == [Event("svc", "debug", "d"), Event("svc", "info", "i"),
                               Event("svc", "warn", "w"), Event("svc", "error", "3")]
        assert core.messages(level="warn") == ["w"]
        with pytest.raises(ValueError):
            log.event("fatal", "x")


def test_no_core_is_a_clear_error():
    with pytest.raises(RuntimeError, match="hms.testing.Core"):
        log.info("x")


def test_bad_unicode_never_reaches_core():
    from hms import registry
    with Core(Service("svc", ["/svc"])) as core:
        log.info("half a pair \ud800")
        assert core.messages() == ["half a pair ?"]
        with pytest.raises(auth.InvalidToken):
            auth.verify("\ud800")
        assert registry.discover("\ud800") is None
        with pytest.raises(registry.InvalidAddress):
            registry.register("x", "h", 70000)
