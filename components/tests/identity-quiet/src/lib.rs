//! Test guest: identity-service doing everything `components/identity` does
//! except logging, so the benchmark can price the audit log (identity vs this).

use hms_guest::{Request, Response, Service, ServiceInfo, auth};
use serde::Deserialize;

struct IdentityQuiet;

#[derive(Deserialize)]
struct VerifyRequest {
    id: String,
}

impl Service for IdentityQuiet {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "identity-service".into(),
            routes: vec!["/identity/...".into()],
        }
    }

    fn handle(req: Request) -> Response {
        if req.path_only() != "/identity/verify" {
            return Response::error(404, "not_found", "no such route");
        }
        let Some(token) = req.bearer_token() else {
            return Response::error(401, "unauthorized", "missing token");
        };
        if auth::verify(token).is_err() {
            return Response::error(401, "unauthorized", "invalid token");
        }
        let body: VerifyRequest = match req.json() {
            Ok(body) => body,
            Err(bad_request) => return bad_request,
        };
        Response::json(
            200,
            &hms_guest::serde_json::json!({ "status": "verified", "citizen_id": body.id }),
        )
    }
}

hms_guest::service!(IdentityQuiet);
