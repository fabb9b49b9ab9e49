//! report-service: builds reports from what other services say.
//!
//! `POST /reports/identity-check` with `{"id":"C12345"}` discovers
//! identity-service through the Core registry, calls it with this service's
//! own token and puts its answer in words: `{"report":"ID C12345 is
//! verified"}` (or `is revoked`, or whatever other status identity answers
//! with 2xx), and `{"report":"ID C12345 is not on record"}` when identity
//! answers 404 `{"status":"not_found"}`. An ID identity refuses (400) is a
//! 400 here too; any other answer from identity is a 502 `upstream_error`.

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
    let parsed = hms_guest::serde_json::from_slice::<IdentityAnswer>(&answer);
    let words = match (status, parsed) {
        (200..300, Ok(answer)) => format!("is {}", answer.status),
        (404, Ok(answer)) if answer.status == "not_found" => "is not on record".to_string(),
        (200..300, Err(e)) => {
            return Response::error(
                502,
                "upstream_error",
                format!("{IDENTITY} sent invalid JSON: {e}"),
            );
        }
        // Identity checks the ID: what it refuses, the client sent.
        (400, _) => {
            let text = String::from_utf8_lossy(&answer);
            return Response::error(
                400,
                "bad_request",
                format!("{IDENTITY} refused the ID: {text}"),
            );
        }
        _ => {
            let text = String::from_utf8_lossy(&answer);
            return Response::error(
                502,
                "upstream_error",
                format!("{IDENTITY} answered {status}: {text}"),
            );
        }
    };

    logging::log_event(Level::Info, &format!("Generated report for {}", body.id));
    Response::json(
        200,
        &ReportAnswer {
            report: format!("ID {} {words}", body.id),
        },
    )
}

hms_guest::service!(Report);
