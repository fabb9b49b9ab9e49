//! Request isolation: every request runs in a fresh instance, so nothing one
//! request leaves in memory (statics, heap, grown pages) is visible to the
//! next, whether the pool resets a freed instance's memory in place (the
//! default) or hands it back with madvise (`--pool-keep-resident-kb 0`).
//! The `isolation` guest looks for such traces and leaves them on every
//! request; see `components/tests/isolation`. A service that allows its
//! instances several requests (`requests_per_instance`) is seen to keep
//! them exactly that long, and never after a trap.

use crate::common::*;
use http::Method;
use serde_json::{Value, json};

/// What the probe sees in a fresh instance.
fn fresh() -> Value {
    json!({"static_seen": 0, "data_seen": false, "heap_seen": false, "page_seen": false})
}

fn get(host: &Host, path: &str) -> Value {
    let r = block_on(host.client().send(Method::GET, path, None, &[])).unwrap();
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    r.body
}

fn every_request_sees_a_fresh_instance(flags: &[&str]) {
    let host = Host::start_with(&[component("isolation")], &temp_dir("iso"), flags);

    // The probe does see traces: run twice in one instance, the second run
    // finds everything the first left.
    let twice = get(&host, "/isolation/probe-twice");
    assert_eq!(twice["first"], fresh(), "{twice}");
    assert_eq!(
        twice["second"],
        json!({"static_seen": 1, "data_seen": true, "heap_seen": true, "page_seen": true}),
        "{twice}"
    );

    // One after another: each request most likely gets the slot the one
    // before it just freed, traces and all, unless the pool wiped them.
    for i in 0..50 {
        let path = if i % 10 == 9 {
            "/isolation/probe-twice"
        } else {
            "/isolation/probe"
        };
        let seen = get(&host, path);
        let first = if i % 10 == 9 { &seen["first"] } else { &seen };
        assert_eq!(*first, fresh(), "sequential request {i}: {seen}");
    }

    // Side by side: several slots in use and freed in turn.
    std::thread::scope(|s| {
        for t in 0..6 {
            let host = &host;
            s.spawn(move || {
                for i in 0..10 {
                    let seen = get(host, "/isolation/probe");
                    assert_eq!(seen, fresh(), "thread {t}, request {i}");
                }
            });
        }
    });
    assert_eq!(get(&host, "/isolation/probe"), fresh(), "after the burst");
}

#[test]
fn requests_are_isolated_when_freed_memory_is_reset_in_place() {
    every_request_sees_a_fresh_instance(&[]);
}

#[test]
fn requests_are_isolated_when_freed_memory_is_handed_back() {
    every_request_sees_a_fresh_instance(&["--pool-keep-resident-kb", "0"]);
}

/// The host with the isolation guest, its instances allowed `n` requests.
fn with_requests_per_instance(n: u32) -> Host {
    with_section(&format!("requests_per_instance = {n}\n"))
}

/// The host with the isolation guest and `section` as its config section.
fn with_section(section: &str) -> Host {
    let data = temp_dir("iso-keep");
    let file = data.with_extension("toml");
    std::fs::write(&file, format!("[services.isolation-service]\n{section}")).unwrap();
    Host::start_with(
        &[component("isolation")],
        &data,
        &["--config", file.to_str().unwrap()],
    )
}

fn probes_seen(host: &Host) -> u64 {
    get(host, "/isolation/probe")["static_seen"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_service_that_allows_it_keeps_an_instance_for_exactly_that_many_requests() {
    let host = with_requests_per_instance(3);
    // One after another: the same instance serves three requests (each sees
    // the probes before it), then a fresh one takes over.
    let seen: Vec<u64> = (0..7).map(|_| probes_seen(&host)).collect();
    assert_eq!(seen, [0, 1, 2, 0, 1, 2, 0]);
    let stats = block_on(host.admin().stats("isolation-service")).unwrap();
    assert_eq!(stats.limits.requests_per_instance, 3);
    assert_eq!(stats.kept_instances, 1, "{stats:?}");
    let (_, metrics) =
        block_on(
            host.admin()
                .send_raw(Method::GET, "/_hms/metrics", bytes::Bytes::new(), &[]),
        )
        .unwrap();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"hms_instances_kept{service="isolation-service"} 1"#),
        "{metrics}"
    );

    // An instance that trapped is gone: the next request starts afresh.
    assert_eq!(probes_seen(&host), 1);
    let trap = block_on(
        host.client()
            .send(Method::GET, "/isolation/panic", None, &[]),
    )
    .unwrap();
    assert_eq!(trap.status, 500, "{:?}", trap.body);
    assert_eq!(probes_seen(&host), 0);
}

#[test]
fn no_more_instances_are_kept_than_ran_at_once() {
    let host = with_requests_per_instance(1000);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let host = &host;
            s.spawn(move || {
                for _ in 0..10 {
                    get(host, "/isolation/probe");
                }
            });
        }
    });
    let stats = block_on(host.admin().stats("isolation-service")).unwrap();
    assert!(
        (1..=4).contains(&stats.kept_instances),
        "{} kept",
        stats.kept_instances
    );
    // The next request runs in one of them.
    assert!(probes_seen(&host) > 0);
}

#[test]
fn an_instance_past_half_its_memory_limit_is_not_kept() {
    // Each probe grows the instance's memory to 4 MiB: over half of 6 MiB,
    // so every request gets a fresh instance even though 3 are allowed.
    let host = with_section("requests_per_instance = 3\nmemory_mb = 6\n");
    let seen: Vec<u64> = (0..4).map(|_| probes_seen(&host)).collect();
    assert_eq!(seen, [0, 0, 0, 0]);
    let stats = block_on(host.admin().stats("isolation-service")).unwrap();
    assert_eq!(stats.kept_instances, 0);
}
