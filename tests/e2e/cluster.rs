//! Cluster membership on a real PostgreSQL (`HMS_TEST_PG`, started by
//! `scripts/test.sh`): hosts see each other, a killed host leaves discovery
//! within its lease and a heartbeat, an id is held by one live host at a
//! time, and bad cluster settings stop the start with a message.

use crate::common::*;
use hms_host::cli::client::JsonResponse;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub(crate) const HEARTBEAT_MS: u64 = 200;
pub(crate) const LEASE_MS: u64 = 1000;

/// The tests' PostgreSQL server.
pub(crate) fn server_url() -> String {
    std::env::var("HMS_TEST_PG").expect(
        "the cluster tests need PostgreSQL: run scripts/test.sh, or \
         `source scripts/pg.sh; pg_start` first (sets HMS_TEST_PG)",
    )
}

/// A new, empty database on the tests' server, as a `--cluster` URL.
pub(crate) fn fresh_database(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    block_on(hms_host::base::postgres::create_database(
        &server_url(),
        &name,
    ))
    .expect("create a database on HMS_TEST_PG")
}

pub(crate) fn cluster_flags<'a>(url: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "--cluster",
        url,
        "--host-id",
        id,
        "--heartbeat-ms",
        "200",
        "--lease-ms",
        "1000",
    ]
}

pub(crate) fn hosts(host: &Host) -> Vec<hms_host::api::types::HostInfo> {
    block_on(host.admin().cluster()).unwrap().hosts
}

