//! The web console in a real browser: the real host with the seed's
//! services, driven by `tests/console/console.mjs` (Playwright in Debian's
//! Chromium) through sign-in, services, a rollback, the audit log, API keys
//! and the cluster view. Needs Node.js, `npm ci --prefix tests/console` and
//! `apt-get install -y chromium`: without them the test fails and says so.
//!
//! `HMS_UPDATE_SCREENSHOT=1` also rewrites `docs/console.png` (the services
//! view, for the README).

use crate::common::*;
use bytes::Bytes;
use http::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the driver may take (it stops itself after 180 s).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(240);

fn chromium() -> PathBuf {
    std::env::var_os("HMS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails, saying how to install it, when anything the driver needs is missing.
fn require_browser_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the console test needs Node.js (node 20 or later on PATH): apt-get install -y nodejs npm, \
         then npm ci --prefix tests/console"
    );
    let playwright = root().join("tests/console/node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "the console test needs its npm packages ({} is missing): run `npm ci --prefix tests/console`",
        playwright.display()
    );
    assert!(
        chromium().is_file(),
        "the console test needs Chromium at {}: run `apt-get install -y chromium` (or set HMS_CHROMIUM)",
        chromium().display()
    );
}

#[test]
fn the_console_signs_in_rolls_back_follows_a_trace_and_manages_keys_in_chromium() {
    require_browser_tools();
    let host = Host::start(&seed_components());
    // A second identity version, so there is one to roll back to.
    let confirmed = std::fs::read(component("identity_confirmed")).unwrap();
    let r = block_on(host.admin().send_bytes(
        Method::POST,
        "/_hms/services/identity-service/versions",
        Bytes::from(confirmed),
        &[("content-type", "application/wasm")],
    ))
    .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    // A few requests of the seed flow, so the log has traces to follow.
    for _ in 0..3 {
        let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["report"], "ID C12345 is confirmed");
    }

    let artifacts = temp_dir("console");
    let screenshot = if std::env::var_os("HMS_UPDATE_SCREENSHOT").is_some() {
        root().join("docs/console.png")
    } else {
        artifacts.join("console.png")
    };
    let token = std::fs::read_to_string(host.data_dir.join("admin.token")).unwrap();
    let stdout = artifacts.join("driver.stdout");
    let stderr = artifacts.join("driver.stderr");
    let started = Instant::now();
    let mut driver = Command::new("node")
        .arg(root().join("tests/console/console.mjs"))
        .current_dir(root())
        .env("HMS_URL", host.url())
        .env("HMS_ADMIN_TOKEN", token.trim())
        .env("HMS_SCREENSHOT", &screenshot)
        .env("HMS_ARTIFACTS", &artifacts)
        .env("HMS_CHROMIUM", chromium())
        .env("HMS_UPLOAD", component("identity_quiet"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start node");
    let status = loop {
        if let Some(status) = driver.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > DRIVER_TIMEOUT {
            let _ = driver.kill();
            let _ = driver.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "--- console.mjs stdout\n{}--- console.mjs stderr\n{}",
        std::fs::read_to_string(&stdout).unwrap_or_default(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    match status {
        None => panic!("the console driver ran longer than {DRIVER_TIMEOUT:?}\n{output}"),
        Some(status) => assert!(
            status.success(),
            "the console driver failed ({status}); artifacts in {}\n{output}",
            artifacts.display()
        ),
    }
    assert!(
        output.contains("all ") && output.contains(" steps passed"),
        "{output}"
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    // What the console did is what the host now says.
    let first = std::fs::read(component("identity")).unwrap();
    let first = format!("sha256:{}", hex::encode(Sha256::digest(&first)));
    let versions = block_on(host.admin().versions("identity-service")).unwrap();
    let active: Vec<_> = versions.versions.iter().filter(|v| v.active).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].version, first,
        "the console rolled back to the first version"
    );
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.body["report"], "ID C12345 is verified");
}
