//! Core auth and the Core HTTP API: keys, tokens, admin rights, JSON errors.

use crate::common::*;
use http::Method;
use serde_json::{Value, json};

#[test]
fn identity_rejects_missing_and_malformed_authorization_with_401() {
    // Forged, tampered, foreign and expired tokens: see token_attacks.rs.
    let host = Host::start(&[component("identity")]);
    let good = token_for(&host, &new_key(&host, "citizen-portal")).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        verify_with(&host, Some(&format!("Bearer {good}"))).status,
        200
    );

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("not bearer", Some(format!("Basic {good}"))),
        ("malformed", Some("Bearer not-a-jwt".into())),
    ];
    for (what, header) in cases {
        let r = verify_with(&host, header.as_deref());
        assert_eq!(r.status, 401, "{what}: {:?}", r.body);
        assert_eq!(r.body["code"], "unauthorized", "{what}");
    }
}

#[test]
fn keys_created_with_the_cli_get_tokens_until_revoked() {
    let host = Host::start(&[component("identity")]);
    let key = new_key(&host, "tax-office");
    let r = token_for(&host, &key);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["token"].is_string(), "{:?}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");

    // Anyone can check the token offline against the published key.
    let jwks = block_on(host.client().call(Method::GET, "/_hms/auth/jwks", None)).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

    let out = host.cli(&["keys", "list"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    let id = listing.split_whitespace().next().unwrap().to_string();
    assert!(
        listing.contains("tax-office") && listing.contains("active"),
        "{listing}"
    );
    assert!(
        !listing.contains(key.rsplit('_').next().unwrap()),
        "a listing must not show secrets"
    );

    let out = host.cli(&["keys", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = token_for(&host, &key);
    assert_eq!(r.status, 401);
    assert_eq!(r.body["code"], "unauthorized");
    // (That tokens issued from it stop verifying: token_attacks.rs.)
    assert!(
        String::from_utf8(host.cli(&["keys", "list"]).stdout)
            .unwrap()
            .contains("revoked")
    );

    let wrong = token_for(&host, "hms_nonsense");
    assert_eq!(wrong.status, 401);
}

#[test]
fn the_core_api_answers_json_errors() {
    let host = Host::start(&[component("identity")]);
    // Malformed JSON.
    let raw = block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let req = http::Request::post(format!("{}/_hms/auth/token", host.url()))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"{\"api_key\": ",
            )))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice::<Value>(&body).unwrap())
    });
    assert_eq!(raw.0, 400);
    assert_eq!(raw.1["code"], "bad_request");

    // Admin endpoints need the admin credential.
    let r = block_on(host.client().send(Method::GET, "/_hms/keys", None, &[])).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.body["code"], "unauthorized");
    let r = block_on(host.client().with_bearer("hmsadmin_wrong").send(
        Method::GET,
        "/_hms/events",
        None,
        &[],
    ))
    .unwrap();
    assert_eq!(r.status, 401);

    // Unknown Core endpoints and bad parameters.
    let r = block_on(host.client().send(Method::GET, "/_hms/nope", None, &[])).unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = block_on(
        host.admin()
            .send(Method::GET, "/_hms/events?after=minus-one", None, &[]),
    )
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (400, Some("bad_request"))
    );
    let r = block_on(host.admin().send(
        Method::POST,
        "/_hms/keys",
        Some(&json!({"service": "Not Valid"})),
        &[],
    ))
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (400, Some("bad_request"))
    );

    // External services register through the API and are discoverable.
    let entry =
        json!({"name": "legacy-records", "host": "127.0.0.1", "port": 9, "ttl_seconds": 60});
    let r = block_on(
        host.admin()
            .send(Method::POST, "/_hms/services", Some(&entry), &[]),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = block_on(host.admin().send(
        Method::POST,
        "/_hms/services",
        Some(&json!({"name": "identity-service", "host": "x", "port": 1})),
        &[],
    ))
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (409, Some("conflict"))
    );
    let v = block_on(host.client().call(Method::GET, "/_hms/services", None)).unwrap();
    assert!(
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "legacy-records" && s["kind"] == "external")
    );
}

#[test]
fn logs_cli_reads_the_audit_log_by_service_and_trace() {
    let host = Host::start(&seed_components());
    let r = host.post("/reports/identity-check", &json!({"id": "C20002"}));
    assert_eq!(r.status, 200);
    let trace = r.headers["x-trace-id"].to_str().unwrap().to_string();
    let out = host.cli(&["logs", "--service", "identity-service"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Verified ID C20002") && !text.contains("Generated report"),
        "{text}"
    );
    let out = host.cli(&["logs", "--trace", &trace, "--json"]);
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|e| e["trace_id"] == trace.as_str()));
}

