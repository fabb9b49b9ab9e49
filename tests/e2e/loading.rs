//! What the host accepts as a component, and how it says no.

use crate::common::*;
use std::process::Command;

/// Runs the host on `file` (with `flags`), which must refuse it before it
/// starts listening; what it said on stderr.
fn refused_before_listening(file: &std::path::Path, flags: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(temp_dir("reject"))
        .args(flags)
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "loading {} should fail",
        file.display()
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        !stdout.contains("listening"),
        "refused after listening: {stdout}"
    );
    String::from_utf8(out.stderr).unwrap()
}

fn run_expecting_failure(file: &std::path::Path) -> String {
    refused_before_listening(file, &[])
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
fn files_that_cannot_run_are_refused_before_the_host_listens() {
    let err = run_expecting_failure(&component("unknown_import"));
    assert!(
        err.contains("unknown_import.wasm")
            && err.contains("imports test:extra/missing")
            && err.contains("does not provide"),
        "{err}"
    );
    let err = run_expecting_failure(&component("no_handler"));
    assert!(
        err.contains("does not export wasi:http/incoming-handler"),
        "{err}"
    );
    // A memory limit below what the component starts with: said at once,
    // with the figure it needs, before anything is compiled.
    let started = std::time::Instant::now();
    let err = refused_before_listening(&component("identity"), &["--memory-limit-mb", "1"]);
    assert!(
        err.contains("identity.wasm: its linear memory starts at")
            && err.contains("over the memory limit of 1 MiB")
            && err.contains("to at least 2 MiB"),
        "{err}"
    );
    assert!(!err.contains("compil"), "{err}");
    eprintln!("refused in {:?}", started.elapsed());
    // A plain component whose file stem has nothing valid in it.
    let dir = temp_dir("bad-stem");
    let nameless = dir.join("___.wasm");
    std::fs::copy(component("hello"), &nameless).unwrap();
    let err = run_expecting_failure(&nameless);
    assert!(
        err.contains("___.wasm") && err.contains("named after its file"),
        "{err}"
    );
}

/// Path, status and body of a GET to the plain hello component.
fn hello_path(host: &Host, path: &str) -> (u16, String) {
    let r = block_on(host.client().send(http::Method::GET, path, None, &[])).unwrap();
    (
        r.status.as_u16(),
        r.body["path"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_plain_component_gets_a_valid_name_and_its_routes_from_the_config() {
    let dir = temp_dir("plain-routes");
    // wasmtime's test programs are named like this: `_` is not valid in a
    // service name, so the file stem is turned into one.
    let proxy = dir.join("p2_api_proxy.wasm");
    std::fs::copy(component("hello"), &proxy).unwrap();
    let greeter = dir.join("greeter.wasm");
    std::fs::copy(component("hello"), &greeter).unwrap();
    let config = dir.join("hms.toml");
    std::fs::write(
        &config,
        "[services.p2-api-proxy]\nroutes = [\"/\", \"/echo\", \"/new_fields/...\"]\n\n\
         [services.greeter]\nstrip_prefix = true\n",
    )
    .unwrap();
    let host = Host::start_with(
        &[proxy, greeter],
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
    );
    // The routes it was given, with the whole path passed through.
    for path in ["/", "/echo", "/new_fields/a/b"] {
        assert_eq!(hello_path(&host, path), (200, path.to_string()));
    }
    assert_eq!(hello_path(&host, "/other").0, 404);
    // Mounted under /greeter/... with the prefix taken off; the query stays
    // out of `path` as hello reports it.
    assert_eq!(
        hello_path(&host, "/greeter/echo?x=1"),
        (200, "/echo".into())
    );
    assert_eq!(hello_path(&host, "/greeter"), (200, "/".into()));
    let names: Vec<String> = block_on(host.client().services())
        .unwrap()
        .services
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["greeter", "p2-api-proxy"]);

    // `routes` for a component whose manifest declares its own is refused.
    let config = dir.join("wrong.toml");
    std::fs::write(
        &config,
        "[services.identity-service]\nroutes = [\"/id/...\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data2"))
        .arg(component("identity"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is for plain wasi:http components"), "{err}");
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
