//! Start-up and shutdown of the host process.

use crate::common::*;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn sigterm_drains_and_exits_zero_and_a_restart_reuses_keys_and_compiled_components() {
    let data_dir = temp_dir("lifecycle");
    let mut host = Host::start_with(&seed_components(), &data_dir, &[]);
    assert_eq!(
        host.post("/reports/identity-check", &json!({"id": "C1"}))
            .status,
        200
    );
    let admin = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &host.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = host.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "host did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");

    // The compile cache holds one artifact per component, reused on restart.
    let cached = || std::fs::read_dir(data_dir.join("cache")).unwrap().count();
    assert_eq!(cached(), 2);
    let host = Host::start_with(&seed_components(), &data_dir, &[]);
    assert_eq!(cached(), 2);
    assert_eq!(
        std::fs::read_to_string(data_dir.join("admin.token")).unwrap(),
        admin
    );
    assert_eq!(
        host.post("/reports/identity-check", &json!({"id": "C2"}))
            .status,
        200
    );
    // Events from before the restart are still there, in order.
    let events = host.events("service=report-service");
    let messages: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["Generated report for C1", "Generated report for C2"]
    );
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let data_dir = temp_dir("perms").join("data");
    let _host = Host::start_with(&[component("hello")], &data_dir, &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("admin.token")), 0o600);
    assert_eq!(mode(&data_dir.join("keys.db")), 0o600);
}
