"""ping-b: GET /b/plain answers {} (no Core calls, no body read)."""

import hms

service = hms.Service("ping-b", routes=["/b/..."])


@service.get("/b/plain")
def plain(req, params):
    return {}