#[test]
fn every_documented_route_is_served_and_the_document_is_the_committed_one() {
    let host = Host::start(&seed_components());
    let (parts, body) = block_on(host.client().send_raw(
        Method::GET,
        hms_host::api::paths::OPENAPI,
        bytes::Bytes::new(),
        &[],
    ))
    .unwrap();
    assert_eq!(parts.status, 200);
    let committed = std::fs::read(root().join("docs/openapi.json")).unwrap();
    assert!(
        body == committed,
        "the served document is docs/openapi.json"
    );
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let admin = host.admin();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{name}", "no-such-service")
            .replace("{service}", "no-such-service")
            .replace("{id}", "000000000000");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            // Bodies are empty or invalid on purpose: the route must exist
            // and answer with the API's own shape, not the fallback.
            let r = block_on(admin.send_bytes(method.clone(), &concrete, bytes::Bytes::new(), &[]))
                .unwrap();
            assert_ne!(r.status, 405, "{method} {path}");
            assert_ne!(
                r.body["message"], "no such Core API endpoint",
                "{method} {path} is documented but not served"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 23);

    // A method a documented route does not serve: 405 with `Allow` and the
    // API's error body.
    let r = block_on(admin.send_bytes(Method::DELETE, "/_hms/health", bytes::Bytes::new(), &[]))
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.body["code"], "method_not_allowed", "{:?}", r.body);
    assert_eq!(r.body["message"], "DELETE is not served at /_hms/health");
    let allow = r.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
}

#[test]
fn the_typed_client_reads_every_listing() {
    let host = Host::start(&seed_components());
    let admin = host.admin();
    let health = block_on(admin.health()).unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(health.services, ["identity-service", "report-service"]);
    let services = block_on(admin.services()).unwrap().services;
    assert_eq!(services.len(), 2);
    assert_eq!(services[1].kind, hms_host::api::types::Kind::Component);
    let key = block_on(admin.create_key("typed-client")).unwrap();
    let token = block_on(admin.token(&key.api_key)).unwrap();
    assert_eq!(token.token_type, "Bearer");
    let keys = block_on(admin.list_keys()).unwrap().keys;
    assert!(
        keys.iter()
            .any(|k| k.id == key.id && k.revoked_at.is_none())
    );
    let versions = block_on(admin.versions("identity-service")).unwrap();
    assert!(versions.versions.iter().any(|v| v.active));
    let stats = block_on(admin.stats("identity-service")).unwrap();
    assert_eq!(stats.callers, Some(vec!["report-service".to_string()]));
    assert!(stats.counters.contains_key("requests"));
    let jwks = block_on(admin.jwks()).unwrap();
    assert_eq!(jwks.keys[0].alg, "EdDSA");
    // An error keeps the API's code.
    match block_on(admin.versions("no-such-service")) {
        Err(hms_host::cli::client::ClientError::Api { status, code, .. }) => {
            assert_eq!((status.as_u16(), code.as_str()), (404, "not_found"));
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}

#[test]
fn listings_print_json_on_request() {
    let host = Host::start(&seed_components());
    new_key(&host, "json-listing");
    for args in [
        &["services", "--json"][..],
        &["keys", "list", "--json"],
        &["versions", "identity-service", "--json"],
        &["stats", "identity-service", "--json"],
    ] {
        let out = host.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON: {e}"));
        assert!(v.is_object(), "{args:?}: {v}");
    }
    let out = host.cli(&["logs", "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().count() >= 2);
    for line in text.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert!(e["seq"].is_u64(), "{e}");
    }
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_and_exit_codes_say_what_failed() {
    let host = Host::start(&seed_components());
    // More events than a pipe buffers (64 KiB), so the CLI is still
    // writing when `head` goes away.
    for _ in 0..500 {
        host.post("/reports/identity-check", &json!({"id": "C12345"}));
    }
    // `hms-host logs | head -c 16`: the reader goes away after one line.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["logs", "--url", &host.url(), "--data-dir"])
        .arg(&host.data_dir)
        .env_remove("HMS_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );

    // Refused by the host: 1; unreachable: 3; a bad command line: 2.
    let refused = host.cli(&["versions", "no-such-service"]);
    assert_eq!(refused.status.code(), Some(1));
    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["services", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
    assert_eq!(host.cli(&["no-such-command"]).status.code(), Some(2));
}
