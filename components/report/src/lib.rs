//! report-service: builds reports from what other services say.
//!
//! `POST /reports/identity-check` with `{"id":"C12345"}` discovers
//! identity-service through the Core registry, calls it with this service's
//! own token and answers `{"report":"ID C12345 is verified"}`.

use hms_guest::logging::{self, Level};
use hms_guest::{Request, Response, Service, ServiceInfo, auth, post_json, registry};
use serde::{Deserialize, Serialize};

struct Report;

#[derive(Deserialize, Serialize)]
struct IdRequest {
    id: String,
}

#[derive(Deserialize)]
struct IdentityAnswer {
    status: String,
}

#[derive(Serialize)]
struct ReportAnswer {
    report: String,
}

const IDENTITY: &str = "identity-service";

impl Service for Report {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "report-service".into(),
            routes: vec!["/reports/...".into()],
        }
    }

    fn handle(req: Request) -> Response {
        match (req.method.as_str(), req.path_only()) {
            ("POST", "/reports/identity-check") => identity_check(&req),
            (_, "/reports/identity-check") => {
                Response::error(405, "method_not_allowed", "use POST").with_header("allow", "POST")
            }
            (_, path) => Response::error(404, "not_found", format!("no route for {path}")),
        }
    }
}

fn identity_check(req: &Request) -> Response {
    let body: IdRequest = match req.json() {
        Ok(body) => body,
        Err(bad_request) => return bad_request,
    };
    if body.id.trim().is_empty() {
        return Response::error(400, "bad_request", "`id` must not be empty");
    }

    let Some(identity) = registry::discover_service(IDENTITY) else {
        return Response::error(
            503,
            "dependency_unavailable",
            format!("{IDENTITY} is not registered"),
        );
    };
    let token = auth::own_token();
    let (status, answer) = match post_json(&identity.url, "/identity/verify", &body, Some(&token)) {
        Ok(reply) => reply,
        Err(e) => {
            return Response::error(
                502,
                "upstream_error",
                format!("calling {IDENTITY} failed: {e}"),
            );
        }
    };
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&answer);
        return Response::error(
            502,
            "upstream_error",
            format!("{IDENTITY} answered {status}: {text}"),
        );
    }
    let answer: IdentityAnswer = match hms_guest::serde_json::from_slice(&answer) {
        Ok(answer) => answer,
        Err(e) => {
            return Response::error(
                502,
                "upstream_error",
                format!("{IDENTITY} sent invalid JSON: {e}"),
            );
        }
    };

    logging::log_event(Level::Info, &format!("Generated report for {}", body.id));
    Response::json(
        200,
        &ReportAnswer {
            report: format!("ID {} is {}", body.id, answer.status),
        },
    )
}

hms_guest::service!(Report);
