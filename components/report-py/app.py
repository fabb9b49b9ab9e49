"""report-service in Python: builds reports from what other services say,
answering exactly as the Rust version (components/report).

``POST /reports/identity-check`` ``{"id": "C12345"}`` discovers
identity-service through the Core registry, calls it with this service's
own token and puts its answer in words: ``{"report": "ID C12345 is
verified"}`` (or ``is revoked``, or whatever other status identity answers
with 2xx), and ``{"report": "ID C12345 is not on record"}`` when identity
answers 404 ``{"status": "not_found"}``. An ID identity refuses (400) is a
400 here too; any other answer from identity is a 502 ``upstream_error``;
identity not registered is a 503 ``dependency_unavailable``.
"""

import hms
from hms import HttpError, log
from hms.schema import Struct

IDENTITY = "identity-service"

#: What Rust's str::trim removes (Unicode White_Space), which is not quite
#: what str.strip() removes (that also strips U+001C..U+001F).
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005" \
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

IdRequest = Struct("IdRequest", id=str)
IdentityAnswer = Struct("IdentityAnswer", status=str)

service = hms.Service("report-service", routes=["/reports/..."])


@service.post("/reports/identity-check")
def identity_check(req, params):
    id = req.json(IdRequest)["id"]
    if not id.strip(_WHITESPACE):
        raise HttpError(400, "bad_request", "`id` must not be empty")

    try:
        answer = hms.call(IDENTITY, "/identity/verify", json={"id": id})
    except hms.ServiceNotFound:
        raise HttpError(503, "dependency_unavailable", f"{IDENTITY} is not registered") from None
    except hms.CallError as e:
        raise HttpError(502, "upstream_error", f"calling {IDENTITY} failed: {e}") from None

    try:
        parsed = answer.json(IdentityAnswer)
    except ValueError as e:
        parsed, problem = None, e
    if 200 <= answer.status < 300 and parsed is not None:
        words = f"is {parsed['status']}"
    elif answer.status == 404 and parsed is not None and parsed["status"] == "not_found":
        words = "is not on record"
    elif 200 <= answer.status < 300:
        raise HttpError(502, "upstream_error", f"{IDENTITY} sent invalid JSON: {problem}")
    elif answer.status == 400:
        # Identity checks the ID: what it refuses, the client sent.
        raise HttpError(400, "bad_request", f"{IDENTITY} refused the ID: {answer.text}")
    else:
        raise HttpError(502, "upstream_error", f"{IDENTITY} answered {answer.status}: {answer.text}")

    log.info(f"Generated report for {id}")
    return {"report": f"ID {id} {words}"}
