//! Deployments shared by the hosts of a cluster: a deploy on any host
//! reaches every host, versions and rollback are cluster-wide, a host that
//! refuses a version says why (and `deploy --wait` names it), and a host
//! restarting with the files it had never rolls the cluster back.

use crate::cluster::{cluster_flags, fresh_database};
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The version of `service` that `host` serves now.
fn serving(host: &Host, service: &str) -> Option<String> {
    block_on(host.admin().services())
        .unwrap()
        .services
        .into_iter()
        .find(|e| e.name == service)
        .map(|e| e.version)
}

/// Waits until `host` serves `version` of `service`.
fn await_serving(host: &Host, service: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while serving(host, service).as_deref() != Some(version) {
        assert!(
            Instant::now() < deadline,
            "{service} {version} never reached {}",
            host.url()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `hms-host ARGS --url HOST` (a client command against `host`).
fn cli(host: &Host, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(args)
        .args(["--url", &host.url(), "--data-dir"])
        .arg(&host.data_dir)
        .env_remove("HMS_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn start(url: &str, id: &str, data_dir: &Path, components: &[std::path::PathBuf]) -> Host {
    Host::start_with(components, data_dir, &cluster_flags(url, id))
}

#[test]
fn a_deploy_on_one_host_reaches_every_host_and_rollback_is_cluster_wide() {
    let url = fresh_database("deploys");
    let hosts: Vec<Host> = ["h1", "h2", "h3"]
        .iter()
        .map(|id| start(&url, id, &temp_dir(id), &seed_components()))
        .collect();
    let old = serving(&hosts[0], "identity-service").unwrap();
    for h in &hosts {
        assert_eq!(serving(h, "identity-service").as_ref(), Some(&old));
    }

    // Deployed through h1, waited for: every live host serves it.
    let new_file = component("identity_confirmed");
    let out = cli(
        &hosts[0],
        &[
            "deploy",
            "identity-service",
            new_file.to_str().unwrap(),
            "--wait",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let new = stdout.split_whitespace().nth(1).unwrap().to_string();
    assert_ne!(new, old);
    assert!(stdout.contains("served by h1, h2, h3"), "{stdout}");
    for h in &hosts {
        assert_eq!(serving(h, "identity-service").as_ref(), Some(&new));
    }
    // The seed flow works on every host with the new version.
    for h in &hosts {
        let r = h.post(
            "/reports/identity-check",
            &serde_json::json!({"id": "C12345"}),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    // The versions are the cluster's: listed the same through any host.
    let listed = block_on(hosts[2].admin().versions("identity-service")).unwrap();
    let versions: Vec<(&str, bool)> = listed
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.active))
        .collect();
    assert_eq!(versions, [(old.as_str(), false), (new.as_str(), true)]);

    // A rollback through h3 is the cluster's too.
    let out = cli(&hosts[2], &["rollback", "identity-service", "--wait"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for h in &hosts {
        assert_eq!(serving(h, "identity-service").as_ref(), Some(&old));
    }
}

#[test]
fn a_host_refuses_a_version_whose_bytes_do_not_match_and_deploy_wait_names_it() {
    let url = fresh_database("refuse");
    let dir2 = temp_dir("h2");
    let h1 = start(&url, "h1", &temp_dir("h1"), &seed_components());
    let mut h2 = start(&url, "h2", &dir2, &seed_components());
    let old = serving(&h2, "identity-service").unwrap();

    // h2 is down while a version is deployed, and its stored bytes are
    // then damaged: h2 comes back and cannot check them.
    h2.child.kill().unwrap();
    h2.child.wait().unwrap();
    let new_file = component("identity_confirmed");
    let new = block_on(
        h1.admin()
            .deploy("identity-service", std::fs::read(&new_file).unwrap().into()),
    )
    .unwrap()
    .version;
    block_on(async {
        let target = hms_host::base::postgres::Target::parse(&url).unwrap();
        let pool = hms_host::base::postgres::connect(&target).await.unwrap();
        pool.get()
            .await
            .unwrap()
            .execute(
                "UPDATE deploy_components SET bytes = bytes || '\\x00'::bytea WHERE digest = $1",
                &[&new],
            )
            .await
            .unwrap();
    });
    let h2 = start(&url, "h2", &dir2, &seed_components());
    // It keeps the version it had, and serves.
    assert_eq!(serving(&h2, "identity-service").as_ref(), Some(&old));
    let r = h2.post(
        "/reports/identity-check",
        &serde_json::json!({"id": "C12345"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Deploying it again with --wait names h2 and why.
    let out = cli(
        &h1,
        &[
            "deploy",
            "identity-service",
            new_file.to_str().unwrap(),
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("h2 refused it"), "{stderr}");
    assert!(stderr.contains("digest"), "{stderr}");
    let status = block_on(h1.admin().cluster()).unwrap();
    let h2_info = status.hosts.iter().find(|h| h.id == "h2").unwrap();
    assert_eq!(h2_info.refused["identity-service"].version, new);
    assert!(
        !status
            .hosts
            .iter()
            .find(|h| h.id == "h1")
            .unwrap()
            .refused
            .contains_key("identity-service")
    );
}

#[test]
fn a_restart_with_the_files_it_had_never_rolls_the_cluster_back_but_a_changed_file_deploys() {
    let url = fresh_database("restart");
    let files = temp_dir("files");
    let identity_file = files.join("identity.wasm");
    std::fs::copy(component("identity"), &identity_file).unwrap();
    let components = vec![identity_file.clone(), component("report")];
    let dir1 = temp_dir("h1");
    let mut h1 = start(&url, "h1", &dir1, &components);
    let h2 = start(&url, "h2", &temp_dir("h2"), &seed_components());
    let from_file = serving(&h1, "identity-service").unwrap();

    // The cluster moves on by an upload through h2, then h1 restarts with
    // the file it had: it serves the cluster's version, not its file's.
    let uploaded = block_on(
        h2.admin().deploy(
            "identity-service",
            std::fs::read(component("identity_confirmed"))
                .unwrap()
                .into(),
        ),
    )
    .unwrap()
    .version;
    await_serving(&h1, "identity-service", &uploaded);
    h1.child.kill().unwrap();
    h1.child.wait().unwrap();
    let mut h1 = start(&url, "h1", &dir1, &components);
    assert_eq!(serving(&h1, "identity-service").as_ref(), Some(&uploaded));
    assert_eq!(serving(&h2, "identity-service").as_ref(), Some(&uploaded));

    // The file changed while h1 was down: that is a new deploy, for the
    // whole cluster.
    h1.child.kill().unwrap();
    h1.child.wait().unwrap();
    std::fs::copy(component("identity_quiet"), &identity_file).unwrap();
    let h1 = start(&url, "h1", &dir1, &components);
    let changed = serving(&h1, "identity-service").unwrap();
    assert!(changed != from_file && changed != uploaded);
    await_serving(&h2, "identity-service", &changed);
}
