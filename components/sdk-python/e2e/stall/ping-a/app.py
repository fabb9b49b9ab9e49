"""ping-a: GET /a/call calls ping-b in-process and answers what it answered."""

import hms

service = hms.Service("ping-a", routes=["/a/..."])


@service.get("/a/call")
def call(req, params):
    r = hms.call("ping-b", "/b/plain", method="GET")
    return hms.Response(r.status, r.body)