/// `hms-host run ARGS` that must fail: its output, once it has exited.
fn run_failing(args: &[&str], data_dir: &std::path::Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .arg(component("hello"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("hms-host run {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn three_hosts_see_each_other_and_a_killed_host_leaves_discovery() {
    let url = fresh_database("members");
    let start = |id: &str| {
        Host::start_with(
            &[component("hello")],
            &temp_dir(id),
            &cluster_flags(&url, id),
        )
    };
    let h1 = start("h1");
    let mut h2 = start("h2");
    let h3 = start("h3");
    // Every host sees all three, with what each serves, after a heartbeat.
    std::thread::sleep(Duration::from_millis(2 * HEARTBEAT_MS));
    for host in [&h1, &h2, &h3] {
        let seen = hosts(host);
        let ids: Vec<&str> = seen.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["h1", "h2", "h3"]);
        for h in &seen {
            assert!(h.alive, "{h:?}");
            assert!(h.services["hello"].starts_with("sha256:"), "{h:?}");
            assert!(h.last_heartbeat_ms_ago < LEASE_MS, "{h:?}");
        }
    }
    assert_eq!(hosts(&h1)[1].url, h2.url());

    h2.child.kill().unwrap(); // SIGKILL: no chance to leave
    h2.child.wait().unwrap();
    let killed = Instant::now();
    loop {
        let seen = hosts(&h1);
        let h = seen
            .iter()
            .find(|h| h.id == "h2")
            .expect("an expired host stays listed");
        if !h.alive {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_millis(LEASE_MS + 2 * HEARTBEAT_MS + 2000),
            "h2 still alive {:?} after kill -9",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The others are untouched and keep serving.
    let seen = hosts(&h3);
    assert!(seen.iter().filter(|h| h.id != "h2").all(|h| h.alive));
    let r = block_on(h1.client().send(http::Method::GET, "/hello/", None, &[])).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn a_host_id_is_held_by_one_live_host_and_a_restart_takes_it_back() {
    let url = fresh_database("ids");
    let data = temp_dir("id-holder");
    let mut holder = Host::start_with(&[component("hello")], &data, &cluster_flags(&url, "h1"));

    let out = run_failing(&cluster_flags(&url, "h1"), &temp_dir("id-thief"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"h1\" is held by a live host"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "refused before the listening line"
    );

    // kill -9, then the same host restarts at once: it waits for its old
    // lease to run out and serves again.
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let back = Host::start_with(&[component("hello")], &data, &cluster_flags(&url, "h1"));
    std::thread::sleep(Duration::from_millis(2 * HEARTBEAT_MS));
    let seen = hosts(&back);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].alive);
    assert_eq!(seen[0].url, back.url());
}

#[test]
fn bad_cluster_settings_stop_the_start_with_a_message() {
    let data = temp_dir("bad-cluster");
    for (args, expected) in [
        (
            vec!["--cluster", "mysql://hms@127.0.0.1/hms"],
            "--cluster \"mysql://hms@127.0.0.1/hms\": expected postgres://USER@HOST:PORT/DB",
        ),
        (
            vec!["--cluster", "postgres://hms:secret@127.0.0.1:1/hms"],
            "cannot reach the cluster database postgres://hms:***@127.0.0.1:1/hms",
        ),
        (
            vec!["--host-id", "h1"],
            "--host-id and --advertise-url are for cluster mode",
        ),
        (
            vec![
                "--cluster",
                "postgres://hms@127.0.0.1:1/hms",
                "--host-id",
                "Bad_Id",
            ],
            "--host-id: \"Bad_Id\"",
        ),
    ] {
        let out = run_failing(&args, &data);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("secret"), "{stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening"),
            "{args:?}"
        );
    }
}

#[test]
fn a_schema_newer_than_this_host_knows_is_refused_naming_both_versions() {
    let url = fresh_database("schema");
    let host = Host::start_with(
        &[component("hello")],
        &temp_dir("schema"),
        &cluster_flags(&url, "h1"),
    );
    drop(host);
    block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(
                "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
                 VALUES (999, 'from_the_future', 'now', '0')",
            )
            .await
            .unwrap();
    });
    let out = run_failing(&cluster_flags(&url, "h2"), &temp_dir("schema-2"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The newest migration this build carries, V<N>__*.sql.
    let known = std::fs::read_dir(root().join("host/migrations"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('V')?
                .split_once("__")?
                .0
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap();
    assert!(
        stderr.contains(&format!(
            "has schema version 999, newer than this hms-host knows ({known})"
        )),
        "{stderr}"
    );
}

#[test]
fn a_standalone_host_lists_itself() {
    let host = Host::start(&[component("hello")]);
    let seen = hosts(&host);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].alive && seen[0].id.starts_with("host-"));
    assert_eq!(seen[0].url, host.url());
    let again = std::fs::read_to_string(host.data_dir.join("host-id")).unwrap();
    assert_eq!(again.trim(), seen[0].id, "the generated id is kept");
}

#[test]
fn every_services_store_is_shared_by_the_hosts_atomically() {
    let url = fresh_database("stores");
    let hosts: Vec<Host> = ["h1", "h2", "h3"]
        .iter()
        .map(|id| {
            Host::start_with(
                &[component("store_probe")],
                &temp_dir(id),
                &cluster_flags(&url, id),
            )
        })
        .collect();
    let op = |host: &Host, body: serde_json::Value| {
        let r = host.post("/store-probe/op", &body);
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body
    };

    // 3 hosts x 4 clients x 25 increments of one key, at once.
    const CLIENTS: usize = 4;
    const EACH: usize = 25;
    std::thread::scope(|s| {
        for host in &hosts {
            for _ in 0..CLIENTS {
                s.spawn(|| {
                    for _ in 0..EACH {
                        op(
                            host,
                            serde_json::json!({"op": "increment", "key": "n", "delta": 1}),
                        );
                    }
                });
            }
        }
    });
    let total = (hosts.len() * CLIENTS * EACH).to_string();
    for host in &hosts {
        let v = op(host, serde_json::json!({"op": "get", "key": "n"}));
        assert_eq!(
            v["value"],
            total.as_str(),
            "every host sees every increment"
        );
    }

    // Of many concurrent compare-and-swaps from absent, exactly one wins.
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (i, host) in hosts.iter().enumerate() {
            for j in 0..4 {
                let wins = &wins;
                s.spawn(move || {
                    let v = op(
                        host,
                        serde_json::json!({"op": "cas", "key": "leader", "expected": null, "value": format!("{i}-{j}")}),
                    );
                    if v["swapped"] == true {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }
    });
    assert_eq!(wins.load(Ordering::Relaxed), 1);
    // Each host wrote its own audit chain; all of them verify.
    let chains = verify_chains(&hosts[1]);
    assert_eq!(chains.keys().collect::<Vec<_>>(), ["h1", "h2", "h3"]);

    // Written on one host, listed in byte order on another.
    for key in ["b", "a", "B"] {
        op(
            &hosts[0],
            serde_json::json!({"op": "set", "key": format!("k/{key}"), "value": "1"}),
        );
    }
    let page = op(
        &hosts[2],
        serde_json::json!({"op": "list", "prefix": "k/", "limit": 2}),
    );
    assert_eq!(page["keys"], serde_json::json!(["k/B", "k/a"]));
    let rest = op(
        &hosts[1],
        serde_json::json!({"op": "list", "prefix": "k/", "cursor": page["next"], "limit": 2}),
    );
    assert_eq!(rest["keys"], serde_json::json!(["k/b"]));
}

/// A PostgreSQL of one test's own (`scripts/pg.sh`), to crash and restart
/// without disturbing the others; removed on drop.
struct OwnPostgres {
    url: String,
    dir: String,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let out = Command::new(root().join("scripts/pg.sh"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        OwnPostgres {
            url: lines.next().unwrap().to_string(),
            dir: lines.next().unwrap().to_string(),
        }
    }

    fn pg(&self, what: &str) {
        let out = Command::new(root().join("scripts/pg.sh"))
            .args([what, &self.dir])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg.sh {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/pg.sh"))
            .args(["stop", &self.dir])
            .output();
    }
}

pub(crate) fn probe(host: &Host, body: serde_json::Value) -> JsonResponse {
    block_on(
        host.client()
            .send(http::Method::POST, "/store-probe/op", Some(&body), &[]),
    )
    .unwrap()
}

#[test]
fn acknowledged_store_writes_and_audit_events_survive_kill_9_of_postgres() {
    let pg = OwnPostgres::start();
    let mut components = seed_components();
    components.push(component("store_probe"));
    let host = Host::start_with(
        &components,
        &temp_dir("pg-crash"),
        &cluster_flags(&pg.url, "h1"),
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Keys whose set was acknowledged; traces of acknowledged reports.
    let acknowledged = std::sync::Mutex::new((Vec::new(), Vec::new()));
    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for client in 0..4 {
            let (host, stop, acknowledged, refused) = (&host, &stop, &acknowledged, &refused);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k-{client}-{i}");
                    let r = if client % 2 == 0 {
                        probe(
                            host,
                            serde_json::json!({"op": "set", "key": key, "value": "v"}),
                        )
                    } else {
                        host.post(
                            "/reports/identity-check",
                            &serde_json::json!({"id": "C12345"}),
                        )
                    };
                    if r.status == 200 {
                        let mut done = acknowledged.lock().unwrap();
                        match r.headers.get("x-trace-id") {
                            Some(trace) if client % 2 == 1 => {
                                done.1.push(trace.to_str().unwrap().to_string())
                            }
                            _ => done.0.push(key),
                        }
                    } else {
                        // Never a false "done": the store's error, or the
                        // host's refusal to serve what it cannot audit.
                        let refusal = r.body.to_string();
                        let why = match r.status.as_u16() {
                            409 => r.body["kind"] == "unavailable",
                            503 => r.body["code"] == "audit_unavailable",
                            // report: identity's store was unavailable.
                            502 => refusal.contains("store_unavailable"),
                            _ => false,
                        };
                        assert!(why, "{}: {refusal}", r.status);
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_millis(700));
        pg.pg("kill");
        std::thread::sleep(Duration::from_millis(700));
        pg.pg("restart");
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::Relaxed);
    });
    let (keys, traces) = acknowledged.into_inner().unwrap();
    assert!(keys.len() > 20, "writes went through: {}", keys.len());
    assert!(traces.len() > 5, "reports went through: {}", traces.len());
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "some requests met the crash"
    );
    for key in &keys {
        let r = probe(&host, serde_json::json!({"op": "get", "key": key}));
        assert_eq!(
            r.body["value"], "v",
            "acknowledged write {key} is there after the crash"
        );
    }
    // Audit-before-response held in PostgreSQL: every answered report's
    // events were committed before it was answered.
    for trace in &traces {
        let services: Vec<String> = host
            .events(&format!("trace={trace}"))
            .iter()
            .map(|e| e["service"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            services,
            ["identity-service", "report-service"],
            "events of the answered request {trace}"
        );
    }
    // The chain held through the crash: no gap, every hash recomputes.
    verify_chains(&host);
}

#[test]
fn with_postgres_down_nobody_is_evicted_and_serving_resumes_when_it_is_back() {
    let pg = OwnPostgres::start();
    let start = |id: &str| {
        Host::start_with(
            &[component("store_probe"), component("hello")],
            &temp_dir(id),
            &cluster_flags(&pg.url, id),
        )
    };
    let (h1, h2) = (start("h1"), start("h2"));
    assert_eq!(
        probe(
            &h1,
            serde_json::json!({"op": "set", "key": "k", "value": "1"})
        )
        .status,
        200
    );

    pg.pg("kill");
    // Longer than a lease and than the 2 s a host trusts its view of the
    // database: nobody can judge, so nobody is declared dead.
    std::thread::sleep(Duration::from_millis(LEASE_MS + 1500));
    let r = probe(&h2, serde_json::json!({"op": "get", "key": "k"}));
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{:?}",
        r.body
    );
    let status =
        block_on(
            h1.admin()
                .send(http::Method::GET, hms_host::api::paths::CLUSTER, None, &[]),
        )
        .unwrap();
    assert_eq!(status.status, 503, "{:?}", status.body);
    assert_eq!(status.body["code"], "unavailable");
    // A host that could not audit what it serves serves nothing, and says
    // why in its health.
    let health = block_on(
        h2.client()
            .send(http::Method::GET, "/_hms/health", None, &[]),
    )
    .unwrap();
    assert_eq!(
        (health.status.as_u16(), health.body["status"].as_str()),
        (503, Some("degraded")),
        "{:?}",
        health.body
    );
    assert!(
        health.body["reason"]
            .as_str()
            .unwrap()
            .contains("cluster database"),
        "{:?}",
        health.body
    );
    let hello = block_on(h2.client().send(http::Method::GET, "/hello/", None, &[])).unwrap();
    assert_eq!(
        (hello.status.as_u16(), hello.body["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{:?}",
        hello.body
    );

    pg.pg("restart");
    // No host restarted: both come back alive and the store serves again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = block_on(h1.admin().cluster())
            .map(|s| s.hosts.len() == 2 && s.hosts.iter().all(|h| h.alive))
            .unwrap_or(false);
        // Serving again once the host's view of the database is current.
        let r = probe(&h2, serde_json::json!({"op": "get", "key": "k"}));
        if ok && r.status == 200 {
            assert_eq!(r.body["value"], "1");
            let health = block_on(
                h2.client()
                    .send(http::Method::GET, "/_hms/health", None, &[]),
            )
            .unwrap();
            assert_eq!(health.body["status"], "ok", "{:?}", health.body);
            break;
        }
        assert!(Instant::now() < deadline, "the hosts did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn verify_on(host: &Host, token: &str) -> JsonResponse {
    verify_with(host, Some(&format!("Bearer {token}")))
}

#[test]
fn keys_tokens_revocations_and_the_admin_credential_are_cluster_wide() {
    let url = fresh_database("auth");
    let hosts: Vec<Host> = ["h1", "h2", "h3"]
        .iter()
        .map(|id| Host::start_with(&seed_components(), &temp_dir(id), &cluster_flags(&url, id)))
        .collect();
    // One admin credential: the first host's, written to every data dir.
    let admin = |h: &Host| std::fs::read_to_string(h.data_dir.join("admin.token")).unwrap();
    assert_eq!(admin(&hosts[0]), admin(&hosts[1]));
    assert_eq!(admin(&hosts[0]), admin(&hosts[2]));

    // Every host publishes its signing key; each host's JWKS has them all.
    let jwks = block_on(hosts[2].client().jwks()).unwrap();
    assert!(jwks.keys.len() >= 3, "{jwks:?}");

    // A key made on h1, exchanged on h1, verifies on h2 and h3 once they
    // have read it (every 500 ms).
    let key = block_on(hosts[0].admin().create_key("citizen-portal")).unwrap();
    let token = token_for(&hosts[0], &key.api_key).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let created = Instant::now();
    for host in &hosts[1..] {
        let r = loop {
            let r = verify_on(host, &token);
            if r.status == 200 || created.elapsed() > Duration::from_secs(3) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["status"], "verified");
    }
    // The key itself works on any host too.
    assert_eq!(token_for(&hosts[2], &key.api_key).status, 200);

    // Revoked on h2: within 2 s no host accepts the key or its token.
    block_on(hosts[1].admin().revoke_key(&key.id)).unwrap();
    let revoked = Instant::now();
    for host in [&hosts[0], &hosts[2]] {
        loop {
            if verify_on(host, &token).status == 401 {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(3),
                "revocation did not arrive"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(token_for(host, &key.api_key).status, 401);
    }
    let listed = block_on(hosts[2].admin().list_keys()).unwrap().keys;
    assert!(
        listed
            .iter()
            .any(|k| k.id == key.id && k.revoked_at.is_some())
    );
}

#[test]
fn a_host_cut_off_from_the_database_serves_nothing_and_refuses_api_keys_until_it_is_back() {
    let pg = OwnPostgres::start();
    let host = Host::start_with(
        &seed_components(),
        &temp_dir("fail-closed"),
        &cluster_flags(&pg.url, "h1"),
    );
    let key = block_on(host.admin().create_key("citizen-portal")).unwrap();
    let token = token_for(&host, &key.api_key).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(verify_on(&host, &token).status, 200);

    pg.pg("kill");
    // Past the staleness bound this host cannot know of a revocation (nor
    // audit): it serves nothing, and exchanges no API key.
    std::thread::sleep(Duration::from_millis(2500));
    let r = verify_on(&host, &token);
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{:?}",
        r.body
    );
    let r = token_for(&host, &key.api_key);
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (503, Some("audit_unavailable"))
    );

    pg.pg("restart");
    let deadline = Instant::now() + Duration::from_secs(15);
    while verify_on(&host, &token).status != 200 {
        assert!(
            Instant::now() < deadline,
            "the host did not accept the token again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP proxy between a host and PostgreSQL that the test controls, to
/// cut a host off without root: connections pass, are blackholed (they stay
/// open and nothing flows, as in a network partition) or are reset.
struct Proxy {
    addr: std::net::SocketAddr,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const RESET: u8 = 2;

impl Proxy {
    fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            mode: Default::default(),
            open: Default::default(),
        };
        let (mode, open) = (proxy.mode.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if mode.load(Ordering::Relaxed) == RESET {
                    continue; // dropped at once: the connection is closed
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                open.lock().unwrap().push(client.try_clone().unwrap());
                open.lock().unwrap().push(server.try_clone().unwrap());
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let mode = mode.clone();
                    std::thread::spawn(move || pump(from, to, &mode));
                }
            }
        });
        proxy
    }

    /// `postgres://...@HOST:PORT/DB` with this proxy as HOST:PORT.
    fn url_for(&self, url: &str) -> String {
        let (scheme_user, rest) = url.rsplit_once('@').unwrap();
        let db = rest.split_once('/').unwrap().1;
        format!("{scheme_user}@{}/{db}", self.addr)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
        if mode == RESET {
            for stream in self.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    mode: &std::sync::atomic::AtomicU8,
) {
    use std::io::{Read, Write};
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 16 << 10];
    loop {
        match mode.load(Ordering::Relaxed) {
            BLACKHOLE => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            RESET => break,
            _ => {}
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_host_cut_off_from_postgres_stops_counting_as_alive_and_rejoins_by_itself() {
    let url = fresh_database("partition");
    let server: std::net::SocketAddr = url
        .rsplit_once('@')
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .0
        .parse()
        .unwrap();
    let proxy = Proxy::start(server);
    let via_proxy = proxy.url_for(&url);
    let h1 = Host::start_with(
        &[component("store_probe")],
        &temp_dir("cut-off"),
        &cluster_flags(&via_proxy, "h1"),
    );
    let h2 = Host::start_with(
        &[component("store_probe")],
        &temp_dir("connected"),
        &cluster_flags(&url, "h2"),
    );
    assert_eq!(
        probe(
            &h1,
            serde_json::json!({"op": "set", "key": "k", "value": "1"})
        )
        .status,
        200
    );
    let h1_alive = || {
        block_on(h2.admin().cluster())
            .unwrap()
            .hosts
            .iter()
            .any(|h| h.id == "h1" && h.alive)
    };
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(h1_alive());

    for mode in [BLACKHOLE, RESET] {
        proxy.set(mode);
        // A store call on the cut-off host fails as unavailable in bounded
        // time (it does not hang), and its lease runs out.
        let asked = Instant::now();
        let r = probe(&h1, serde_json::json!({"op": "get", "key": "k"}));
        assert_eq!(
            (r.status.as_u16(), r.body["kind"].as_str()),
            (409, Some("unavailable")),
            "{:?}",
            r.body
        );
        assert!(
            asked.elapsed() < Duration::from_secs(8),
            "{:?}",
            asked.elapsed()
        );
        wait_for("h1 stops counting as alive", &|| !h1_alive());
        // The connected host is not affected.
        assert_eq!(
            probe(&h2, serde_json::json!({"op": "get", "key": "k"})).body["value"],
            "1"
        );

        proxy.set(PASS);
        wait_for("h1 rejoins by itself", &h1_alive);
        wait_for("h1's store serves again", &|| {
            probe(&h1, serde_json::json!({"op": "get", "key": "k"})).body["value"] == "1"
        });
    }
}

#[test]
fn the_audit_log_is_the_clusters_and_one_trace_served_by_two_hosts_reads_together() {
    let url = fresh_database("audit");
    let start =
        |id: &str| Host::start_with(&seed_components(), &temp_dir(id), &cluster_flags(&url, id));
    let (h1, h2) = (start("h1"), start("h2"));
    // One trace, continued by a request to each host.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    for host in [&h1, &h2] {
        let r = block_on(host.client().send(
            http::Method::POST,
            "/reports/identity-check",
            Some(&serde_json::json!({"id": "C12345"})),
            &[("traceparent", &traceparent)],
        ))
        .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let of_trace = |host: &Host| -> Vec<(String, String)> {
        host.events(&format!("trace={trace}"))
            .iter()
            .map(|e| {
                (
                    e["host"].as_str().unwrap().to_string(),
                    e["service"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let expected: Vec<(String, String)> = [
        ("h1", "identity-service"),
        ("h1", "report-service"),
        ("h2", "identity-service"),
        ("h2", "report-service"),
    ]
    .iter()
    .map(|(h, s)| (h.to_string(), s.to_string()))
    .collect();
    assert_eq!(of_trace(&h1), expected);
    assert_eq!(of_trace(&h2), expected);

    // The events live in the database, not on the host that wrote them.
    let (mut h1, h2) = (h1, h2);
    h1.child.kill().unwrap();
    h1.child.wait().unwrap();
    assert_eq!(of_trace(&h2), expected);
    assert_eq!(verify_chains(&h2).keys().collect::<Vec<_>>(), ["h1", "h2"]);

    // `hms-host logs` pages through every host's chain with the cursor.
    let out = Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["logs", "--json", "--url", &h2.url(), "--data-dir"])
        .arg(&h2.data_dir)
        .env_remove("HMS_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut per_host = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for e in &lines {
        per_host
            .entry(e["host"].as_str().unwrap().to_string())
            .or_default()
            .push(e["seq"].as_u64().unwrap());
    }
    assert_eq!(per_host.keys().collect::<Vec<_>>(), ["h1", "h2"]);
    for (host, seqs) in &per_host {
        let all: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, &all, "every event of {host}'s chain once, in order");
    }

    // Paging by one host's seq alone means nothing in a cluster.
    let r = block_on(
        h2.admin()
            .send(http::Method::GET, "/_hms/events?after=3", None, &[]),
    )
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (400, Some("bad_request"))
    );
    let r = block_on(
        h2.admin()
            .send(http::Method::GET, "/_hms/events?cursor=h1:x", None, &[]),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
}

#[test]
fn an_external_service_registered_through_one_host_is_discovered_on_every_host() {
    let url = fresh_database("externals");
    let start = |id: &str| {
        Host::start_with(
            &[component("hello")],
            &temp_dir(id),
            &cluster_flags(&url, id),
        )
    };
    let (h1, h2) = (start("h1"), start("h2"));
    let register = |host: &Host, name: &str, ttl: Option<u64>| {
        let body = serde_json::json!({
            "name": name, "host": "10.20.30.40", "port": 9000, "version": "7", "ttl_seconds": ttl
        });
        block_on(host.admin().send(
            http::Method::POST,
            hms_host::api::paths::SERVICES,
            Some(&body),
            &[],
        ))
        .unwrap()
    };
    let listed_on = |host: &Host| -> Vec<String> {
        block_on(host.client().services())
            .unwrap()
            .services
            .into_iter()
            .filter(|e| e.kind == hms_host::core::registry::Kind::External)
            .map(|e| e.name)
            .collect()
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(register(&h1, "ledger", None).status, 201);
    // Long enough for h2's view (a 200 ms heartbeat) to catch it on a
    // loaded machine; a 1 s TTL could lapse before h2 next read the view.
    assert_eq!(register(&h1, "brief", Some(4)).status, 201);
    until("h2 sees what h1 registered", &|| {
        listed_on(&h2) == ["brief", "ledger"]
    });
    // A TTL lapses cluster-wide, as standalone.
    until("the 4 s registration lapses on h2", &|| {
        listed_on(&h2) == ["ledger"]
    });
    assert_eq!(listed_on(&h1), ["ledger"]);
    // Removed through h2: gone on h1 too.
    let r = block_on(h2.admin().send(
        http::Method::DELETE,
        &format!("{}/ledger", hms_host::api::paths::SERVICES),
        None,
        &[],
    ))
    .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    until("h1 forgets it", &|| listed_on(&h1).is_empty());
}

/// Reads every host's audit chain through `reader` (paging with the
/// cursor) and checks each independently of the host's code: `seq` from 1
/// without gaps, and every hash recomputed from the documented encoding
/// (SHA-256 of the previous hash, seq, time, then service, level, message
/// and trace id, each length-prefixed). Returns the events per host.
pub(crate) fn verify_chains(reader: &Host) -> std::collections::BTreeMap<String, u64> {
    use sha2::{Digest, Sha256};
    let mut chains = std::collections::BTreeMap::<String, ([u8; 32], u64)>::new();
    let mut cursor = String::new();
    loop {
        let page = block_on(reader.admin().call(
            http::Method::GET,
            &format!(
                "{}?limit=1000&cursor={cursor}",
                hms_host::api::paths::EVENTS
            ),
            None,
        ))
        .unwrap();
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        cursor = page["cursor"].as_str().unwrap().to_string();
        for e in events {
            let host = e["host"].as_str().unwrap().to_string();
            let (prev, last) = chains.entry(host.clone()).or_insert(([0; 32], 0));
            let seq = e["seq"].as_u64().unwrap();
            assert_eq!(seq, *last + 1, "{host}'s chain has no gap: {e}");
            let mut h = Sha256::new();
            h.update(*prev);
            h.update(seq.to_be_bytes());
            h.update(e["time_ms"].as_u64().unwrap().to_be_bytes());
            for field in ["service", "level", "message", "trace_id"] {
                let text = e[field].as_str().unwrap();
                h.update((text.len() as u64).to_be_bytes());
                h.update(text.as_bytes());
            }
            let hash: [u8; 32] = h.finalize().into();
            assert_eq!(
                hex::encode(hash),
                e["hash"].as_str().unwrap(),
                "{host} event {seq}"
            );
            (*prev, *last) = (hash, seq);
        }
    }
    chains.into_iter().map(|(host, (_, n))| (host, n)).collect()
}
