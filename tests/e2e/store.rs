//! Each service's private store: isolation between services, durability
//! (restart, kill -9, hot swap), quotas, atomic increment and
//! compare-and-swap, export/import, and identity-service's citizen records
//! seen through report-service.

use crate::common::*;
use http::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

fn probe_and_seed() -> Vec<PathBuf> {
    let mut all = seed_components();
    all.push(component("store_probe"));
    all
}

/// One store call through the probe service.
fn op(host: &Host, request: Value) -> (u16, Value) {
    let r = host.post("/store-probe/op", &request);
    (r.status.as_u16(), r.body)
}

fn token_for_subject(host: &Host, subject: &str) -> String {
    let key = new_key(host, subject);
    token_for(host, &key).body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn report(host: &Host, id: &str) -> Value {
    let r = host.post("/reports/identity-check", &json!({ "id": id }));
    assert_eq!(r.status, 200, "{id}: {:?}", r.body);
    r.body
}

#[test]
fn identity_keeps_citizen_records_and_report_words_every_outcome() {
    let host = Host::start(&seed_components());
    assert_eq!(
        report(&host, "C12345"),
        json!({"report": "ID C12345 is verified"})
    );
    assert_eq!(
        report(&host, "X404"),
        json!({"report": "ID X404 is not on record"})
    );

    // Records are managed through identity's admin route, with a token of
    // the identity-admin subject; any other subject is refused.
    let admin = host
        .client()
        .with_bearer(token_for_subject(&host, "identity-admin"));
    let put = |client: &hms_host::cli::client::Client, id: &str, status: &str| {
        block_on(client.send(
            Method::PUT,
            &format!("/identity/citizens/{id}"),
            Some(&json!({ "status": status, "name": "Test Person" })),
            &[],
        ))
        .unwrap()
    };
    let r = put(&admin, "N100", "active");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        report(&host, "N100"),
        json!({"report": "ID N100 is verified"})
    );
    let r = put(&admin, "N100", "revoked");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        report(&host, "N100"),
        json!({"report": "ID N100 is revoked"})
    );

    let other = host
        .client()
        .with_bearer(token_for_subject(&host, "citizen-portal"));
    assert_eq!(put(&other, "N101", "active").status, 403);
    assert_eq!(put(&host.client(), "N101", "active").status, 401);
    assert_eq!(
        report(&host, "N101"),
        json!({"report": "ID N101 is not on record"})
    );

    // identity's own answers, called directly.
    let r = block_on(other.send(
        Method::POST,
        "/identity/verify",
        Some(&json!({"id": "X404"})),
        &[],
    ))
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.body, json!({"status": "not_found", "citizen_id": "X404"}));
    let r = block_on(other.send(
        Method::POST,
        "/identity/verify",
        Some(&json!({"id": "N100"})),
        &[],
    ))
    .unwrap();
    assert_eq!(r.body, json!({"status": "revoked", "citizen_id": "N100"}));
}

