"""The component's entry point: the module componentize-py wraps.

    componentize-py -w hms:core/service componentize hms.component \\
        -p SERVICE_DIR -p SDK_SRC -o service.wasm

(``scripts/build-python.sh`` runs exactly that.) It imports the service's
module ``app`` (``SERVICE_DIR/app.py``, or a package ``app/``), takes its
:class:`hms.Service` (the module attribute ``service``, or the only Service
the module created) and exports it as the component's
``wasi:http/incoming-handler`` and ``hms:core/manifest``.

componentize-py runs this at build time and snapshots the result, so the
app's top level (route registration, imports) runs once, at build time: a
malformed route fails the build. Whatever the app imports at runtime must
already be imported at its top level.
"""

import app as _app

from . import _service
from ._wasm import exports as _exports


def _find_service(module):
    found = getattr(module, "service", None)
    if isinstance(found, _service.Service):
        return found
    services = [s for s in vars(module).values() if isinstance(s, _service.Service)]
    if len(services) == 1:
        return services[0]
    raise RuntimeError(
        "app.py must define one hms.Service, e.g. `service = hms.Service(...)`"
        f" (found {len(services)})"
    )


IncomingHandler, Manifest = _exports(_find_service(_app))
