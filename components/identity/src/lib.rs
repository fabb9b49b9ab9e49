//! identity-service: verifies citizen IDs against the citizen records it
//! keeps in its own store (`hms:core/store`).
//!
//! A record lives under `citizen/<ID>` as JSON text
//! `{"status": "active"|"revoked", "name": "<optional display name>"}`
//! (unknown fields are ignored). A citizen ID is 1-64 ASCII letters, digits
//! and `-`; anything else is 400.
//!
//! * `POST /identity/verify` with `{"id": "C12345"}` and
//!   `Authorization: Bearer <token>` (any token Core verifies, else 401)
//!   answers 200 `{"status": "verified", "citizen_id": "C12345"}` for an
//!   active citizen (logging `Verified ID C12345`), 200 `{"status":
//!   "revoked", ...}` for a revoked one (`ID C12345 is revoked`) and 404
//!   `{"status": "not_found", ...}` for an unknown one (`ID C12345 not
//!   found`).
//! * `PUT /identity/citizens/<ID>` with `{"status": "active"|"revoked",
//!   "name": "..."}` (name optional) creates or replaces the record and
//!   answers 200 `{"citizen_id": ID, "status": ..., "name": ...}`, logging
//!   `Citizen <ID> set to <status> by <subject>`; `GET
//!   /identity/citizens/<ID>` answers the same shape, or 404. Both need a
//!   token whose subject is an admin (`identity-admin`): 401 without a
//!   valid token, 403 `forbidden` for any other subject.
//! * Any other method on these paths is 405 with `Allow: POST` or `Allow:
//!   GET, PUT`; any other path, including `/identity/citizens/` and
//!   `/identity/citizens/<ID>/...`, is 404.
//!
//! A stored record that does not parse (not JSON, or an unknown status) is a
//! 500, logged at error; an unavailable store is a 503 `store_unavailable`.
//! Records can also be loaded with `hms-host data import identity-service
//! <file.jsonl>` (see `demo/citizens.jsonl`). Of the other services, only
//! report-service may call identity through the host.
//!
//! The logic is the `identity-core` crate, shared with the test versions of
//! this service; this one is its standard [`Variant`](identity_core::Variant).

hms_guest::service!(identity_core::Identity<identity_core::Standard>);
