//! The seed chapter's flow: report-service discovers identity-service through
//! Core, calls it with its own token, both log to Core.

use crate::common::*;
use http::Method;
use serde_json::json;

#[test]
fn report_answers_the_seed_flow_with_events_from_both_services_in_one_trace() {
    let host = Host::start(&seed_components());
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"report": "ID C12345 is verified"}));
    assert_eq!(r.headers["content-type"], "application/json");

    // Audit-before-response: the events are durable and queryable already.
    let trace = r.headers["x-trace-id"].to_str().unwrap().to_string();
    assert_eq!(trace.len(), 32);
    let events = host.events(&format!("trace={trace}"));
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("identity-service", "Verified ID C12345"),
            ("report-service", "Generated report for C12345")
        ]
    );
    for e in &events {
        assert_eq!(e["trace_id"], trace.as_str());
        assert_eq!(e["level"], "info");
    }
}

#[test]
fn identity_answers_directly_with_a_token_from_an_api_key() {
    let host = Host::start(&seed_components());
    let out = host.cli(&["keys", "create", "citizen-portal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let token = block_on(host.client().call(
        Method::POST,
        "/_hms/auth/token",
        Some(&json!({"api_key": api_key})),
    ))
    .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = block_on(host.client().with_bearer(&token).send(
        Method::POST,
        "/identity/verify",
        Some(&json!({"id": "C20001"})),
        &[],
    ))
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"status": "verified", "citizen_id": "C20001"})
    );
}

#[test]
fn an_incoming_traceparent_is_continued_across_both_services() {
    let host = Host::start(&seed_components());
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = block_on(host.client().send(
        Method::POST,
        "/reports/identity-check",
        Some(&json!({"id": "C1"})),
        &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
    ))
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-trace-id"], trace);
    let services: Vec<String> = host
        .events(&format!("trace={trace}"))
        .iter()
        .map(|e| e["service"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(services, ["identity-service", "report-service"]);
}

#[test]
fn the_registry_lists_both_services_and_the_cli_shows_them() {
    let host = Host::start(&seed_components());
    let v = block_on(host.client().call(Method::GET, "/_hms/services", None)).unwrap();
    let services = v["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["identity-service", "report-service"]);
    for s in services {
        assert_eq!(s["kind"], "component");
        assert_eq!(s["url"], host.url());
        assert!(s["version"].as_str().unwrap().starts_with("sha256:"));
    }
    assert_eq!(services[0]["routes"], json!(["/identity/..."]));
    let out = host.cli(&["services"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("identity-service") && text.contains("report-service"),
        "{text}"
    );
}

#[test]
fn bad_input_to_the_services_gets_json_errors() {
    let host = Host::start(&seed_components());
    let r = host.post("/reports/identity-check", &json!({"nope": 1}));
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["code"], "bad_request");
    let r = host.post("/nowhere", &json!({}));
    assert_eq!(r.status, 404);
    assert_eq!(r.body["code"], "not_found");
    assert!(r.body["message"].as_str().unwrap().contains("/nowhere"));
}

#[test]
fn a_service_that_logs_nothing_answers_without_audit_events() {
    let host = Host::start(&[component("identity_quiet"), component("report")]);
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.body, json!({"report": "ID C12345 is verified"}));
    let trace = r.headers["x-trace-id"].to_str().unwrap();
    let services: Vec<String> = host
        .events(&format!("trace={trace}"))
        .iter()
        .map(|e| e["service"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        services,
        ["report-service"],
        "only report logs in this flow"
    );
}