#[test]
fn a_service_never_reaches_another_services_data() {
    let host = Host::start(&probe_and_seed());
    // identity-service holds citizen/C12345; the probe's own store does not,
    // whatever key, prefix or cursor it passes.
    for key in [
        "citizen/C12345",
        "identity-service/citizen/C12345",
        "../identity-service/citizen/C12345",
        "identity-service:citizen/C12345",
        "%",
    ] {
        assert_eq!(
            op(&host, json!({"op": "get", "key": key})),
            (200, json!({"value": null})),
            "{key}"
        );
    }
    let (_, page) = op(&host, json!({"op": "list", "prefix": "", "limit": 1000}));
    assert_eq!(page["keys"], json!([]));
    let (_, page) = op(
        &host,
        json!({"op": "list", "prefix": "", "cursor": "citizen/", "limit": 1000}),
    );
    assert_eq!(page["keys"], json!([]));

    // Writing the same key in its own store leaves identity's record alone.
    let revoked = r#"{"status":"revoked"}"#;
    assert_eq!(
        op(
            &host,
            json!({"op": "set", "key": "citizen/C12345", "value": revoked})
        )
        .0,
        200
    );
    assert_eq!(
        report(&host, "C12345"),
        json!({"report": "ID C12345 is verified"})
    );
    let (_, page) = op(&host, json!({"op": "list", "prefix": "", "limit": 1000}));
    assert_eq!(page["keys"], json!(["citizen/C12345"]));

    // The exports differ: each service has its own database file.
    let export = |service: &str| {
        let out = host.cli(&["data", "export", service]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(export("store-probe-service").lines().count(), 1);
    assert!(export("identity-service").contains("\"status\\\":\\\"active\\\""));
}

#[test]
fn writes_survive_kill_9_restarts_and_hot_swaps() {
    let data = temp_dir("store-durable");
    let components = probe_and_seed();
    let host = Host::start_with(&components, &data, &[]);
    for i in 0..20 {
        let key = format!("k{i}");
        assert_eq!(
            op(
                &host,
                json!({"op": "set", "key": key, "value": format!("v{i}")})
            )
            .0,
            200
        );
    }
    assert_eq!(
        op(&host, json!({"op": "increment", "key": "n", "delta": 7})).1["value"],
        7
    );
    // Hot swap identity: the new version serves the same citizens.
    let out = host.cli(&[
        "deploy",
        "identity-service",
        component("identity_confirmed").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["report"].as_str().unwrap().contains("C12345"),
        "{:?}",
        r.body
    );
    drop(host); // SIGKILL: no shutdown, no flush

    let host = Host::start_with(&components, &data, &[]);
    for i in 0..20 {
        let (_, v) = op(&host, json!({"op": "get", "key": format!("k{i}")}));
        assert_eq!(v["value"], format!("v{i}"));
    }
    assert_eq!(
        op(&host, json!({"op": "increment", "key": "n", "delta": 1})).1["value"],
        8
    );
}

#[test]
fn quotas_and_sizes_are_store_errors() {
    let data = temp_dir("store-quota");
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "[services.store-probe-service]\nstore_quota_mb = 1\nmax_value_kb = 64\nmax_key_bytes = 32\n",
    )
    .unwrap();
    let host = Host::start_with(
        &[component("store_probe")],
        &data,
        &["--config", config.to_str().unwrap()],
    );
    let (status, e) = op(
        &host,
        json!({"op": "set", "key": "big", "value": "x", "value_repeat": 70000}),
    );
    assert_eq!(
        (status, &e["kind"], &e["detail"]),
        (409, &json!("value-too-large"), &json!(65536))
    );
    let (status, e) = op(
        &host,
        json!({"op": "set", "key": "k".repeat(33), "value": "x"}),
    );
    assert_eq!((status, &e["kind"]), (409, &json!("invalid-key")));
    let (_, e) = op(&host, json!({"op": "set", "key": "", "value": "x"}));
    assert_eq!(e["kind"], "invalid-key");

    let mut stored = 0;
    let refused = loop {
        let key = format!("fill{stored}");
        let (status, body) = op(
            &host,
            json!({"op": "set", "key": key, "value": "x", "value_repeat": 60000}),
        );
        if status != 200 {
            break body;
        }
        stored += 1;
        assert!(stored < 100, "the quota never stopped the writes");
    };
    assert_eq!(refused["kind"], "quota-exceeded");
    assert_eq!(refused["detail"], 1 << 20);
    assert_eq!(stored, 17, "1 MiB holds 17 values of 60000 bytes");
    // Freeing space makes room again; nothing refused was kept.
    assert_eq!(
        op(&host, json!({"op": "get", "key": format!("fill{stored}")})).1["value"],
        Value::Null
    );
    assert_eq!(
        op(&host, json!({"op": "delete", "key": "fill0"})).1["existed"],
        true
    );
    assert_eq!(
        op(
            &host,
            json!({"op": "set", "key": "again", "value": "x", "value_repeat": 60000})
        )
        .0,
        200
    );
    // The increment of a non-number is refused too.
    op(&host, json!({"op": "set", "key": "word", "value": "abc"}));
    assert_eq!(
        op(&host, json!({"op": "increment", "key": "word", "delta": 1})).1["kind"],
        "not-a-number"
    );
}

#[test]
fn increments_and_compare_and_swap_are_atomic() {
    let host = Host::start(&[component("store_probe")]);
    let url = host.url();
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let c = hms_host::cli::client::Client::new(&url);
                let r = block_on(c.send(
                    Method::POST,
                    "/store-probe/op",
                    Some(&json!({"op": "increment", "key": "hits", "delta": 1})),
                    &[],
                ))
                .unwrap();
                assert_eq!(r.status, 200, "{:?}", r.body);
                r.body["value"].as_i64().unwrap()
            })
        })
        .collect();
    let mut seen: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    seen.sort();
    assert_eq!(
        seen,
        (1..=32).collect::<Vec<_>>(),
        "every increment saw its own sum"
    );
    assert_eq!(
        op(&host, json!({"op": "get", "key": "hits"})).1["value"],
        "32"
    );

    let cas = |expected: Value, value: &str| {
        op(
            &host,
            json!({"op": "cas", "key": "lock", "expected": expected, "value": value}),
        )
        .1["swapped"]
            .clone()
    };
    assert_eq!(cas(Value::Null, "a"), true, "absent: set");
    assert_eq!(cas(Value::Null, "b"), false, "present: not set");
    assert_eq!(cas(json!("x"), "b"), false, "wrong expectation");
    assert_eq!(cas(json!("a"), "b"), true);
    assert_eq!(
        op(&host, json!({"op": "get", "key": "lock"})).1["value"],
        "b"
    );

    // Paging through keys.
    for i in 0..5 {
        op(
            &host,
            json!({"op": "set", "key": format!("page/{i}"), "value": "x"}),
        );
    }
    let (_, first) = op(&host, json!({"op": "list", "prefix": "page/", "limit": 3}));
    assert_eq!(first["keys"], json!(["page/0", "page/1", "page/2"]));
    let (_, second) = op(
        &host,
        json!({"op": "list", "prefix": "page/", "cursor": first["next"], "limit": 3}),
    );
    assert_eq!(second, json!({"keys": ["page/3", "page/4"], "next": null}));
}

#[test]
fn export_then_import_round_trips_and_bad_lines_import_nothing() {
    let source = Host::start(&seed_components());
    let file = temp_dir("export").join("identity.jsonl");
    let out = source.cli(&[
        "data",
        "export",
        "identity-service",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(exported.contains("citizen/C12345"), "{exported}");

    let target = Host::start(&[component("store_probe")]);
    let out = target.cli(&["data", "import", "identity-service", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = target.cli(&["data", "export", "identity-service"]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), exported);

    let bad = file.with_extension("bad");
    std::fs::write(&bad, "{\"key\":\"a\",\"value\":\"1\"}\nnot json\n").unwrap();
    let out = target.cli(&[
        "data",
        "import",
        "store-probe-service",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(
        op(&target, json!({"op": "get", "key": "a"})).1["value"],
        Value::Null
    );

    // Only the admin may export.
    let r = block_on(
        target
            .client()
            .send(Method::GET, "/_hms/data/identity-service", None, &[]),
    )
    .unwrap();
    assert_eq!(r.status, 401);
}
