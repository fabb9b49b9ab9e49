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
use hms_guest::{
    Answer, Params, Request, Response, Router, Service, ServiceInfo, auth, post_json, registry,
};
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

    fn router() -> Router {
        Router::new().post("/reports/identity-check", identity_check)
    }
}

fn identity_check(req: &Request, _: &Params) -> Answer {
    let body: IdRequest = req.json()?;
    if body.id.trim().is_empty() {
        return Err(Response::error(
            400,
            "bad_request",
            "`id` must not be empty",
        ));
    }

    let identity = registry::discover_service(IDENTITY).ok_or_else(|| {
        Response::error(
            503,
            "dependency_unavailable",
            format!("{IDENTITY} is not registered"),
        )
    })?;
    let token = auth::own_token();
    let answer =
        post_json(&identity.url, "/identity/verify", &body, Some(&token)).map_err(|e| {
            Response::error(
                502,
                "upstream_error",
                format!("calling {IDENTITY} failed: {e}"),
            )
        })?;
    let words = match (answer.status, answer.json::<IdentityAnswer>()) {
        (200..300, Ok(parsed)) => format!("is {}", parsed.status),
        (404, Ok(parsed)) if parsed.status == "not_found" => "is not on record".to_string(),
        (200..300, Err(e)) => {
            return Err(Response::error(
                502,
                "upstream_error",
                format!("{IDENTITY} sent invalid JSON: {e}"),
            ));
        }
        // Identity checks the ID: what it refuses, the client sent.
        (400, _) => {
            return Err(Response::error(
                400,
                "bad_request",
                format!("{IDENTITY} refused the ID: {}", answer.text()),
            ));
        }
        (status, _) => {
            return Err(Response::error(
                502,
                "upstream_error",
                format!("{IDENTITY} answered {status}: {}", answer.text()),
            ));
        }
    };

    logging::log_event(Level::Info, &format!("Generated report for {}", body.id));
    Ok(Response::json(
        200,
        &ReportAnswer {
            report: format!("ID {} {words}", body.id),
        },
    ))
}

hms_guest::service!(Report);
