"""hello.wasm in Python: a plain wasi:http/proxy component (no Core
imports, so `wasmtime serve` runs the very same file), answering like the
Rust hello: {"message": ..., "ok": true, "path": PATH}. Built by
bench/polyglot/build.sh with the pinned componentize-py."""

import json

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import Fields, OutgoingBody, OutgoingResponse, ResponseOutparam


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        path = (request.path_with_query() or "/").split("?")[0]
        body = json.dumps({"message": "hello from a wasi:http component", "ok": True, "path": path},
                          separators=(",", ":")).encode()
        response = OutgoingResponse(Fields.from_list([
            ("content-type", b"application/json"),
            ("content-length", str(len(body)).encode()),
        ]))
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with outgoing.write() as stream:
            stream.blocking_write_and_flush(body)
        OutgoingBody.finish(outgoing, None)
