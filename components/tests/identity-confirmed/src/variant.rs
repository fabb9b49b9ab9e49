// The body shared by the identity test guests: identity-service's contract,
// answering `STATUS` for a verified citizen and logging iff `LOGS`. Each
// including crate defines both constants.

use hms_guest::logging::{self, Level};
use hms_guest::{Request, Response, Service, ServiceInfo, auth};
use serde::Deserialize;

struct IdentityVariant;

#[derive(Deserialize)]
struct VerifyRequest {
    id: String,
}

impl Service for IdentityVariant {
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
        if LOGS {
            logging::log_event(Level::Info, &format!("{STATUS} ID {}", body.id));
        }
        Response::json(
            200,
            &hms_guest::serde_json::json!({ "status": STATUS, "citizen_id": body.id }),
        )
    }
}

hms_guest::service!(IdentityVariant);
