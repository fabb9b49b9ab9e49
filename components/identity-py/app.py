"""identity-service in Python: verifies citizen IDs against the citizen
records it keeps in its own store. It answers exactly as the Rust version
(components/identity-core, components/identity), reads and writes the same
records, logs the same events and has the same caller policy, so either
can be deployed over the other's data.

A record lives under ``citizen/<ID>`` as JSON text ``{"status":
"active"|"revoked", "name": "<optional display name>"}`` (unknown fields are
ignored). A citizen ID is 1-64 ASCII letters, digits and ``-``; anything
else is 400.

* ``POST /identity/verify`` ``{"id": "C12345"}`` with ``Authorization:
  Bearer <token>`` (any token Core verifies, else 401): 200 ``{"status":
  "verified", ...}`` for an active citizen (logging ``Verified ID C12345``),
  200 ``revoked`` (``ID C12345 is revoked``), 404 ``not_found`` (``ID C12345
  not found``).
* ``PUT /identity/citizens/<ID>`` ``{"status": ..., "name": ...}`` creates or
  replaces a record (logging ``Citizen <ID> set to <status> by <subject>``);
  ``GET /identity/citizens/<ID>`` reads it (or 404). Both need a token whose
  subject is ``identity-admin``: 401 without a valid token, 403 otherwise.
* Other methods: 405 with ``Allow``; other paths: 404.

A stored record that does not parse is a 500, logged at error; an
unavailable store is a 503 ``store_unavailable``. Of the other services,
only report-service may call identity through the host.
"""

import re

import hms
from hms import HttpError, auth, log, store
from hms.schema import Struct, one_of, optional

#: Token subjects allowed to read and write citizen records.
ADMIN_SUBJECTS = ("identity-admin",)
#: Longest citizen ID.
MAX_ID_LEN = 64
#: The status answered for an active citizen.
ACTIVE_STATUS = "verified"

_ID = re.compile(r"[A-Za-z0-9-]{1,%d}" % MAX_ID_LEN)

# The Rust structs, with serde's rules (see hms.schema).
Citizen = Struct("Citizen", status=one_of("active", "revoked"), name=optional(str))
VerifyRequest = Struct("VerifyRequest", id=str)

service = hms.Service("identity-service", routes=["/identity/..."], callers=["report-service"])


@service.post("/identity/verify")
def verify(req, params):
    """``POST /identity/verify`` ``{"id": "..."}``, for any valid token."""
    authenticate(req)
    id = req.json(VerifyRequest)["id"]
    check_id(id)
    citizen = load(id)
    if citizen is None:
        code, status, event = 404, "not_found", f"ID {id} not found"
    elif citizen["status"] == "revoked":
        code, status, event = 200, "revoked", f"ID {id} is revoked"
    else:
        code, status, event = 200, ACTIVE_STATUS, f"Verified ID {id}"
    log.info(event)
    # Keys in serde_json's (sorted) order, so the bytes match Rust's.
    return hms.Response.json(code, {"citizen_id": id, "status": status})


@service.get("/identity/citizens/{id}")
def show_citizen(req, params):
    """``GET /identity/citizens/<ID>``, for admins."""
    id = params["id"]
    authorize_admin(req)
    check_id(id)
    citizen = load(id)
    if citizen is None:
        raise HttpError(404, "not_found", f"no record of citizen {id}")
    return view(id, citizen)


@service.put("/identity/citizens/{id}")
def put_citizen(req, params):
    """``PUT /identity/citizens/<ID>`` ``{"status": "active"|"revoked",
    "name": "..."}``, for admins: creates or replaces the record."""
    id = params["id"]
    admin = authorize_admin(req)
    check_id(id)
    citizen = req.json(Citizen)
    # As Rust writes it: status first, name only when there is one.
    record = {"status": citizen["status"]}
    if citizen["name"] is not None:
        record["name"] = citizen["name"]
    try:
        store.set_json(key(id), record)
    except store.StoreError as e:
        raise store_failed(e) from None
    log.info(f"Citizen {id} set to {citizen['status']} by {admin.subject}")
    return view(id, citizen)


def load(id):
    """The record of citizen ``id``, or None. A record that does not parse
    is a 500, logged at error."""
    try:
        return store.get_json(key(id), Citizen)
    except store.StoreError as e:
        raise store_failed(e) from None
    except store.DecodeError as e:
        log.error(f"Record of citizen {id} is corrupt: {e.reason}")
        raise HttpError(500, "internal", f"the record of citizen {id} is corrupt") from None


def key(id):
    return f"citizen/{id}"


def view(id, citizen):
    """How admins see a record (keys in serde_json's sorted order)."""
    return {"citizen_id": id, "name": citizen["name"], "status": citizen["status"]}


def check_id(id):
    """Citizen IDs are 1-64 ASCII letters, digits and ``-``."""
    if not _ID.fullmatch(id):
        raise HttpError(400, "bad_request",
                        f"a citizen ID is 1-{MAX_ID_LEN} ASCII letters, digits or '-'")


def authenticate(req):
    """The claims of the request's bearer token; 401 without a valid one."""
    token = req.bearer_token()
    if token is None:
        raise HttpError(401, "unauthorized", "missing or malformed Authorization: Bearer header")
    try:
        return auth.verify(token)
    except auth.AuthError as e:
        # Each AuthError reads as Rust words it: "invalid API key", "key
        # revoked", "token expired", "invalid token: <why>".
        raise HttpError(401, "unauthorized", str(e)) from None


def authorize_admin(req):
    """Like ``authenticate``, and the subject must be an admin; 403 otherwise."""
    claims = authenticate(req)
    if claims.subject not in ADMIN_SUBJECTS:
        raise HttpError(403, "forbidden", f"{claims.subject} may not manage citizen records")
    return claims


def store_failed(e):
    """A store failure as an HttpError: 503 if the store is unavailable."""
    if isinstance(e, store.Unavailable):
        return HttpError(503, "store_unavailable", f"citizen store unavailable: {e.reason}")
    if isinstance(e, store.ValueTooLarge):
        return HttpError(413, "payload_too_large", f"a record may have at most {e.limit} bytes")
    if isinstance(e, store.QuotaExceeded):
        return HttpError(507, "insufficient_storage", f"the citizen store is full ({e.quota} bytes)")
    return HttpError(500, "internal", f"citizen store failed: {e!r}")
