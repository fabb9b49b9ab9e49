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
    start_configured(components, "")
}

/// Like [`start`], with a config file holding `config` (none if empty).
fn start_configured(components: &[PathBuf], config: &str) -> Host {
    let data = temp_dir("polyglot");
    let file = data.with_extension("toml");
    let cache = shared_cache();
    let mut flags = vec!["--cache-dir", cache.as_str()];
    if !config.is_empty() {
        std::fs::write(&file, config).unwrap();
        flags.extend(["--config", file.to_str().unwrap()]);
    }
    Host::start_with(components, &data, &flags)
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

/// What a request gets, as compared between implementations: status,
/// `Allow`, and the body (for a JSON parse error only its code: the
/// parsers word their messages differently).
fn answer(
    host: &Host,
    method: Method,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Value {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    let r = block_on(host.client().send_bytes(
        method,
        path,
        bytes::Bytes::from(body.unwrap_or_default().to_string()),
        &headers,
    ))
    .unwrap();
    let mut body = r.body;
    if body["message"]
        .as_str()
        .is_some_and(|m| m.contains("invalid JSON body"))
    {
        body["message"] = "invalid JSON body: ...".into();
    }
    let allow = r
        .headers
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    json!({"status": r.status.as_u16(), "allow": allow, "body": body})
}

/// The seed's requests, from a clerk and an identity admin, and every
/// answer, from a host with `config`.
fn seed_answers(components: &[PathBuf], config: &str) -> Vec<(String, Value)> {
    let host = start_configured(components, config);
    host.import_data("identity-service", &root().join("demo/citizens.jsonl"));
    let clerk = token(&host, "clerk");
    let admin = token(&host, "identity-admin");
    let report = "/reports/identity-check";
    let cases: Vec<(Method, &str, Option<&str>, Option<&str>)> = vec![
        (Method::POST, report, Some(r#"{"id":"C12345"}"#), None),
        (Method::POST, report, Some(r#"{"id":"C99999"}"#), None),
        (Method::POST, report, Some(r#"{"id":"NOPE1"}"#), None),
        (Method::POST, report, Some(r#"{"id":"bad id"}"#), None),
        (Method::POST, report, Some(r#"{"id":""}"#), None),
        (Method::POST, report, Some("{"), None),
        (Method::POST, report, Some(r#"{"nope":1}"#), None),
        (Method::GET, report, None, None),
        (Method::POST, "/reports/other", Some("{}"), None),
        (
            Method::POST,
            "/identity/verify",
            Some(r#"{"id":"C12345"}"#),
            None,
        ),
        (
            Method::POST,
            "/identity/verify",
            Some(r#"{"id":"C12345"}"#),
            Some(&clerk),
        ),
        (
            Method::POST,
            "/identity/verify",
            Some(r#"{"id":"C99999"}"#),
            Some(&clerk),
        ),
        (
            Method::POST,
            "/identity/verify",
            Some(r#"{"id":"NOPE1"}"#),
            Some(&clerk),
        ),
        (
            Method::POST,
            "/identity/verify",
            Some(r#"{"id":"C12345"}"#),
            Some("not-a-token"),
        ),
        (
            Method::PUT,
            "/identity/citizens/C77777",
            Some(r#"{"status":"active","name":"Test"}"#),
            Some(&admin),
        ),
        (
            Method::PUT,
            "/identity/citizens/C77778",
            Some(r#"{"status":"asleep"}"#),
            Some(&admin),
        ),
        (Method::GET, "/identity/citizens/C77777", None, Some(&admin)),
        (Method::GET, "/identity/citizens/C77777", None, Some(&clerk)),
        (Method::GET, "/identity/citizens/C00000", None, Some(&admin)),
        (
            Method::DELETE,
            "/identity/citizens/C77777",
            None,
            Some(&admin),
        ),
        (Method::GET, "/identity/citizens/", None, Some(&admin)),
        (
            Method::GET,
            "/identity/citizens/C77777/x",
            None,
            Some(&admin),
        ),
        (Method::POST, report, Some(r#"{"id":"C77777"}"#), None),
    ];
    let mut answers: Vec<(String, Value)> = cases
        .into_iter()
        .map(|(method, path, body, token)| {
            let what = format!("{method} {path} {}", body.unwrap_or_default());
            (what, answer(&host, method, path, body, token))
        })
        .collect();
    // The routes and the caller policy each declares, as the host lists them.
    let services = block_on(host.client().call(Method::GET, "/_hms/services", None)).unwrap();
    for s in services["services"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let stats = block_on(host.admin().call(
            Method::GET,
            &format!("/_hms/services/{name}/stats"),
            None,
        ))
        .unwrap();
        if !config.is_empty() {
            // The kept instances did serve these requests.
            let kept = stats["kept_instances"].as_u64().unwrap();
            assert!(kept >= 1, "{name} kept no instance: {stats}");
        }
        let declared = json!({"routes": s["routes"], "callers": stats["callers"]});
        answers.push((format!("{name} manifest"), declared));
    }
    answers
}

#[test]
fn a_javascript_service_that_cannot_serve_a_second_request_stops_being_kept() {
    // StarlingMonkey answers only the first call of an instance: the first
    // kept instance asked again fails that one request, and from then on
    // every request gets a fresh instance.
    let host = start_configured(
        &[built("notice-js")],
        "[services.notice-service]\nrequests_per_instance = 10\n",
    );
    let clerk = token(&host, "clerk");
    let list = || send(&host, Method::GET, "/notices", None, &clerk);
    assert_eq!(list().status, 200);
    let second = list();
    assert_eq!(second.status, 500, "{:?}", second.body);
    assert_eq!(second.body["code"], "component_failed");
    for _ in 0..5 {
        let r = list();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let stats = block_on(host.admin().stats("notice-service")).unwrap();
    assert_eq!(stats.kept_instances, 0);
    let said = host.events("service=notice-service&level=warn");
    let gave_up: Vec<&Value> = said
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .contains("answered only the first request of an instance")
        })
        .collect();
    assert_eq!(gave_up.len(), 1, "{said:?}");
}

#[test]
fn the_seed_services_in_python_answer_exactly_as_the_rust_ones() {
    let rust = seed_answers(&seed_components(), "");
    assert_eq!(
        rust[0].1["body"]["report"], "ID C12345 is verified",
        "{rust:?}"
    );
    let python = [built("identity-py"), built("report-py")];
    // Instances kept between requests answer as fresh ones do: the SDK
    // keeps no request's state for the next.
    let kept = "[defaults]\nrequests_per_instance = 100\n";
    let mixes = [
        ("all Python", python.to_vec(), ""),
        ("all Python, instances kept", python.to_vec(), kept),
        (
            "Python identity, Rust report",
            vec![python[0].clone(), component("report")],
            "",
        ),
        (
            "Rust identity, Python report",
            vec![component("identity"), python[1].clone()],
            "",
        ),
    ];
    for (what, components, config) in mixes {
        let answers = seed_answers(&components, config);
        assert_eq!(answers.len(), rust.len(), "{what}");
        for ((request, expected), (_, got)) in rust.iter().zip(&answers) {
            assert_eq!(got, expected, "{what}: {request}");
        }
    }
}

#[test]
fn python_services_calling_each_other_do_not_wait_for_their_callers_turn() {
    // With one heavy-lane permit (2 cores), a Python caller past its free
    // ticks held it while waiting for its Python callee, which needed it:
    // most concurrent calls stalled until the 10 s deadline (504).
    let host = start(&[built("identity-py"), built("report-py")]);
    host.import_data("identity-service", &root().join("demo/citizens.jsonl"));
    let url = host.url();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = hms_host::cli::client::Client::new(&url);
                (0..10)
                    .map(|_| {
                        let r = block_on(client.send(
                            Method::POST,
                            "/reports/identity-check",
                            Some(&json!({"id": "C12345"})),
                            &[],
                        ))
                        .unwrap();
                        (r.status.as_u16(), r.body["report"].clone())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for client in clients {
        for (status, report) in client.join().unwrap() {
            assert_eq!((status, report), (200, json!("ID C12345 is verified")));
        }
    }
}
