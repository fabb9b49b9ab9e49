//! Audit-before-response: once a client has its answer, the request's events
//! survive `kill -9` of the host.

use crate::common::*;
use http::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent clients: enough that many requests share each commit.
const CLIENTS: usize = 16;
/// How long the load runs before the host is killed.
const LOAD_FOR: Duration = Duration::from_millis(2500);

#[test]
fn every_answered_request_has_its_events_after_kill_9() {
    kill_9_under_load(&[]);
}

#[test]
fn with_process_durability_too_answered_requests_keep_their_events_after_kill_9() {
    kill_9_under_load(&["--audit-durability", "process"]);
}

fn kill_9_under_load(flags: &[&str]) {
    let data_dir = temp_dir("kill9");
    let mut host = Host::start_with(&seed_components(), &data_dir, flags);
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = host.client();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = {
        let answered = answered.clone();
        rt.spawn(async move {
            let mut tasks = Vec::new();
            for c in 0..CLIENTS {
                let (client, answered) = (client.clone(), answered.clone());
                tasks.push(tokio::spawn(async move {
                    let mut i = 0;
                    // Runs until the host dies under it.
                    while let Ok(r) = client
                        .send(
                            Method::POST,
                            "/reports/identity-check",
                            Some(&json!({"id": format!("C{c}-{i}")})),
                            &[],
                        )
                        .await
                    {
                        if r.status == 200 {
                            answered
                                .lock()
                                .unwrap()
                                .push(r.headers["x-trace-id"].to_str().unwrap().to_string());
                        }
                        i += 1;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    let started = Instant::now();
    while started.elapsed() < LOAD_FOR {
        std::thread::sleep(Duration::from_millis(50));
    }
    host.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    host.child.wait().unwrap();
    rt.block_on(load).unwrap();
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 20,
        "too little load to mean anything: {}",
        answered.len()
    );
    drop(host);

    let host = Host::start_with(&seed_components(), &data_dir, flags);
    let missing = answered_without_events(&host, &answered);
    assert!(
        missing.is_empty(),
        "{} of {} answered requests lost events, e.g. {:?}",
        missing.len(),
        answered.len(),
        missing.first()
    );
}
