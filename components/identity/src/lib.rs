//! identity-service: verifies citizen IDs for callers holding a valid Core token.
//!
//! `POST /identity/verify` with `{"id":"C12345"}` and `Authorization: Bearer <token>`
//! answers `{"status":"verified","citizen_id":"C12345"}`.

use hms_guest::auth::{self, AuthError};
use hms_guest::logging::{self, Level};
use hms_guest::{Request, Response, Service, ServiceInfo};
use serde::{Deserialize, Serialize};

struct Identity;

#[derive(Deserialize)]
struct VerifyRequest {
    id: String,
}

#[derive(Serialize)]
struct Verified<'a> {
    status: &'a str,
    citizen_id: &'a str,
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
        match (req.method.as_str(), req.path_only()) {
            ("POST", "/identity/verify") => verify(&req),
            (_, "/identity/verify") => {
                Response::error(405, "method_not_allowed", "use POST").with_header("allow", "POST")
            }
            (_, path) => Response::error(404, "not_found", format!("no route for {path}")),
        }
    }
}

fn verify(req: &Request) -> Response {
    let Some(token) = req.bearer_token() else {
        return Response::error(
            401,
            "unauthorized",
            "missing or malformed Authorization: Bearer header",
        );
    };
    if let Err(e) = auth::verify(token) {
        let reason = match e {
            AuthError::InvalidKey => "invalid API key".to_string(),
            AuthError::Revoked => "key revoked".to_string(),
            AuthError::Expired => "token expired".to_string(),
            AuthError::InvalidToken(why) => format!("invalid token: {why}"),
        };
        return Response::error(401, "unauthorized", reason);
    }
    let body: VerifyRequest = match req.json() {
        Ok(body) => body,
        Err(bad_request) => return bad_request,
    };
    if body.id.trim().is_empty() {
        return Response::error(400, "bad_request", "`id` must not be empty");
    }

    // A real service would look the ID up in its own database here.
    logging::log_event(Level::Info, &format!("Verified ID {}", body.id));
    Response::json(
        200,
        &Verified {
            status: "verified",
            citizen_id: &body.id,
        },
    )
}

hms_guest::service!(Identity);
