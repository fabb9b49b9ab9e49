//! Prometheus metrics: `/_hms/metrics` with the admin credential, `/metrics`
//! without one on `--metrics-listen`; per-service requests, latencies,
//! in-flight, limit hits, instance memory and load time; Core's audit
//! commits, store operations and token verifications; a cluster host's
//! heartbeat and database pool.

use crate::cluster::{cluster_flags, fresh_database};
use crate::common::*;
use http::Method;
use serde_json::json;
use std::collections::HashMap;

/// `name{labels}` → value, from the Prometheus text format; every line
/// that is not a comment must be `series value`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut series = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not `series value`: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        assert!(
            series.insert(name.to_string(), value).is_none(),
            "{name} twice"
        );
    }
    series
}

fn value(series: &HashMap<String, f64>, name: &str) -> f64 {
    *series.get(name).unwrap_or_else(|| {
        let mut names: Vec<&String> = series.keys().collect();
        names.sort();
        panic!("no series {name}; have {names:#?}")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_scrape_shows_each_service_hop_its_limits_and_cores_work() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let host = Host::start_with(
        &seed_components(),
        &temp_dir("data"),
        &["--metrics-listen", &listen],
    );
    for _ in 0..5 {
        let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
        assert_eq!(r.body, json!({"report": "ID C12345 is verified"}));
    }
    // One body over report's limit: a 413 and a limit hit.
    assert_eq!(post_over_body_limit(&host).status, 413);

    let anonymous = block_on(host.client().send(Method::GET, "/_hms/metrics", None, &[])).unwrap();
    assert_eq!(anonymous.status, 401);
    let (parts, body) =
        block_on(
            host.admin()
                .send_raw(Method::GET, "/_hms/metrics", bytes::Bytes::new(), &[]),
        )
        .unwrap();
    assert_eq!(parts.status, 200);
    assert_eq!(
        parts.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("# TYPE hms_requests_total counter"), "{text}");
    let m = parse(&text);
    let report = r#"service="report-service""#;
    let identity = r#"service="identity-service""#;
    assert_eq!(
        value(
            &m,
            &format!(r#"hms_requests_total{{{report},class="2xx"}}"#)
        ),
        5.0
    );
    // report's calls to identity are hops of their own.
    assert_eq!(
        value(
            &m,
            &format!(r#"hms_requests_total{{{identity},class="2xx"}}"#)
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            &format!(r#"hms_requests_total{{{report},class="4xx"}}"#)
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            &format!("hms_request_duration_seconds_count{{{report}}}")
        ),
        6.0
    );
    assert!(value(&m, &format!("hms_request_duration_seconds_sum{{{report}}}")) > 0.0);
    assert_eq!(
        value(
            &m,
            &format!(r#"hms_limit_hits_total{{{report},limit="body_too_large"}}"#)
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            &format!(r#"hms_limit_hits_total{{{identity},limit="timeout"}}"#)
        ),
        0.0
    );
    assert_eq!(
        value(&m, &format!("hms_requests_in_flight{{{identity}}}")),
        0.0
    );
    assert!(
        value(
            &m,
            &format!("hms_instance_memory_bytes_count{{{identity}}}")
        ) >= 5.0
    );
    assert!(value(&m, &format!("hms_instance_memory_bytes_sum{{{identity}}}")) >= 5.0 * 65536.0);
    assert!(
        value(
            &m,
            &format!("hms_component_load_duration_seconds_count{{{identity}}}")
        ) >= 1.0
    );
    assert!(value(&m, "hms_audit_commit_duration_seconds_count") >= 5.0);
    assert!(value(&m, "hms_audit_commit_events_sum") >= 10.0);
    assert!(
        value(
            &m,
            r#"hms_store_operation_duration_seconds_count{op="get"}"#
        ) >= 5.0
    );
    assert!(value(&m, r#"hms_token_verifications_total{result="valid"}"#) >= 5.0);
    assert!(
        !m.keys().any(|k| k.starts_with("hms_cluster_")),
        "a standalone host has no cluster metrics"
    );

    // The scrapers' listener: no credential, the same metrics.
    let scraper = hms_host::cli::client::Client::new(&format!("http://{listen}"));
    let (parts, body) =
        block_on(scraper.send_raw(Method::GET, "/metrics", bytes::Bytes::new(), &[])).unwrap();
    assert_eq!(parts.status, 200);
    let m = parse(std::str::from_utf8(&body).unwrap());
    assert_eq!(
        value(
            &m,
            &format!(r#"hms_requests_total{{{report},class="2xx"}}"#)
        ),
        5.0
    );
    let other = block_on(scraper.send(Method::GET, "/_hms/keys", None, &[])).unwrap();
    assert_eq!(other.status, 404, "only /metrics is served there");
}

#[test]
fn a_cluster_host_shows_its_heartbeat_and_database_pool() {
    let url = fresh_database("metrics");
    let host = Host::start_with(
        &seed_components(),
        &temp_dir("data"),
        &cluster_flags(&url, "m1"),
    );
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (_, body) =
        block_on(
            host.admin()
                .send_raw(Method::GET, "/_hms/metrics", bytes::Bytes::new(), &[]),
        )
        .unwrap();
    let m = parse(std::str::from_utf8(&body).unwrap());
    let age = value(&m, "hms_cluster_heartbeat_age_seconds");
    assert!((0.0..5.0).contains(&age), "heartbeat age {age}");
    assert!(value(&m, r#"hms_cluster_db_connections{state="open"}"#) >= 1.0);
    assert!(value(&m, r#"hms_cluster_db_connections{state="max"}"#) >= 1.0);
    assert_eq!(
        value(&m, r#"hms_cluster_db_connections{state="waiting"}"#),
        0.0
    );
}
