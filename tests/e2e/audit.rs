//! Audit you can prove: signed checkpoints, `audit export` and offline
//! `audit verify` (every kind of tampering named by its first bad seq), a
//! cluster's bundle verified as a whole, and a host that cannot write its
//! log refusing work (503 `audit_unavailable`, health `degraded`) until it
//! can again, without losing an answered request's events.

use crate::cluster::{cluster_flags, fresh_database};
use crate::common::*;
use http::Method;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The trace ids of the requests answered 200, and the count of each
/// status seen.
type Seen = (Vec<String>, HashMap<u16, usize>);

/// Seed requests from `clients` concurrent clients until `stop` is set.
fn load(host: &Host, clients: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Seen> {
    let client = host.client();
    std::thread::spawn(move || {
        let answered: Arc<Mutex<Seen>> = Arc::default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (client, answered, stop) = (client.clone(), answered.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let r = client
                            .send(
                                Method::POST,
                                "/reports/identity-check",
                                Some(&json!({"id": format!("C{c}-{i}")})),
                                &[],
                            )
                            .await
                            .unwrap();
                        {
                            let mut seen = answered.lock().unwrap();
                            *seen.1.entry(r.status.as_u16()).or_default() += 1;
                            if r.status == 200 {
                                seen.0
                                    .push(r.headers["x-trace-id"].to_str().unwrap().to_string());
                            }
                        }
                        if r.status != 200 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        i += 1;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let seen = answered.lock().unwrap();
        (seen.0.clone(), seen.1.clone())
    })
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `audit export` of `host` into a new file.
fn export(host: &Host, dir: &Path, name: &str) -> PathBuf {
    let file = dir.join(name);
    let out = host.cli(&["audit", "export", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    file
}

/// The host's JWKS, saved as the file `audit verify --keys` reads.
fn save_jwks(host: &Host, dir: &Path) -> PathBuf {
    let jwks = block_on(host.client().call(Method::GET, "/_hms/auth/jwks", None)).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    file
}

fn verify(bundle: &Path, keys: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["audit", "verify"])
        .arg(bundle)
        .arg("--keys")
        .arg(keys)
        .output()
        .unwrap()
}

fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_lines(file: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(file, text).unwrap();
}

fn is_checkpoint(line: &Value) -> bool {
    line["type"] == "checkpoint"
}

#[test]
fn an_export_taken_under_load_verifies_and_every_kind_of_tampering_is_named() {
    let dir = temp_dir("audit-verify");
    let host = Host::start_with(
        &seed_components(),
        &temp_dir("data"),
        &["--checkpoint-secs", "1"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(&host, 4, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let keys = save_jwks(&host, &dir);
    // Taken while requests keep coming and checkpoints keep being signed.
    let during = export(&host, &dir, "during.jsonl");
    std::thread::sleep(Duration::from_millis(1200));
    stop.store(true, Ordering::Relaxed);
    let (answered, _) = loader.join().unwrap();
    assert!(answered.len() > 20, "too little load: {}", answered.len());
    let out = verify(&during, &keys);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("intact: host "), "{}", text(&out));
    assert!(
        lines(&during).iter().any(is_checkpoint),
        "no checkpoint after 1.5 s at --checkpoint-secs 1"
    );

    // After a second checkpoint interval, with the load over.
    std::thread::sleep(Duration::from_millis(1200));
    let bundle = export(&host, &dir, "bundle.jsonl");
    let good = lines(&bundle);
    let out = verify(&bundle, &keys);
    assert!(out.status.success(), "{}", text(&out));
    let checkpoints: Vec<usize> = (0..good.len())
        .filter(|&i| is_checkpoint(&good[i]))
        .collect();
    assert!(checkpoints.len() >= 2, "{} checkpoints", checkpoints.len());
    // Tampering with an event well inside the first and second checkpoint.
    let first = checkpoints[0];
    let k = first + 3;
    assert!(!is_checkpoint(&good[k]) && !is_checkpoint(&good[k + 1]));
    let seq = |line: &Value| line["seq"].as_u64().unwrap();
    let kseq = seq(&good[k]);

    let tampered = dir.join("tampered.jsonl");
    let expect = |lines: &[Value], keys: &Path, bad_seq: u64, word: &str| {
        write_lines(&tampered, lines);
        let out = verify(&tampered, keys);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{word}: {all}");
        assert!(
            all.contains(&format!("first bad seq {bad_seq} ")),
            "{word}: expected seq {bad_seq}: {all}"
        );
        assert!(all.contains(word), "expected {word:?}: {all}");
    };

    let mut changed = good.clone();
    changed[k]["message"] = json!("Verified ID C99999");
    expect(&changed, &keys, kseq, "changed");

    let mut deleted = good.clone();
    deleted.remove(k);
    expect(&deleted, &keys, kseq, "missing");

    let mut inserted = good.clone();
    inserted.insert(k + 1, good[k].clone());
    expect(&inserted, &keys, kseq, "inserted");

    let mut reordered = good.clone();
    reordered.swap(k, k + 1);
    expect(&reordered, &keys, kseq, "missing");

    // The chain rewritten from k on is consistent by itself, but not with
    // the checkpoint that covers it.
    let mut rewritten = good.clone();
    rewritten.truncate(checkpoints[1] + 1);
    rewritten[k]["message"] = json!("forged");
    rewrite_hashes(&mut rewritten, k);
    let covering = &good[checkpoints[1]];
    expect(
        &rewritten,
        &keys,
        covering["from_seq"].as_u64().unwrap(),
        "rewritten",
    );

    let mut resigned = good.clone();
    resigned[first]["time_ms"] = json!(good[first]["time_ms"].as_u64().unwrap() + 1);
    expect(
        &resigned,
        &keys,
        good[first]["from_seq"].as_u64().unwrap(),
        "hash does not match",
    );

    let mut forged = good.clone();
    let sig = forged[first]["signature"].as_str().unwrap().to_string();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    forged[first]["signature"] = json!(format!("{flipped}{}", &sig[1..]));
    expect(
        &forged,
        &keys,
        good[first]["from_seq"].as_u64().unwrap(),
        "signature",
    );

    // The first checkpoint removed: the events it covered have none.
    let mut dropped = good.clone();
    dropped.remove(first);
    expect(&dropped, &keys, 1, "removed");

    // Events cut from under a checkpoint.
    let mut cut = good.clone();
    cut.remove(checkpoints[1] - 1);
    let last_covered = good[checkpoints[1]]["to_seq"].as_u64().unwrap();
    expect(&cut, &keys, last_covered, "deleted");

    let no_keys = dir.join("empty-jwks.json");
    std::fs::write(&no_keys, r#"{"keys":[]}"#).unwrap();
    expect(
        &good,
        &no_keys,
        good[first]["from_seq"].as_u64().unwrap(),
        "key file does not have",
    );

    // A part of the log verifies by itself; the running host does too.
    let part = dir.join("part.jsonl");
    let out = host.cli(&[
        "audit",
        "export",
        "--from-seq",
        &kseq.to_string(),
        "--to-seq",
        &(kseq + 20).to_string(),
        "-o",
        part.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = verify(&part, &keys);
    assert!(
        text(&out).contains(&format!("events {kseq}..{} (21)", kseq + 20)),
        "{}",
        text(&out)
    );
    let out = host.cli(&["audit", "verify", "--keys", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("intact"), "{}", text(&out));

    // Bad input is named.
    let out = host.cli(&["audit", "verify", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--keys"), "{}", text(&out));
    let r = block_on(host.admin().send(
        Method::GET,
        "/_hms/audit/export?from_seq=9&to_seq=3",
        None,
        &[],
    ))
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (400, Some("bad_request"))
    );
    let r = block_on(
        host.client()
            .send(Method::GET, "/_hms/audit/export", None, &[]),
    )
    .unwrap();
    assert_eq!(r.status, 401);
}

/// Recomputes the chain hashes of the event lines from `from` on, as
/// someone holding the database could: SHA-256 over the fields the README
/// documents.
fn rewrite_hashes(lines: &mut [Value], from: usize) {
    use sha2::{Digest, Sha256};
    let mut prev = lines[from]["prev_hash"].as_str().unwrap().to_string();
    for line in &mut lines[from..] {
        if is_checkpoint(line) {
            continue;
        }
        let mut h = Sha256::new();
        h.update(hex::decode(&prev).unwrap());
        h.update(line["seq"].as_u64().unwrap().to_be_bytes());
        h.update(line["time_ms"].as_u64().unwrap().to_be_bytes());
        for field in ["service", "level", "message", "trace_id"] {
            let s = line[field].as_str().unwrap();
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        let hash = hex::encode(h.finalize());
        line["prev_hash"] = json!(prev);
        line["hash"] = json!(hash);
        prev = hash;
    }
}

#[test]
fn a_cluster_bundle_of_every_host_verifies_as_a_whole() {
    let url = fresh_database("audit");
    let dir = temp_dir("cluster-audit");
    let start = |id: &str| {
        let mut flags = cluster_flags(&url, id);
        flags.extend(["--checkpoint-secs", "1"]);
        Host::start_with(&seed_components(), &temp_dir("data"), &flags)
    };
    let (h1, h2) = (start("h1"), start("h2"));
    for host in [&h1, &h2] {
        for i in 0..5 {
            let r = host.post("/reports/identity-check", &json!({"id": format!("C{i}")}));
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let keys = save_jwks(&h1, &dir);
    let bundle = export(&h2, &dir, "cluster.jsonl");
    let all = lines(&bundle);
    let hosts: HashSet<&str> = all.iter().filter_map(|l| l["host"].as_str()).collect();
    assert_eq!(hosts, HashSet::from(["h1", "h2"]));
    for id in ["h1", "h2"] {
        assert!(
            all.iter().any(|l| is_checkpoint(l) && l["host"] == id),
            "no checkpoint of {id}"
        );
    }
    let out = verify(&bundle, &keys);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("host h1") && said.contains("host h2"),
        "{said}"
    );
    // One host's checkpoint claimed by the other's chain does not verify.
    let mut swapped = all.clone();
    let i = swapped
        .iter()
        .position(|l| is_checkpoint(l) && l["host"] == "h1")
        .unwrap();
    swapped[i]["host"] = json!("h2");
    let file = dir.join("swapped.jsonl");
    write_lines(&file, &swapped);
    let out = verify(&file, &keys);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn a_host_that_cannot_write_its_log_refuses_work_until_it_can_and_loses_no_answer() {
    let data_dir = temp_dir("disk-full");
    let host = Host::start_with(&seed_components(), &data_dir, &["--checkpoint-secs", "1"]);
    let pid = host.child.id().to_string();
    let prlimit = |limit: &str| {
        let out = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--fsize={limit}")])
            .output()
            .expect("run prlimit (util-linux)");
        assert!(out.status.success(), "{}", text(&out));
    };
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(&host, 4, stop.clone());
    std::thread::sleep(Duration::from_millis(500));

    // The disk is full: no file of the host may grow past 1 byte.
    prlimit("1:unlimited");
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let r = block_on(host.client().send(Method::GET, "/_hms/health", None, &[])).unwrap();
        if r.status == 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "health stayed {:?}", r.body);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health.body["status"], "degraded", "{:?}", health.body);
    assert!(
        health.body["reason"]
            .as_str()
            .unwrap()
            .contains("audit log"),
        "{:?}",
        health.body
    );
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["code"], "audit_unavailable", "{:?}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    // An action the log could not record is not done at all.
    let r = block_on(host.admin().send(
        Method::POST,
        "/_hms/keys",
        Some(&json!({"service": "while-full"})),
        &[],
    ))
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{:?}",
        r.body
    );
    std::thread::sleep(Duration::from_millis(500));

    // Space returns: the host recovers by itself.
    prlimit("unlimited:unlimited");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = block_on(host.client().send(Method::GET, "/_hms/health", None, &[])).unwrap();
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "health stayed {:?}", r.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (answered, statuses) = loader.join().unwrap();
    assert!(statuses.get(&503).is_some_and(|&n| n > 0), "{statuses:?}");
    assert!(answered.len() > 20, "{statuses:?}");
    let keys = block_on(host.admin().list_keys()).unwrap().keys;
    assert!(keys.iter().all(|k| k.service != "while-full"), "{keys:?}");

    // Every request answered 200 has both services' events in the log.
    let missing = answered_without_events(&host, &answered);
    assert!(
        missing.is_empty(),
        "{} of {} answered requests lost events",
        missing.len(),
        answered.len()
    );
    // And the log is still one unbroken, signed chain.
    let out = host.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
}
