//! Calls between the hosts of a cluster, and placement, on a real
//! PostgreSQL (`HMS_TEST_PG`): a service placed on another host is called
//! there in the same trace and under its caller policy; only a host call
//! credential signed by a host of the cluster for the receiving host
//! carries a caller identity; a killed host's calls go to another host
//! that serves the service.

use crate::cluster::{cluster_flags, fresh_database, hosts};
use crate::common::*;
use http::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The header a forwarded call carries its host call credential in.
const CREDENTIAL: &str = "x-hms-host-call";

fn start(url: &str, id: &str, components: &[std::path::PathBuf]) -> Host {
    Host::start_with(components, &temp_dir(id), &cluster_flags(url, id))
}

/// `hms-host place ARGS` against `host`: its standard output.
pub(crate) fn place(host: &Host, args: &[&str]) -> String {
    let mut all = vec!["place"];
    all.extend(args);
    let out = host.cli(&all);
    assert!(
        out.status.success(),
        "place {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until each of `all` advertises `service` exactly when its id is
/// in `on` (every host applies a placement at its next heartbeat).
pub(crate) fn wait_until_served_on(service: &str, on: &[&str], all: &[&Host]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = hosts(all[0]);
        let settled = all.iter().all(|host| {
            seen.iter().any(|h| {
                h.url == host.url()
                    && h.alive
                    && h.services.contains_key(service) == on.contains(&h.id.as_str())
            })
        });
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} not served on exactly {on:?}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn seed_check(host: &Host) -> (u16, Value, String) {
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    let trace = r.headers["x-trace-id"].to_str().unwrap().to_string();
    (r.status.as_u16(), r.body, trace)
}

/// `(service, message)` of every event of `trace` that host `id` wrote
/// (the audit log is the cluster's: any host reads every host's events).
fn events_of(reader: &Host, id: &str, trace: &str) -> Vec<(String, String)> {
    reader
        .events(&format!("trace={trace}&host={id}"))
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn forbidden_callers(host: &Host, service: &str) -> u64 {
    block_on(host.admin().stats(service)).unwrap().counters["forbidden_caller"]
}

#[test]
fn a_service_placed_on_another_host_is_called_there_in_one_trace_under_its_caller_policy() {
    let url = fresh_database("calls");
    let mut with_probe = seed_components();
    with_probe.push(component("outbound"));
    let h1 = start(&url, "h1", &with_probe);
    let h2 = start(&url, "h2", &seed_components());

    assert_eq!(
        place(&h1, &["identity-service", "h2"]),
        "identity-service runs on h2\n"
    );
    wait_until_served_on("identity-service", &["h2"], &[&h1, &h2]);
    let listed = block_on(h1.admin().placement()).unwrap().placement;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].service, "identity-service");
    assert_eq!(listed[0].hosts.as_deref(), Some(&["h2".to_string()][..]));

    // h1 no longer serves identity itself: neither its route nor its registry.
    assert_eq!(verify_with(&h1, None).status, 404);
    let names: Vec<String> = block_on(h1.client().services())
        .unwrap()
        .services
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["outbound-service", "report-service"]);

    // The seed flow on h1: report runs on h1, identity on h2, one trace.
    let (status, body, trace) = seed_check(&h1);
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(body, json!({"report": "ID C12345 is verified"}));
    assert_eq!(
        events_of(&h2, "h1", &trace),
        [(
            "report-service".to_string(),
            "Generated report for C12345".to_string()
        )]
    );
    assert_eq!(
        events_of(&h1, "h2", &trace),
        [(
            "identity-service".to_string(),
            "Verified ID C12345".to_string()
        )]
    );
    // The audit log is the cluster's: the whole trace reads together on
    // either host, in time order, each event naming the host that wrote it.
    for reader in [&h1, &h2] {
        let all: Vec<String> = reader
            .events(&format!("trace={trace}"))
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["host"].as_str().unwrap(),
                    e["service"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(all, ["h2 identity-service", "h1 report-service"]);
    }
    crate::cluster::verify_chains(&h2);

    // A service identity does not allow is refused across hosts as it is
    // in-process: by the URL discovery would give (h2's) and by h1's own.
    // The credential header the component sets itself is not what h2 sees
    // (it would be refused as invalid, 401): h1's credential for
    // outbound-service is.
    for target in [h2.url(), h1.url()] {
        let r = h1.post(
            "/outbound/fetch",
            &json!({
                "url": format!("{target}/identity/verify"),
                "method": "POST",
                "headers": [[CREDENTIAL, "forged-by-the-component"], ["content-type", "application/json"]],
                "body": "{\"id\":\"C12345\"}",
            }),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["status"], 403, "{target}: {:?}", r.body);
        let answer: Value = serde_json::from_str(r.body["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            answer["message"], "outbound-service may not call identity-service",
            "{answer:?}"
        );
    }
    assert_eq!(forbidden_callers(&h2, "identity-service"), 2);
    // Only services' paths cross: another host's Core API stays out of reach.
    let r = h1.post(
        "/outbound/fetch",
        &json!({"url": format!("{}/_hms/health", h2.url())}),
    );
    assert_eq!(r.body["status"], 404, "{:?}", r.body);

    // Everywhere again: h1 serves identity itself, in-process.
    assert_eq!(
        place(&h2, &["identity-service", "--everywhere"]),
        "identity-service runs on every host\n"
    );
    wait_until_served_on("identity-service", &["h1", "h2"], &[&h1, &h2]);
    let (status, _, trace) = seed_check(&h1);
    assert_eq!(status, 200);
    let services: Vec<String> = events_of(&h2, "h1", &trace)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(services, ["identity-service", "report-service"]);
    assert!(events_of(&h1, "h2", &trace).is_empty());
    assert!(
        block_on(h1.admin().placement())
            .unwrap()
            .placement
            .is_empty()
    );
}

/// `(kid, PKCS#8 DER)` of the signing key of the host with `data_dir`.
fn signing_key(data_dir: &std::path::Path) -> (String, Vec<u8>) {
    let db = rusqlite::Connection::open(data_dir.join("keys.db")).unwrap();
    db.query_row(
        "SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// A host call credential as a host writes one, signed with `key`.
fn credential(key: &(String, Vec<u8>), service: &str, audience: &str, depth: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.0.clone());
    let claims = json!({
        "iss": "hms-host", "sub": service, "aud": audience, "iat": now, "nbf": now,
        "exp": now + 60, "jti": format!("test-{depth}-{audience}"), "key_id": "host-call", "depth": depth,
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&key.1),
    )
    .unwrap()
}

fn send(host: &Host, path: &str, credential: Option<&str>) -> hms_host::cli::client::JsonResponse {
    let headers: Vec<(&str, &str)> = credential.map(|c| (CREDENTIAL, c)).into_iter().collect();
    block_on(
        host.client()
            .send(Method::POST, path, Some(&json!({"id": "C12345"})), &headers),
    )
    .unwrap()
}

#[test]
fn only_a_credential_a_host_signed_for_the_receiving_host_carries_a_caller_identity() {
    let url = fresh_database("credentials");
    let h1 = start(&url, "h1", &seed_components());
    let h2 = start(&url, "h2", &seed_components());
    let h1_key = signing_key(&h1.data_dir);
    let stranger = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        (
            "stranger".to_string(),
            key.to_pkcs8_der().unwrap().as_bytes().to_vec(),
        )
    };
    // h2 trusts h1's published key once it has read it (every 500 ms).
    let valid = credential(&h1_key, "outbound-service", "h2", 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(&h2, "/identity/verify", Some(&valid)).status == 401 {
        assert!(Instant::now() < deadline, "h2 never trusted h1's key");
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused_before = forbidden_callers(&h2, "identity-service");

    // No credential: an outside client, which identity checks by its token.
    let r = send(&h2, "/identity/verify", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body["message"],
        "missing or malformed Authorization: Bearer header"
    );
    // Credentials that are not a host's for h2: refused before any component runs.
    for (forged, why) in [
        ("junk".to_string(), "malformed token"),
        (
            credential(&stranger, "report-service", "h2", 0),
            "unknown signing key",
        ),
        (
            credential(&h1_key, "report-service", "h1", 0),
            "wrong audience",
        ),
        (
            block_on(h1.admin().create_key("report-service"))
                .map(|k| {
                    token_for(&h1, &k.api_key).body["token"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .unwrap(),
            "malformed token", // an ordinary token: no call depth, audience `hms`
        ),
    ] {
        let r = send(&h2, "/identity/verify", Some(&forged));
        assert_eq!(r.status, 401, "{why}: {:?}", r.body);
        assert_eq!(r.body["code"], "unauthorized");
        assert_eq!(
            r.body["message"],
            format!("invalid host call credential: invalid token: {why}")
        );
    }
    assert_eq!(forbidden_callers(&h2, "identity-service"), refused_before);

    // A valid one: the caller is who it names, under identity's policy.
    let r = send(&h2, "/identity/verify", Some(&valid));
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(
        r.body["message"],
        "outbound-service may not call identity-service"
    );
    assert_eq!(
        forbidden_callers(&h2, "identity-service"),
        refused_before + 1
    );

    // The depth it carries counts: report at the limit cannot call on.
    let r = send(
        &h2,
        "/reports/identity-check",
        Some(&credential(&h1_key, "hello", "h2", 0)),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = send(
        &h2,
        "/reports/identity-check",
        Some(&credential(&h1_key, "hello", "h2", 15)),
    );
    assert_eq!(r.status, 502, "{:?}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("LoopDetected"),
        "{:?}",
        r.body
    );
}

#[test]
fn calls_keep_succeeding_when_a_host_serving_the_callee_is_killed() {
    let url = fresh_database("failover");
    let h1 = start(&url, "h1", &seed_components());
    let mut h2 = start(&url, "h2", &seed_components());
    let h3 = start(&url, "h3", &seed_components());
    place(&h1, &["identity-service", "h2,h3"]);
    wait_until_served_on("identity-service", &["h2", "h3"], &[&h1, &h2, &h3]);

    // The calls take turns between the hosts that serve identity.
    let mut on = [0, 0];
    for _ in 0..6 {
        let (status, body, trace) = seed_check(&h1);
        assert_eq!(status, 200, "{body:?}");
        for (i, id) in ["h2", "h3"].iter().enumerate() {
            on[i] += events_of(&h1, id, &trace).len();
        }
    }
    assert_eq!(on, [3, 3]);

    h2.child.kill().unwrap(); // SIGKILL: its lease runs on for a while
    h2.child.wait().unwrap();
    // While h1 still counts h2 as alive, every other call is sent there
    // first: the failed connect is retried on h3.
    for _ in 0..20 {
        let (status, body, trace) = seed_check(&h1);
        assert_eq!(status, 200, "{body:?}");
        assert_eq!(body, json!({"report": "ID C12345 is verified"}));
        assert_eq!(events_of(&h1, "h3", &trace).len(), 1, "served on h3");
    }
    // And once h2's lease has run out, discovery does not offer it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hosts(&h1).iter().any(|h| h.id == "h2" && h.alive) {
        assert!(Instant::now() < deadline, "h2 stays alive");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body, _) = seed_check(&h1);
    assert_eq!(status, 200, "{body:?}");
}

#[test]
fn placement_names_hosts_that_joined_and_is_for_clusters_only() {
    let url = fresh_database("placement");
    let h1 = start(&url, "h1", &[component("hello")]);
    let admin = h1.admin();
    for (hosts, expected) in [
        (
            json!(["h1", "h9"]),
            "no host with id \"h9\" has joined this cluster",
        ),
        (json!([]), "a placement of hello names at least one host"),
    ] {
        let r = block_on(admin.send(
            Method::PUT,
            &hms_host::api::paths::placement("hello"),
            Some(&json!({ "hosts": hosts })),
            &[],
        ))
        .unwrap();
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.body["code"], "bad_request");
        assert!(
            r.body["message"].as_str().unwrap().starts_with(expected),
            "{:?}",
            r.body
        );
    }
    let out = h1.cli(&["place", "hello", "h9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"h9\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(block_on(admin.placement()).unwrap().placement.is_empty());
    // A service placed on its only host is still served there.
    place(&h1, &["hello", "h1"]);
    let r = block_on(h1.client().send(Method::GET, "/hello/", None, &[])).unwrap();
    assert_eq!(r.status, 200);

    let alone = Host::start(&[component("hello")]);
    let r = block_on(alone.admin().send(
        Method::PUT,
        &hms_host::api::paths::placement("hello"),
        Some(&json!({"hosts": ["h1"]})),
        &[],
    ))
    .unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        block_on(alone.admin().placement())
            .unwrap()
            .placement
            .is_empty()
    );
}
