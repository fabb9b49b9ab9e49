//! `hms-host new --lang rust|python|js NAME`: each skeleton builds with its
//! one command, passes its own test, and the component it builds serves its
//! route on the real host.
//!
//! The skeletons refer to their SDK beside them in `components/`; here they
//! are written into a scratch checkout whose `components/` links to this
//! one's SDKs and installed toolchains (the npm workspace's node_modules,
//! the Python SDK's venv through `HMS_SDK`), so nothing in the repository
//! changes.

use crate::common::*;
use crate::polyglot;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch_checkout() -> PathBuf {
    let root = temp_dir("skeletons");
    let components = root.join("components");
    std::fs::create_dir_all(&components).unwrap();
    for linked in ["sdk", "sdk-js", "sdk-python", "node_modules"] {
        std::os::unix::fs::symlink(root_components().join(linked), components.join(linked))
            .unwrap();
    }
    root
}

fn root_components() -> PathBuf {
    root().join("components")
}

fn hms_new(root: &Path, lang: &str, name: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["new", "--lang", lang, name, "--root"])
        .arg(root)
        .output()
        .unwrap()
}

/// Runs `program args` in `dir`; panics with its output unless it succeeds.
fn run_in(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    // The outer cargo's settings are not the skeleton's.
    cmd.env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_skeleton_builds_passes_its_test_and_serves() {
    let root = scratch_checkout();
    let components = root.join("components");
    // Shared with the guest workspace, so hms-guest's dependencies are
    // compiled once.
    let rust_target = root_components().join("target");

    let out = hms_new(&root, "rust", "tax-office");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = components.join("tax-office");
    run_in(
        &dir,
        env!("CARGO"),
        &["test"],
        &[("CARGO_TARGET_DIR", &rust_target)],
    );
    run_in(
        &dir,
        env!("CARGO"),
        &["build", "--release", "--target", "wasm32-wasip2"],
        &[("CARGO_TARGET_DIR", &rust_target)],
    );
    let rust = rust_target.join("wasm32-wasip2/release/tax_office.wasm");

    let out = hms_new(&root, "python", "permit-desk");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = components.join("permit-desk");
    run_in(
        &dir,
        "./build.sh",
        &[],
        &[("HMS_SDK", &root_components().join("sdk-python"))],
    );
    let python = dir.join("permit-desk.wasm");

    let out = hms_new(&root, "js", "notice-board");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = components.join("notice-board");
    run_in(&dir, "npm", &["test", "--silent"], &[]);
    run_in(&dir, "npm", &["run", "--silent", "build"], &[]);
    let js = components.join("notice-board.wasm");

    // Refusals: an invalid name, and a directory that exists.
    let out = hms_new(&root, "rust", "Tax_Office");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid service name"));
    let out = hms_new(&root, "js", "notice-board");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let host = polyglot::start(&[rust, python, js]);
    for (path, expected) in [
        ("/tax-office/hello/Ada", "Hello, Ada"),
        ("/notice-board/hello/Ada", "Hello, Ada"),
    ] {
        let r = block_on(host.client().send(http::Method::GET, path, None, &[])).unwrap();
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(r.body["greeting"], expected, "{path}");
        assert_eq!(r.body["count"], 1, "{path}");
    }
    let item = serde_json::json!({"text": "hello"});
    let r =
        block_on(
            host.client()
                .send(http::Method::PUT, "/permit-desk/items/a", Some(&item), &[]),
        )
        .unwrap();
    assert_eq!((r.status.as_u16(), &r.body), (200, &item));
    let r = block_on(
        host.client()
            .send(http::Method::GET, "/permit-desk/items/a", None, &[]),
    )
    .unwrap();
    assert_eq!((r.status.as_u16(), &r.body), (200, &item));
}
