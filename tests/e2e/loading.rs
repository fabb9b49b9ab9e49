//! What the host accepts as a component, and how it says no.

use crate::common::*;
use std::process::Command;

fn run_expecting_failure(file: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(temp_dir("reject"))
        .arg(file)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "loading {} should fail",
        file.display()
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn non_components_are_rejected_with_a_message_naming_the_file() {
    let dir = temp_dir("bad-files");
    let text = dir.join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    let err = run_expecting_failure(&text);
    assert!(
        err.contains("notes.wasm") && err.contains("not a WebAssembly file"),
        "{err}"
    );

    let module = dir.join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let err = run_expecting_failure(&module);
    assert!(
        err.contains("module.wasm") && err.contains("core WebAssembly module"),
        "{err}"
    );

    let missing = dir.join("missing.wasm");
    let err = run_expecting_failure(&missing);
    assert!(
        err.contains("missing.wasm") && err.contains("no such component file"),
        "{err}"
    );
}

#[test]
fn a_component_claiming_a_deployed_name_is_rejected() {
    let dir = temp_dir("twice");
    let copy = dir.join("identity-copy.wasm");
    std::fs::copy(component("identity"), &copy).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg(component("identity"))
        .arg(&copy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("identity-copy.wasm") && err.contains("already deployed"),
        "{err}"
    );
}

#[test]
fn a_plain_wasi_http_component_is_served_under_its_file_name() {
    let host = Host::start(&[component("hello")]);
    let r = block_on(host.client().send(http::Method::GET, "/hello", None, &[])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["ok"], true);
    let r = block_on(
        host.client()
            .send(http::Method::GET, "/hello/anything/below", None, &[]),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let services = block_on(
        host.client()
            .call(http::Method::GET, "/_hms/services", None),
    )
    .unwrap();
    assert_eq!(services["services"][0]["name"], "hello");
    assert_eq!(
        services["services"][0]["routes"],
        serde_json::json!(["/hello/..."])
    );
}

#[test]
fn every_test_guest_is_used_by_a_test() {
    let sources: String = std::fs::read_dir(root().join("tests/e2e"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for guest in std::fs::read_dir(root().join("components/tests")).unwrap() {
        let crate_name = guest
            .unwrap()
            .file_name()
            .to_string_lossy()
            .replace('-', "_");
        assert!(
            sources.contains(&format!("component(\"{crate_name}\")")),
            "test guest {crate_name} has no end-to-end test"
        );
    }
}
