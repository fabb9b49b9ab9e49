//! identity-service's logic: routes, token checks and citizen records.
//!
//! Shared by `components/identity` and its test variants
//! (`tests/identity-confirmed`, `tests/identity-quiet`), which mount this
//! file with `#[path]`, so every version serves the same stored citizens.
//! The crate mounting it defines two constants at its root:
//!
//! * `ACTIVE_STATUS: &str`, the `status` answered for an active citizen;
//! * `LOG_VERIFY: bool`, whether a verify logs its outcome.

use hms_guest::auth::{self, AuthError, Claims};
use hms_guest::logging::{self, Level};
use hms_guest::serde_json::{self, json};
use hms_guest::store::{self, StoreError};
use hms_guest::{Request, Response, Service, ServiceInfo};
use serde::{Deserialize, Serialize};

/// Token subjects allowed to read and write citizen records.
const ADMIN_SUBJECTS: &[&str] = &["identity-admin"];
/// Longest citizen ID.
const MAX_ID_LEN: usize = 64;

pub struct Identity;

/// A handler's answer. `Err` is a response too: it lets `?` answer early.
type Answer = Result<Response, Response>;

/// A citizen record, stored as JSON text under `citizen/<ID>`. Unknown
/// fields are ignored.
#[derive(Serialize, Deserialize)]
struct Citizen {
    status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Status {
    Active,
    Revoked,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
        }
    }
}

#[derive(Deserialize)]
struct VerifyRequest {
    id: String,
}

impl Service for Identity {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "identity-service".into(),
            routes: vec!["/identity/...".into()],
        }
    }

    /// Only report-service may call identity through the host; clients from
    /// outside still need a valid Core token.
    fn callers() -> Option<Vec<String>> {
        Some(vec!["report-service".into()])
    }

    fn handle(req: Request) -> Response {
        let answer = match (req.method.as_str(), req.path_only()) {
            ("POST", "/identity/verify") => verify(&req),
            (_, "/identity/verify") => Err(method_not_allowed("POST")),
            (method, path) => match path.strip_prefix("/identity/citizens/") {
                Some(id) if method == "GET" => show_citizen(&req, id),
                Some(id) if method == "PUT" => put_citizen(&req, id),
                Some(_) => Err(method_not_allowed("GET, PUT")),
                None => Err(Response::error(
                    404,
                    "not_found",
                    format!("no route for {path}"),
                )),
            },
        };
        answer.unwrap_or_else(|error| error)
    }
}

/// `POST /identity/verify` `{"id": "..."}`, for any valid token.
fn verify(req: &Request) -> Answer {
    authenticate(req)?;
    let body: VerifyRequest = req.json()?;
    let id = body.id.as_str();
    check_id(id)?;
    let (code, status, event) = match load(id)? {
        None => (404, "not_found", format!("ID {id} not found")),
        Some(Citizen {
            status: Status::Revoked,
            ..
        }) => (200, "revoked", format!("ID {id} is revoked")),
        Some(Citizen {
            status: Status::Active,
            ..
        }) => (200, crate::ACTIVE_STATUS, format!("Verified ID {id}")),
    };
    if crate::LOG_VERIFY {
        logging::log_event(Level::Info, &event);
    }
    Ok(Response::json(
        code,
        &json!({ "status": status, "citizen_id": id }),
    ))
}

/// `GET /identity/citizens/<ID>`, for admins.
fn show_citizen(req: &Request, id: &str) -> Answer {
    authorize_admin(req)?;
    check_id(id)?;
    match load(id)? {
        Some(citizen) => Ok(Response::json(200, &view(id, &citizen))),
        None => Err(Response::error(
            404,
            "not_found",
            format!("no record of citizen {id}"),
        )),
    }
}

/// `PUT /identity/citizens/<ID>` `{"status": "active"|"revoked", "name":
/// "..."}`, for admins: creates or replaces the record.
fn put_citizen(req: &Request, id: &str) -> Answer {
    let admin = authorize_admin(req)?;
    check_id(id)?;
    let citizen: Citizen = req.json()?;
    let value = serde_json::to_vec(&citizen)
        .map_err(|e| Response::error(500, "internal", format!("cannot encode record: {e}")))?;
    store::set(&key(id), &value).map_err(store_failed)?;
    logging::log_event(
        Level::Info,
        &format!(
            "Citizen {id} set to {} by {}",
            citizen.status.as_str(),
            admin.subject
        ),
    );
    Ok(Response::json(200, &view(id, &citizen)))
}

/// The record of citizen `id`, if there is one. A record that does not parse
/// is a 500, logged at error.
fn load(id: &str) -> Result<Option<Citizen>, Response> {
    let Some(value) = store::get(&key(id)).map_err(store_failed)? else {
        return Ok(None);
    };
    serde_json::from_slice(&value).map(Some).map_err(|e| {
        logging::log_event(
            Level::Error,
            &format!("Record of citizen {id} is corrupt: {e}"),
        );
        Response::error(
            500,
            "internal",
            format!("the record of citizen {id} is corrupt"),
        )
    })
}

fn key(id: &str) -> String {
    format!("citizen/{id}")
}

/// How admins see a record.
fn view(id: &str, citizen: &Citizen) -> serde_json::Value {
    json!({ "citizen_id": id, "status": citizen.status, "name": citizen.name })
}

/// Citizen IDs are 1-64 ASCII letters, digits and `-`.
fn check_id(id: &str) -> Result<(), Response> {
    let valid = (1..=MAX_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Response::error(
            400,
            "bad_request",
            format!("a citizen ID is 1-{MAX_ID_LEN} ASCII letters, digits or '-'"),
        ))
    }
}

/// The claims of the request's bearer token; 401 without a valid one.
fn authenticate(req: &Request) -> Result<Claims, Response> {
    let unauthorized = |reason: String| Response::error(401, "unauthorized", reason);
    let token = req
        .bearer_token()
        .ok_or_else(|| unauthorized("missing or malformed Authorization: Bearer header".into()))?;
    auth::verify(token).map_err(|e| {
        unauthorized(match e {
            AuthError::InvalidKey => "invalid API key".into(),
            AuthError::Revoked => "key revoked".into(),
            AuthError::Expired => "token expired".into(),
            AuthError::InvalidToken(why) => format!("invalid token: {why}"),
        })
    })
}

/// Like [`authenticate`], and the token's subject must be one of
/// [`ADMIN_SUBJECTS`]; 403 otherwise.
fn authorize_admin(req: &Request) -> Result<Claims, Response> {
    let claims = authenticate(req)?;
    if ADMIN_SUBJECTS.contains(&claims.subject.as_str()) {
        Ok(claims)
    } else {
        Err(Response::error(
            403,
            "forbidden",
            format!("{} may not manage citizen records", claims.subject),
        ))
    }
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "method_not_allowed", format!("use {allow}")).with_header("allow", allow)
}

/// A store failure as a response: 503 if the store is unavailable.
fn store_failed(e: StoreError) -> Response {
    match e {
        StoreError::Unavailable(why) => Response::error(
            503,
            "store_unavailable",
            format!("citizen store unavailable: {why}"),
        ),
        StoreError::ValueTooLarge(max) => Response::error(
            413,
            "payload_too_large",
            format!("a record may have at most {max} bytes"),
        ),
        StoreError::QuotaExceeded(quota) => Response::error(
            507,
            "insufficient_storage",
            format!("the citizen store is full ({quota} bytes)"),
        ),
        other => Response::error(500, "internal", format!("citizen store failed: {other:?}")),
    }
}
