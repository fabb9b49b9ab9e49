//! File-watch deploys: change, add and remove component files under a
//! running host.

use crate::common::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `check` until it holds; generous, since it waits for file events.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `bytes` to `path` in two parts with a pause, the way a slow build
/// does, so the watcher sees a half-written file first.
fn write_slowly(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&bytes[..bytes.len() / 2]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    f.write_all(&bytes[bytes.len() / 2..]).unwrap();
}

#[test]
fn changed_added_and_removed_files_are_deployed_and_undeployed() {
    let dir = temp_dir("watched");
    let identity = dir.join("identity.wasm");
    std::fs::copy(component("identity"), &identity).unwrap();
    let host = Host::start_with(
        &[component("report")],
        &temp_dir("watch-data"),
        &["--components-dir", dir.to_str().unwrap()],
    );
    // identity comes from the directory, so its citizens are imported here.
    host.import_data("identity-service", &root().join("demo/citizens.jsonl"));
    let report = || host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(report().body["report"], "ID C12345 is verified");

    // Change: a new build lands in place.
    write_slowly(
        &identity,
        &std::fs::read(component("identity_confirmed")).unwrap(),
    );
    eventually("the changed file serves", || {
        report().body["report"] == "ID C12345 is confirmed"
    });
    let versions = host.events("service=hms-host");
    assert!(
        versions
            .iter()
            .all(|e| !e["message"].as_str().unwrap().contains("rejected")),
        "{versions:?}"
    );

    // Add: a new file in the directory becomes a service.
    std::fs::copy(component("hello"), dir.join("hello.wasm")).unwrap();
    eventually("the new file serves", || {
        host.post("/hello", &json!({})).status == 200
    });

    // Remove: its routes answer 404 and discovery stops finding it.
    std::fs::remove_file(&identity).unwrap();
    eventually("the removed service is gone", || report().status == 503);
    let r = host.post("/identity/verify", &json!({"id": "C9"}));
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let services = block_on(
        host.client()
            .call(http::Method::GET, "/_hms/services", None),
    )
    .unwrap();
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "report-service"]);
}
