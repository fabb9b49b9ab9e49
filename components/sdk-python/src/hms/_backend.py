"""Where Core calls go: inside a component, the WIT imports (``hms._wasm``
installs itself when the component entry point imports it); in tests, the
in-memory Core of ``hms.testing``. Nothing else needs this module."""

import sys

_core = None


def install(core):
    """Make ``core`` answer every Core call; returns the one it replaces."""
    global _core
    previous, _core = _core, core
    return previous


def core():
    if _core is None:
        raise RuntimeError(
            "hms: no Core to call here"
            + (
                ""
                if sys.platform == "wasi"
                else ": outside hms-host, use hms.testing.Core (see hms.testing)"
            )
        )
    return _core
