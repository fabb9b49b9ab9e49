//! Shared by the end-to-end tests: builds the guest components once per test
//! run, starts the real `hms-host` binary on an ephemeral port, talks HTTP.

use hms_host::api::paths;
use hms_host::cli::client::{Client, JsonResponse};
use http::Method;
use serde_json::Value;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a built guest component by crate name (e.g. `identity`).
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // The inner build has its own target dir, so it never waits on the
        // outer cargo's lock; cargo itself makes it a no-op when up to date.
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root().join("components/Cargo.toml"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .status()
            .expect("run cargo to build the guest components");
        assert!(status.success(), "building the guest components failed");
        root().join("components/target/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A fresh, empty directory under the target dir (kept for post-mortems).
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `hms-host run`, killed on drop.
pub struct Host {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl Host {
    /// Starts the host with `components` and a new data directory; waits
    /// until health says every component is deployed.
    pub fn start(components: &[PathBuf]) -> Host {
        Host::start_with(components, &temp_dir("data"), &[])
    }

    /// Starts the host on `data_dir` with extra `run` flags.
    pub fn start_with(components: &[PathBuf], data_dir: &Path, flags: &[&str]) -> Host {
        Host::launch(components, data_dir, flags, "warn", None)
    }

    /// Like [`Host::start_with`], logging at `HMS_LOG=log_filter` and
    /// capturing everything the host writes to `output` (stdout, then stderr).
    pub fn start_capturing(
        components: &[PathBuf],
        data_dir: &Path,
        log_filter: &str,
        output: &Path,
    ) -> Host {
        Host::launch(components, data_dir, &[], log_filter, Some(output))
    }

    fn launch(
        components: &[PathBuf],
        data_dir: &Path,
        flags: &[&str],
        log_filter: &str,
        output: Option<&Path>,
    ) -> Host {
        let (stdout_file, stderr) = match output {
            Some(path) => {
                let stderr = std::fs::File::create(path.with_extension("stderr")).unwrap();
                (Some(path.with_extension("stdout")), Stdio::from(stderr))
            }
            None => (None, Stdio::inherit()),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_hms-host"))
            .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .args(components)
            .env_remove("HMS_ADMIN_TOKEN")
            .env("HMS_LOG", log_filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start hms-host");
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        if let Some(path) = stdout_file {
            // Keep the rest of stdout too, until the host exits.
            let mut file = std::fs::File::create(path).unwrap();
            std::io::Write::write_all(&mut file, first.as_bytes()).unwrap();
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut file));
        }
        let addr = first
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("first line should name the address, got {first:?}"));
        let host = Host {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        };
        host.wait_healthy();
        // Like the demo run, a host serving identity knows the demo citizens
        // (C12345 among them); importing again on a restart changes nothing.
        let serves_identity = components.iter().any(|c| {
            c.file_stem()
                .is_some_and(|s| s.to_string_lossy().starts_with("identity"))
        });
        if serves_identity {
            host.import_data("identity-service", &root().join("demo/citizens.jsonl"));
        }
        host
    }

    /// Imports JSON lines into a service's store through the admin API.
    pub fn import_data(&self, service: &str, file: &Path) -> Value {
        let lines = std::fs::read(file).unwrap();
        let path = paths::data(service);
        let r = block_on(
            self.admin()
                .send_bytes(Method::POST, &path, lines.into(), &[]),
        )
        .unwrap();
        assert_eq!(r.status, 200, "importing {}: {:?}", file.display(), r.body);
        r.body
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = block_on(self.client().send(Method::GET, paths::HEALTH, None, &[]))
                && r.status == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "host did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An anonymous client.
    pub fn client(&self) -> Client {
        Client::new(&self.url())
    }

    /// A client presenting the admin credential from the data directory.
    pub fn admin(&self) -> Client {
        let token = std::fs::read_to_string(self.data_dir.join("admin.token")).unwrap();
        self.client().with_bearer(token.trim())
    }

    /// Runs an `hms-host` client command against this host.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_hms-host"))
            .args(args)
            .args(["--url", &self.url(), "--data-dir"])
            .arg(&self.data_dir)
            .env_remove("HMS_ADMIN_TOKEN")
            .output()
            .unwrap()
    }

    /// POSTs JSON and returns the response.
    pub fn post(&self, path: &str, body: &Value) -> JsonResponse {
        block_on(self.client().send(Method::POST, path, Some(body), &[])).unwrap()
    }

    /// Audit events matching `query` (e.g. `trace=...`), via the Core API.
    pub fn events(&self, query: &str) -> Vec<Value> {
        let v = block_on(self.admin().call(
            Method::GET,
            &format!("{}?{query}", paths::EVENTS),
            None,
        ))
        .unwrap();
        v["events"].as_array().unwrap().clone()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a future to completion on a private runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `POST /_hms/auth/token` with `api_key`.
pub fn token_for(host: &Host, api_key: &str) -> JsonResponse {
    block_on(host.client().send(
        Method::POST,
        paths::TOKEN,
        Some(&json!({"api_key": api_key})),
        &[],
    ))
    .unwrap()
}

/// `POST /identity/verify` for `C12345` with an optional `Authorization`.
pub fn verify_with(host: &Host, authorization: Option<&str>) -> JsonResponse {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    block_on(host.client().send(
        Method::POST,
        "/identity/verify",
        Some(&json!({"id": "C12345"})),
        &headers,
    ))
    .unwrap()
}

/// A new API key for `service`, created with the CLI.
pub fn new_key(host: &Host, service: &str) -> String {
    let out = host.cli(&["keys", "create", service]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The two example services.
pub fn seed_components() -> Vec<PathBuf> {
    vec![component("identity"), component("report")]
}

/// Of the seed requests whose trace ids are `answered`, those that do not
/// have events of both identity-service and report-service in `host`'s log.
pub fn answered_without_events(host: &Host, answered: &[String]) -> Vec<String> {
    let mut per_trace: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    let mut after = 0;
    loop {
        let page = host.events(&format!("after={after}&limit=1000"));
        let Some(last) = page.last() else { break };
        after = last["seq"].as_u64().unwrap();
        for e in &page {
            per_trace
                .entry(e["trace_id"].as_str().unwrap().to_string())
                .or_default()
                .insert(e["service"].as_str().unwrap().to_string());
        }
    }
    answered
        .iter()
        .filter(|t| {
            per_trace
                .get(*t)
                .is_none_or(|s| !(s.contains("identity-service") && s.contains("report-service")))
        })
        .cloned()
        .collect()
}

/// A seed request whose body is one byte over report-service's default
/// limit (1 MiB): the host answers 413 in the component's place.
pub fn post_over_body_limit(host: &Host) -> JsonResponse {
    let big = bytes::Bytes::from(vec![b' '; (1 << 20) + 1]);
    block_on(host.client().send_bytes(
        Method::POST,
        "/reports/identity-check",
        big,
        &[("content-type", "application/json")],
    ))
    .unwrap()
}
