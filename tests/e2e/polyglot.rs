//! Services written in JavaScript (`@hms/sdk`, componentize-js) and Python
//! (`hms-sdk`, componentize-py) on the real host: beside the Rust ones,
//! through the same Core, answering the same way.
//!
//! Their components are built by `scripts/build-components.sh` (README
//! command 2 runs it before the tests). They are large (13-19 MB): every
//! host here shares one compile cache, so each is compiled once per run.

use crate::common::*;
use hms_host::cli::client::JsonResponse;
use http::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

/// A JavaScript or Python component built into `components/`.
pub fn built(name: &str) -> PathBuf {
    let path = root().join("components").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-components.sh",
        path.display()
    );
    path
}

/// `--cache-dir` shared by every host of these tests.
pub fn shared_cache() -> String {
    root()
        .join("target/e2e-compile-cache")
        .to_string_lossy()
        .into_owned()
}

/// Starts a host on `components` with the shared compile cache.
pub fn start(components: &[PathBuf]) -> Host {
    Host::start_with(
        components,
        &temp_dir("polyglot"),
        &["--cache-dir", &shared_cache()],
    )
}

fn send(
    host: &Host,
    method: Method,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> JsonResponse {
    let auth = format!("Bearer {token}");
    block_on(
        host.client()
            .send(method, path, body, &[("authorization", auth.as_str())]),
    )
    .unwrap()
}

fn token(host: &Host, subject: &str) -> String {
    let key = new_key(host, subject);
    token_for(host, &key).body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_javascript_service_uses_core_and_calls_the_seed_services() {
    let mut components = seed_components();
    components.push(built("notice-js"));
    let host = start(&components);
    host.import_data("identity-service", &root().join("demo/citizens.jsonl"));
    let clerk = token(&host, "clerk");

    // Posting calls report-service (which calls identity) with the
    // service's own token; the answer is kept with the notice.
    let r = send(
        &host,
        Method::POST,
        "/notices",
        Some(&json!({"title": "Office closed", "body": "On Friday", "citizen_id": "C12345"})),
        &clerk,
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["id"], 1);
    assert_eq!(r.body["author"], "clerk");
    assert_eq!(r.body["recipient"]["report"], "ID C12345 is verified");
    for i in 2..=3 {
        let r = send(
            &host,
            Method::POST,
            "/notices",
            Some(&json!({"title": format!("n{i}")})),
            &clerk,
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    // Paging through the store, in posting order.
    let page = send(&host, Method::GET, "/notices?limit=2", None, &clerk);
    let ids: Vec<u64> = page.body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2]);
    let next = page.body["next"].as_str().unwrap();
    let page = send(
        &host,
        Method::GET,
        &format!("/notices?limit=2&cursor={next}"),
        None,
        &clerk,
    );
    assert_eq!(page.body["notices"][0]["id"], 3);
    assert_eq!(page.body["next"], Value::Null);

    // The SDK's errors are the project's JSON error shape.
    let r = send(&host, Method::GET, "/notices/99", None, &clerk);
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let r =
        block_on(
            host.client()
                .send(Method::POST, "/notices", Some(&json!({"title": "x"})), &[]),
        )
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // An uncaught exception (a stored record that is not JSON) is a JSON
    // 500 with no details, and exactly one error event with the stack.
    let corrupt = temp_dir("corrupt").join("notice.jsonl");
    std::fs::write(
        &corrupt,
        "{\"key\":\"notice/0000000007\",\"value\":\"{not json\"}\n",
    )
    .unwrap();
    host.import_data("notice-service", &corrupt);
    let r = send(&host, Method::GET, "/notices/7", None, &clerk);
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        json!({"code": "internal", "message": "internal error"})
    );
    let trace = r.headers["x-trace-id"].to_str().unwrap().to_string();
    let events = host.events(&format!("trace={trace}"));
    let errors: Vec<&Value> = events.iter().filter(|e| e["level"] == "error").collect();
    assert_eq!(errors.len(), 1, "{events:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("is not valid JSON") && message.contains("bundle.js:"),
        "{message}"
    );
    assert_eq!(events.len(), 1, "nothing else was logged: {events:?}");
}
