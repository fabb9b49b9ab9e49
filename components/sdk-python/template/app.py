"""{{name}}: an hms service in Python.

Build it with ./build.sh (tests first, then {{name}}.wasm), run it with
`hms-host run {{name}}.wasm`, and try it:

    curl -s -X PUT http://127.0.0.1:8080/{{name}}/items/a -d '{"text":"hello"}'
    curl -s http://127.0.0.1:8080/{{name}}/items/a
"""

import hms
from hms import HttpError, log, store
from hms.schema import Struct

# A JSON body this service accepts: {"text": "..."} (other fields ignored).
Item = Struct("Item", text=str)

service = hms.Service(
    "{{name}}",
    routes=["/{{name}}/..."],  # the host sends /{{name}} and everything below it here
    callers=None,  # None: any service may call this one; or a list of service names
)


@service.get("/{{name}}/items/{id}")
def get_item(req, params):
    item = store.get_json(f"item/{params['id']}")
    if item is None:
        raise HttpError(404, "not_found", f"no item {params['id']}")
    return item


@service.put("/{{name}}/items/{id}")
def put_item(req, params):
    item = req.json(Item)  # a bad body is a 400 bad_request
    store.set_json(f"item/{params['id']}", item)
    log.info(f"stored item {params['id']}")
    return hms.Response.json(200, item)
