//! identity-service's logic: routes, token checks and citizen records,
//! generic over a [`Variant`] so that `components/identity` and its test
//! versions (`tests/identity-confirmed`, `tests/identity-quiet`) share it and
//! serve the same stored citizens. A version is one line:
//!
//! ```ignore
//! hms_guest::service!(identity_core::Identity<identity_core::Standard>);
//! ```
//!
//! What the routes do is documented in `components/identity/src/lib.rs`.

use hms_guest::auth::{self, AuthError, Claims};
use hms_guest::logging::{self, Level};
use hms_guest::serde_json::{self, json};
use hms_guest::store::{self, JsonError, StoreError};
use hms_guest::{Answer, Params, Request, Response, Router, Service, ServiceInfo};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// Token subjects allowed to read and write citizen records.
const ADMIN_SUBJECTS: &[&str] = &["identity-admin"];
/// Longest citizen ID.
const MAX_ID_LEN: usize = 64;

/// What a version of identity-service varies. Every item has the default
/// of `components/identity`.
pub trait Variant: 'static {
    /// The `status` answered for an active citizen.
    const ACTIVE_STATUS: &'static str = "verified";
    /// Whether a verify logs its outcome.
    const LOG_VERIFY: bool = true;
}

/// The released version: `verified`, and every verify logged.
pub struct Standard;

impl Variant for Standard {}

/// identity-service, in version `V`: pass `Identity<V>` to
/// `hms_guest::service!`.
pub struct Identity<V: Variant>(PhantomData<V>);

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

impl<V: Variant> Service for Identity<V> {
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

    fn router() -> Router {
        Router::new()
            .post("/identity/verify", verify::<V>)
            .get("/identity/citizens/{id}", show_citizen)
            .put("/identity/citizens/{id}", put_citizen)
    }
}

/// `POST /identity/verify` `{"id": "..."}`, for any valid token.
fn verify<V: Variant>(req: &Request, _: &Params) -> Answer {
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
        }) => (200, V::ACTIVE_STATUS, format!("Verified ID {id}")),
    };
    if V::LOG_VERIFY {
        logging::log_event(Level::Info, &event);
    }
    Ok(Response::json(
        code,
        &json!({ "status": status, "citizen_id": id }),
    ))
}

/// `GET /identity/citizens/<ID>`, for admins.
fn show_citizen(req: &Request, params: &Params) -> Answer {
    let id = &params["id"];
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
fn put_citizen(req: &Request, params: &Params) -> Answer {
    let id = &params["id"];
    let admin = authorize_admin(req)?;
    check_id(id)?;
    let citizen: Citizen = req.json()?;
    store::set_json(&key(id), &citizen).map_err(|e| match e {
        JsonError::Store(e) => store_failed(e),
        JsonError::Encode(e) | JsonError::Decode(e) => {
            Response::error(500, "internal", format!("cannot encode record: {e}"))
        }
    })?;
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
fn load(id: &str) -> Answer<Option<Citizen>> {
    store::get_json(&key(id)).map_err(|e| match e {
        JsonError::Store(e) => store_failed(e),
        JsonError::Decode(e) | JsonError::Encode(e) => {
            logging::log_event(
                Level::Error,
                &format!("Record of citizen {id} is corrupt: {e}"),
            );
            Response::error(
                500,
                "internal",
                format!("the record of citizen {id} is corrupt"),
            )
        }
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
fn check_id(id: &str) -> Answer<()> {
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
fn authenticate(req: &Request) -> Answer<Claims> {
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
fn authorize_admin(req: &Request) -> Answer<Claims> {
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

#[cfg(test)]
mod tests {
    //! What is answered before any Core call, so it runs on the build host.

    use super::*;
    use hms_guest::Method;

    fn call(method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
        let req = Request {
            method,
            path: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: br#"{"id":"C12345"}"#.to_vec(),
        };
        Identity::<Standard>::handle(req)
    }

    fn text(response: &Response) -> &str {
        std::str::from_utf8(&response.body).unwrap()
    }

    fn allow(response: &Response) -> Option<&[u8]> {
        response
            .headers
            .iter()
            .find(|(n, _)| n == "allow")
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn unknown_paths_and_methods() {
        let r = call(Method::Get, "/identity/verify", &[]);
        assert_eq!(r.status, 405);
        assert_eq!(
            text(&r),
            r#"{"code":"method_not_allowed","message":"use POST"}"#
        );
        assert_eq!(allow(&r), Some(&b"POST"[..]));

        let r = call(Method::Delete, "/identity/citizens/C12345", &[]);
        assert_eq!(r.status, 405);
        assert_eq!(
            text(&r),
            r#"{"code":"method_not_allowed","message":"use GET, PUT"}"#
        );
        assert_eq!(allow(&r), Some(&b"GET, PUT"[..]));

        let r = call(Method::Post, "/identity/other?x=1", &[]);
        assert_eq!(r.status, 404);
        assert_eq!(
            text(&r),
            r#"{"code":"not_found","message":"no route for /identity/other"}"#
        );
    }

    #[test]
    fn routes_need_a_bearer_token() {
        for (method, path) in [
            (Method::Post, "/identity/verify"),
            (Method::Get, "/identity/citizens/C12345"),
            (Method::Put, "/identity/citizens/C12345"),
        ] {
            let r = call(method, path, &[("authorization", "Basic x")]);
            assert_eq!(r.status, 401, "{path}");
            assert_eq!(
                text(&r),
                r#"{"code":"unauthorized","message":"missing or malformed Authorization: Bearer header"}"#
            );
        }
    }

    #[test]
    fn citizen_ids() {
        assert!(check_id("C12345").is_ok());
        assert!(check_id(&"a".repeat(MAX_ID_LEN)).is_ok());
        for bad in ["", "C 1", "C/1", "Ç1", &"a".repeat(MAX_ID_LEN + 1)] {
            assert_eq!(check_id(bad).unwrap_err().status, 400, "{bad:?}");
        }
    }
}
