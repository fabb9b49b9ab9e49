//! Request isolation: every request runs in a fresh instance, so nothing one
//! request leaves in memory (statics, heap, grown pages) is visible to the
//! next, whether the pool resets a freed instance's memory in place (the
//! default) or hands it back with madvise (`--pool-keep-resident-kb 0`).
//! The `isolation` guest looks for such traces and leaves them on every
//! request; see `components/tests/isolation`.

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
