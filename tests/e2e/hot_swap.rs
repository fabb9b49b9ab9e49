//! Independent deployment: swapping one service while the host serves.

use crate::common::*;
use bytes::Bytes;
use http::Method;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SWAPS: usize = 10;
const CLIENTS: usize = 4;
const BETWEEN_SWAPS: Duration = Duration::from_millis(800);

fn upload(host: &Host, service: &str, bytes: Vec<u8>) -> hms_host::cli::client::JsonResponse {
    let path = format!("/_hms/services/{service}/versions");
    block_on(
        host.admin()
            .send_bytes(Method::POST, &path, Bytes::from(bytes), &[]),
    )
    .unwrap()
}

fn report(host: &Host) -> String {
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["report"].as_str().unwrap().to_string()
}

#[test]
fn swapping_identity_ten_times_under_load_fails_no_request() {
    let host = Host::start(&seed_components());
    let v1 = std::fs::read(component("identity")).unwrap();
    let v2 = std::fs::read(component("identity_confirmed")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, stop, seen) = (host.client(), stop.clone(), seen.clone());
            rt.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .send(
                            Method::POST,
                            "/reports/identity-check",
                            Some(&json!({"id": "C12345"})),
                            &[],
                        )
                        .await
                        .expect("the host stays up");
                    let text = r.body["report"].as_str().unwrap_or_default().to_string();
                    seen.lock().unwrap().push((r.status.as_u16(), text));
                }
            })
        })
        .collect();
    for i in 0..SWAPS {
        std::thread::sleep(BETWEEN_SWAPS);
        let bytes = if i % 2 == 0 { v2.clone() } else { v1.clone() };
        let r = upload(&host, "identity-service", bytes);
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    std::thread::sleep(BETWEEN_SWAPS);
    stop.store(true, Ordering::Relaxed);
    for t in load {
        rt.block_on(t).unwrap();
    }
    let seen = seen.lock().unwrap();
    let failed: Vec<_> = seen.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failed.len(),
        seen.len(),
        failed[0]
    );
    let verified = seen
        .iter()
        .filter(|(_, t)| t == "ID C12345 is verified")
        .count();
    let confirmed = seen
        .iter()
        .filter(|(_, t)| t == "ID C12345 is confirmed")
        .count();
    assert_eq!(verified + confirmed, seen.len(), "unexpected answers");
    assert!(
        verified > 0 && confirmed > 0,
        "both versions should serve: {verified} / {confirmed}"
    );
    // The last upload (i = 9) was the original identity.
    assert_eq!(report(&host), "ID C12345 is verified");
    // report-service was never touched.
    let versions = block_on(host.client().call(
        Method::GET,
        "/_hms/services/report-service/versions",
        None,
    ))
    .unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_uploads_are_refused_and_the_running_version_keeps_serving() {
    let host = Host::start(&seed_components());
    let identity = std::fs::read(component("identity")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not wasm", b"<html>".to_vec(), "not a WebAssembly file"),
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "core WebAssembly module",
        ),
        (
            "truncated component",
            identity[..identity.len() / 2].to_vec(),
            "invalid component",
        ),
        (
            "another service",
            std::fs::read(component("report")).unwrap(),
            "calls itself \"report-service\"",
        ),
        (
            "no HTTP handler",
            std::fs::read(component("no_handler")).unwrap(),
            "does not export wasi:http/incoming-handler",
        ),
        (
            "unknown import",
            std::fs::read(component("unknown_import")).unwrap(),
            "test:extra/missing",
        ),
        (
            "traps on start",
            std::fs::read(component("trap_on_start")).unwrap(),
            "traps while starting",
        ),
    ];
    for (what, bytes, expected) in cases {
        let r = upload(&host, "identity-service", bytes);
        assert_eq!(r.status, 400, "{what}: {:?}", r.body);
        assert_eq!(r.body["code"], "bad_request", "{what}");
        let message = r.body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{what}: {message}");
        assert_eq!(report(&host), "ID C12345 is verified", "{what}");
    }
    let rejected = host.events("service=hms-host&level=warn");
    assert_eq!(
        rejected.len(),
        7,
        "every rejected upload is logged: {rejected:?}"
    );

    // Uploads need the admin credential.
    let r = block_on(host.client().send_bytes(
        Method::POST,
        "/_hms/services/identity-service/versions",
        Bytes::from(identity),
        &[],
    ))
    .unwrap();
    assert_eq!(r.status, 401);
}

#[test]
fn deploy_versions_and_rollback_from_the_cli() {
    let host = Host::start(&seed_components());
    let next = component("identity_confirmed");
    let out = host.cli(&["deploy", "identity-service", next.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report(&host), "ID C12345 is confirmed");

    let out = host.cli(&["versions", "identity-service"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert!(
        listing.lines().last().unwrap().contains("active"),
        "{listing}"
    );
    let first = listing
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let out = host.cli(&["rollback", "identity-service"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report(&host), "ID C12345 is verified");
    assert!(String::from_utf8(out.stdout).unwrap().contains(&first));

    // Forward again by digest prefix, then a version that does not exist.
    let latest = String::from_utf8(host.cli(&["versions", "identity-service"]).stdout).unwrap();
    let confirmed = latest
        .lines()
        .find(|l| !l.contains("active"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let prefix = &confirmed[..("sha256:".len() + 10)];
    assert!(
        host.cli(&["rollback", "identity-service", "--to", prefix])
            .status
            .success()
    );
    assert_eq!(report(&host), "ID C12345 is confirmed");
    let out = host.cli(&["rollback", "identity-service", "--to", "sha256:ffffffff"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no version")
    );

    let swaps = host.events("service=hms-host");
    assert!(swaps.iter().any(|e| {
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("rolled back to identity-service")
    }));
}

#[test]
fn a_restart_serves_what_was_active_unless_the_file_changed_meanwhile() {
    let dir = temp_dir("restart-versions");
    let file = dir.join("identity.wasm");
    std::fs::copy(component("identity"), &file).unwrap();
    let files = [file.clone(), component("report")];
    let data = dir.join("data");
    let confirmed = std::fs::read(component("identity_confirmed")).unwrap();

    let host = Host::start_with(&files, &data, &[]);
    assert_eq!(
        upload(&host, "identity-service", confirmed.clone()).status,
        201
    );
    drop(host); // SIGKILL: the record must already be durable

    // The file is unchanged: the uploaded version is restored.
    let host = Host::start_with(&files, &data, &[]);
    assert_eq!(report(&host), "ID C12345 is confirmed");
    let versions = block_on(host.client().call(
        Method::GET,
        "/_hms/services/identity-service/versions",
        None,
    ))
    .unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert!(
        host.events("service=hms-host")
            .iter()
            .any(|e| e["message"].as_str().unwrap().starts_with("restored"))
    );
    // Roll back to the file's version, then change the file while stopped.
    assert!(host.cli(&["rollback", "identity-service"]).status.success());
    assert_eq!(report(&host), "ID C12345 is verified");
    drop(host);
    std::fs::write(&file, &confirmed).unwrap();

    // The changed file is the newer deploy and wins over the recorded one.
    let host = Host::start_with(&files, &data, &[]);
    assert_eq!(report(&host), "ID C12345 is confirmed");
}
