"""hms: write an hms service in Python.

An hms service is a WebAssembly component of the WIT world
``hms:core/service``: a ``wasi:http`` handler that may call Core (auth,
logging, registry, store) and tells the host its name and routes. With this
package a service is one module, ``app.py``::

    import hms

    service = hms.Service("greeter", routes=["/greet/..."])

    @service.post("/greet/hello")
    def hello(req, params):
        name = req.json()["name"]          # a bad body is a JSON 400
        hms.log.info(f"greeted {name}")
        return {"greeting": f"Hello, {name}"}

    @service.get("/greet/{name}")
    def greet(req, params):
        return hms.Response.json(200, f"Hello, {params['name']}")

Handlers are called as ``handler(req, params)`` and return a
:class:`Response`, a dict or a list (200 JSON), or raise
:class:`HttpError`; unknown paths are 404 and other methods 405 with
``Allow``, as in the Rust SDK; any other exception is a 500 ``internal`` and
one ``error`` audit event with the traceback.

Modules: :mod:`hms.store`, :mod:`hms.log`, :mod:`hms.auth`,
:mod:`hms.registry`, :mod:`hms.client` (``hms.call``), :mod:`hms.schema`
(serde-like structs), :mod:`hms.testing` (an in-memory Core for pytest).
The component entry point is :mod:`hms.component`.
"""

from . import auth, client, log, registry, schema, store
from ._http import Headers, HttpError, Request, Response
from ._router import Params, Router
from ._service import Service
from .client import CallError, ClientResponse, ServiceNotFound, call

__version__ = "0.1.0"

__all__ = [
    "Service", "Request", "Response", "HttpError", "Headers", "Params", "Router",
    "call", "CallError", "ServiceNotFound", "ClientResponse",
    "auth", "client", "log", "registry", "schema", "store",
]
