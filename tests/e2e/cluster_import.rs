//! `hms-host cluster import`: a standalone host's stores, API keys,
//! deployments and audit log move into a cluster, the old audit chain
//! anchored in the new log, and the host carries on as a cluster host.

use crate::cluster::{cluster_flags, fresh_database, probe};
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

fn import(data_dir: &Path, url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["cluster", "import", "--cluster", url, "--data-dir"])
        .arg(data_dir)
        .env_remove("HMS_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_standalone_host_moves_into_a_cluster_with_its_data_keys_versions_and_audit_chain() {
    let mut components = seed_components();
    components.push(component("store_probe"));
    let standalone_dir = temp_dir("standalone");
    let host = Host::start_with(&components, &standalone_dir, &["--checkpoint-secs", "1"]);
    let r = probe(
        &host,
        serde_json::json!({"op": "set", "key": "kept", "value": "yes"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let key = block_on(host.admin().create_key("citizen-portal")).unwrap();
    let revoked = block_on(host.admin().create_key("citizen-portal")).unwrap();
    block_on(host.admin().revoke_key(&revoked.id)).unwrap();
    let uploaded = block_on(
        host.admin().deploy(
            "identity-service",
            std::fs::read(component("identity_confirmed"))
                .unwrap()
                .into(),
        ),
    )
    .unwrap()
    .version;
    let r = host.post(
        "/reports/identity-check",
        &serde_json::json!({"id": "C12345"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A signed checkpoint of the standalone chain, to come along.
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let old_events = host.events("limit=1000");
    let old_head = old_events.last().unwrap().clone();
    let admin_token = std::fs::read_to_string(standalone_dir.join("admin.token")).unwrap();
    drop(host);

    let url = fresh_database("import");
    let out = import(&standalone_dir, &url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!("audit log: {} events", old_events.len())),
        "{said}"
    );
    assert!(said.contains("API keys: 2 added"), "{said}");
    assert!(
        said.contains("store of store-probe-service: 1 records"),
        "{said}"
    );
    assert!(said.contains("identity-service"), "{said}");
    // Again: nothing is copied twice.
    let again = import(&standalone_dir, &url);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("audit log: 0 events"),
        "{}",
        text(&again.stdout)
    );

    // The same data directory, now a cluster host under the id it kept, and
    // a new host beside it.
    let host_id = std::fs::read_to_string(standalone_dir.join("host-id")).unwrap();
    let host_id = host_id.trim();
    let h1 = Host::start_with(&components, &standalone_dir, &cluster_flags(&url, host_id));
    let h2 = Host::start_with(&components, &temp_dir("h2"), &cluster_flags(&url, "h2"));
    assert_eq!(
        std::fs::read_to_string(h2.data_dir.join("admin.token")).unwrap(),
        admin_token,
        "the standalone admin credential is the cluster's"
    );
    for h in [&h1, &h2] {
        let r = probe(h, serde_json::json!({"op": "get", "key": "kept"}));
        assert_eq!(r.body["value"], "yes");
        assert_eq!(token_for(h, &key.api_key).status, 200);
        assert_eq!(token_for(h, &revoked.api_key).status, 401);
        let services = block_on(h.admin().services()).unwrap().services;
        let identity = services
            .iter()
            .find(|e| e.name == "identity-service")
            .unwrap();
        assert_eq!(
            identity.version, uploaded,
            "the upload stays the active version"
        );
    }

    // The old chain is in the cluster, anchored, and continued by the host.
    let chain = h2.events(&format!("host={host_id}&limit=1000"));
    assert_eq!(&chain[..old_events.len()], &old_events[..]);
    let anchor = &chain[old_events.len()];
    assert_eq!(anchor["seq"], old_head["seq"].as_u64().unwrap() + 1);
    let message = anchor["message"].as_str().unwrap();
    assert!(
        message.contains("imported the standalone audit log"),
        "{message}"
    );
    assert!(
        message.contains(old_head["hash"].as_str().unwrap()),
        "{message}"
    );
    let seqs: Vec<u64> = chain.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=chain.len() as u64).collect::<Vec<_>>());
    // With its checkpoints: the moved chain still verifies, signed by the
    // key the host kept.
    let out = h2.cli(&["audit", "verify", "--host-id", host_id]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(!said.contains(", 0 checkpoints"), "{said}");

    // Another standalone log under the same host id is refused.
    let other_dir = temp_dir("other");
    let other = Host::start_with(&[component("hello")], &other_dir, &[]);
    // An action is answered once its audit event is durable.
    block_on(other.admin().create_key("citizen-portal")).unwrap();
    drop(other);
    std::fs::write(other_dir.join("host-id"), format!("{host_id}\n")).unwrap();
    let out = import(&other_dir, &url);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already has an audit chain"),
        "{}",
        text(&out.stderr)
    );
}
