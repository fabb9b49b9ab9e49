//! The sandbox: hostile components run beside identity and report while a
//! stream of normal requests flows; each hostile one fails at its own limit
//! with its documented status, every normal request still succeeds, and the
//! host stays up. Also the request limits (413, 431, 503) and the outbound
//! policy (SSRF attempts, redirects, registrations, the caller policy).

use crate::common::*;
use hms_host::cli::client::ClientError;
use http::Method;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Tight limits for the hostile services, so the test is quick; identity and
/// report keep the defaults (shared with the attack benchmark).
const LIMITS: &str = include_str!("hostile-limits.toml");

fn hostile_components() -> Vec<PathBuf> {
    let mut all = seed_components();
    all.extend([
        component("trap"),
        component("panic"),
        component("stack_overflow"),
        component("endless_loop"),
        component("alloc_bomb"),
        component("resource_bomb"),
        component("no_response"),
        component("stream_forever"),
        component("ignore_body"),
    ]);
    all
}

/// Starts the host with `components` and a config file holding `config`.
fn start_with_config(components: &[PathBuf], config: &str) -> Host {
    let data = temp_dir("sandbox");
    let file = data.with_extension("toml");
    std::fs::write(&file, config).unwrap();
    Host::start_with(components, &data, &["--config", file.to_str().unwrap()])
}

fn stats(host: &Host, service: &str) -> Value {
    block_on(host.admin().call(
        Method::GET,
        &format!("/_hms/services/{service}/stats"),
        None,
    ))
    .unwrap()
}

/// Normal traffic: `clients` threads sending the seed flow until `stop`;
/// returns every (status, body) seen.
fn normal_stream(
    host: &Host,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(u16, Value)>>> {
    (0..clients)
        .map(|_| {
            let url = host.url();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let client = hms_host::cli::client::Client::new(&url);
                block_on(async {
                    let mut seen = Vec::new();
                    // Bounded: at least a few requests, at most a few hundred.
                    while seen.len() < 5 || (!stop.load(Ordering::Relaxed) && seen.len() < 400) {
                        let r = client
                            .send(
                                Method::POST,
                                "/reports/identity-check",
                                Some(&json!({"id": "C12345"})),
                                &[],
                            )
                            .await
                            .unwrap();
                        seen.push((r.status.as_u16(), r.body));
                    }
                    seen
                })
            })
        })
        .collect()
}

#[test]
fn hostile_components_fail_alone_while_normal_traffic_flows() {
    let host = start_with_config(&hostile_components(), LIMITS);
    let stop = Arc::new(AtomicBool::new(false));
    let normal = normal_stream(&host, 4, stop.clone());

    // Every hostile behaviour, three at a time, while the stream flows.
    let expectations: [(&str, u16, &str, &str); 8] = [
        ("/trap/x", 500, "component_failed", "trapped"),
        ("/panic/x", 500, "component_failed", "trapped"),
        (
            "/stack-overflow/x",
            500,
            "component_failed",
            "call stack exhausted",
        ),
        ("/endless-loop/x", 504, "timeout", "time limit"),
        (
            "/alloc-bomb/x",
            500,
            "component_failed",
            "memory limit of 16 MiB",
        ),
        ("/no-response/x", 504, "timeout", "time limit"),
        (
            "/resource-bomb/x",
            500,
            "component_failed",
            "1024 host resources",
        ),
        ("/ignore-body/x", 413, "payload_too_large", "65536"),
    ];
    let url = host.url();
    let attacks: Vec<_> = expectations
        .iter()
        .flat_map(|e| std::iter::repeat_n(*e, 2))
        .map(|(path, status, code, words)| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = hms_host::cli::client::Client::new(&url);
                // The ignore-body service gets a body over its 64 KiB limit.
                let body = bytes::Bytes::from(vec![b'x'; 100 << 10]);
                let r = block_on(client.send_bytes(Method::POST, path, body, &[])).unwrap();
                assert_eq!(r.status, status, "{path}: {:?}", r.body);
                assert_eq!(r.body["code"], code, "{path}: {:?}", r.body);
                let message = r.body["message"].as_str().unwrap();
                assert!(message.contains(words), "{path}: {message}");
            })
        })
        .collect();
    for a in attacks {
        a.join().unwrap();
    }

    // A response that streams forever is cut off at its size limit: the
    // head arrived, the body does not complete.
    let r = block_on(host.client().send_bytes(
        Method::GET,
        "/stream-forever/x",
        bytes::Bytes::new(),
        &[],
    ));
    assert!(matches!(r, Err(ClientError::Read { .. })), "{r:?}");
    // A component that never reads its body still answers a body within
    // the limit.
    let body = bytes::Bytes::from(vec![b'x'; 32 << 10]);
    let r = block_on(
        host.client()
            .send_bytes(Method::POST, "/ignore-body/x", body, &[]),
    )
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"ignored": true}))
    );

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in normal {
        for (status, body) in client.join().unwrap() {
            assert_eq!(status, 200, "{body:?}");
            assert_eq!(body, json!({"report": "ID C12345 is verified"}));
            total += 1;
        }
    }
    assert!(total >= 20, "only {total} normal requests went through");
    assert!(
        host_is_running(&host),
        "the host must survive every hostile component"
    );

    // Each fault is logged under its service's name and counted. Requests
    // refused at the door (413 by Content-Length, 431, 503) are counted
    // only, so a flood of them cannot flood the audit log.
    let s = stats(&host, "ignore-body-service");
    assert_eq!(s["counters"]["body_too_large"], 2, "{s}");
    for (service, counter, words) in [
        ("trap-service", "trap", "trapped"),
        ("panic-service", "trap", "trapped"),
        ("stack-overflow-service", "trap", "trapped"),
        ("endless-loop-service", "timeout", "time limit"),
        ("alloc-bomb-service", "memory_limit", "memory limit"),
        ("resource-bomb-service", "memory_limit", "host resources"),
        ("no-response-service", "timeout", "time limit"),
        ("stream-forever-service", "response_too_large", "cut off"),
    ] {
        let s = stats(&host, service);
        assert!(
            s["counters"][counter].as_u64().unwrap() >= 1,
            "{service}: {s}"
        );
        let events = host.events(&format!("service={service}"));
        assert!(
            events
                .iter()
                .any(|e| e["message"].as_str().unwrap().contains(words)),
            "{service}: {events:?}"
        );
    }
    let identity = stats(&host, "identity-service");
    assert_eq!(identity["counters"]["trap"], 0);
    assert_eq!(identity["counters"]["timeout"], 0);
    assert!(identity["counters"]["requests"].as_u64().unwrap() >= total as u64);
}

fn host_is_running(host: &Host) -> bool {
    // `try_wait` needs `&mut`; a health check answers the same question.
    block_on(host.client().send(Method::GET, "/_hms/health", None, &[]))
        .is_ok_and(|r| r.status == 200)
}

/// Sends a raw HTTP/1.1 request and returns the status line's code and body.
fn raw(host: &Host, head: &str, body_chunks: &[&[u8]]) -> (u16, Value, String) {
    let mut s = TcpStream::connect(host.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    for chunk in body_chunks {
        // The host may answer (and stop reading) before the body is sent.
        if s.write_all(chunk).is_err() {
            break;
        }
    }
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        headers.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let code = status.split(' ').nth(1).unwrap().parse().unwrap();
    (
        code,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        headers,
    )
}

#[test]
fn request_limits_answer_413_431_and_503_with_json() {
    let host = start_with_config(&hostile_components(), LIMITS);

    // Too many headers: 431 before the component runs.
    let many: String = (0..70).map(|i| format!("x-h{i}: v\r\n")).collect();
    let head = format!(
        "POST /identity/verify HTTP/1.1\r\nhost: x\r\n{many}content-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    let (status, body, _) = raw(&host, &head, &[]);
    assert_eq!(
        (status, body["code"].as_str()),
        (431, Some("headers_too_large"))
    );

    // Header bytes: one 20 KiB header is over the 16 KiB default.
    let head = format!(
        "GET /identity/verify HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(20 << 10)
    );
    let (status, body, _) = raw(&host, &head, &[]);
    assert_eq!(
        (status, body["code"].as_str()),
        (431, Some("headers_too_large"))
    );

    // A declared body over the limit: 413 at once.
    let head = "POST /identity/verify HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\nconnection: close\r\n\r\n";
    let (status, body, _) = raw(&host, head, &[]);
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // A chunked body that grows past the limit while identity reads it.
    let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
    let chunks: Vec<&[u8]> = std::iter::repeat_n(chunk.as_bytes(), 20)
        .chain([b"0\r\n\r\n".as_slice()])
        .collect();
    let head = "POST /identity/verify HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    let (status, body, _) = raw(&host, head, &chunks);
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );

    // Concurrency: no-response-service runs 2 at a time; a third is refused
    // at once with 503 and Retry-After, not queued.
    let url = host.url();
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let c = hms_host::cli::client::Client::new(&url);
                block_on(c.send(Method::GET, "/no-response/x", None, &[]))
                    .unwrap()
                    .status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let head = "GET /no-response/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let (status, body, headers) = raw(&host, head, &[]);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("busy")),
        "{body}"
    );
    assert!(headers.contains("retry-after: 1"), "{headers}");
    for h in hanging {
        assert_eq!(h.join().unwrap(), 504);
    }
    // The slots come back once the instances are gone (just after the
    // deadline answered 504).
    let mut s = stats(&host, "no-response-service");
    for _ in 0..50 {
        if s["in_flight"] == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        s = stats(&host, "no-response-service");
    }
    assert_eq!(s["in_flight"], 0, "{s}");
    assert_eq!(s["counters"]["busy"], 1, "{s}");
    assert_eq!(s["counters"]["timeout"], 2, "{s}");
    let s = stats(&host, "identity-service");
    assert_eq!(s["counters"]["headers_too_large"], 2, "{s}");
    assert_eq!(s["counters"]["body_too_large"], 2, "{s}");
    assert_eq!(s["limits"]["max_request_body"], 1 << 20);

    // The CLI shows the same counters.
    let out = host.cli(&["stats", "no-response-service", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["counters"]["busy"], 1);

    // Normal requests were never affected.
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.status, 200);
}

/// A one-thread HTTP server standing in for the world outside the host:
/// `/ok` answers 200, `/redirect` points at the cloud metadata address.
fn outside_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let reply = if line.contains("/redirect") {
                "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
            } else {
                "HTTP/1.1 200 OK\r\ncontent-length: 18\r\nconnection: close\r\n\r\nhello from outside".to_string()
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    port
}

#[test]
fn outbound_requests_reach_only_registered_or_granted_destinations() {
    let granted = outside_server();
    let other = outside_server();
    let config =
        format!("[services.outbound-service]\nallow_outbound = [\"127.0.0.1:{granted}\"]\n");
    let mut components = seed_components();
    components.push(component("outbound"));
    let host = start_with_config(&components, &config);
    let fetch = |url: &str, extra: Value| {
        let mut req = json!({"url": url});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        host.post("/outbound/fetch", &req)
    };
    let local = host.addr.port();

    // The granted destination works.
    let r = fetch(&format!("http://127.0.0.1:{granted}/ok"), json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["body"], "hello from outside");

    // Everything else is refused by the host, whatever the spelling.
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://127.0.0.1:{other}/ok"),
        format!("http://localhost:{granted}/ok"),
        format!("http://2130706433:{granted}/ok"),
        format!("http://[::1]:{other}/ok"),
        "http://127.0.0.1:22/".to_string(),
        "http://10.0.0.1/".to_string(),
        format!("https://127.0.0.1:{granted}/ok"),
    ] {
        let r = fetch(&url, json!({}));
        assert_eq!(r.status, 502, "{url}: {:?}", r.body);
        let message = r.body["message"].as_str().unwrap();
        assert!(message.contains("HttpRequestDenied"), "{url}: {message}");
    }

    // A redirect from a granted destination into the metadata range is a
    // new request, refused like any other.
    let r = fetch(
        &format!("http://127.0.0.1:{granted}/redirect"),
        json!({"follow_redirects": true}),
    );
    assert_eq!(r.status, 502, "{:?}", r.body);
    assert_eq!(
        r.body["hops"][1],
        "http://169.254.169.254/latest/meta-data/"
    );

    // The Host header cannot be forged (wasi:http forbids it to guests).
    let r = fetch(
        &format!("http://127.0.0.1:{granted}/ok"),
        json!({"headers": [["host", format!("127.0.0.1:{local}")]]}),
    );
    assert_ne!(r.status, 200, "{:?}", r.body);

    // This host's own address reaches services, never the Core API.
    let r = fetch(&format!("http://127.0.0.1:{local}/_hms/keys"), json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], 404, "{:?}", r.body);

    // Caller policy: identity-service only lets report-service call it.
    let r = fetch(
        &format!("http://127.0.0.1:{local}/identity/verify"),
        json!({"method": "POST", "body": "{\"id\":\"C12345\"}"}),
    );
    assert_eq!(r.body["status"], 403, "{:?}", r.body);
    let refusal: Value = serde_json::from_str(r.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(refusal["code"], "forbidden");
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.status, 200, "report-service may still call identity");

    // A component may register an external service, but not point one at an
    // internal address, nor take over a name someone else registered.
    let r = host.post(
        "/outbound/register",
        &json!({"name": "sneaky", "host": "127.0.0.1", "port": other}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = fetch(&format!("http://127.0.0.1:{other}/ok"), json!({}));
    assert_eq!(r.status, 502, "{:?}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("DestinationIpProhibited"),
        "{:?}",
        r.body
    );
    block_on(host.admin().call(
        Method::POST,
        "/_hms/services",
        Some(&json!({"name": "statistics", "host": "127.0.0.1", "port": other})),
    ))
    .unwrap();
    let r = host.post(
        "/outbound/register",
        &json!({"name": "statistics", "host": "203.0.113.7", "port": 80}),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    // The operator's registration is trusted.
    let r = fetch(&format!("http://127.0.0.1:{other}/ok"), json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);

    let s = stats(&host, "outbound-service");
    assert!(
        s["counters"]["outbound_denied"].as_u64().unwrap() >= 10,
        "{s}"
    );
    assert_eq!(
        stats(&host, "identity-service")["counters"]["forbidden_caller"],
        1
    );
    let events = host.events("service=outbound-service");
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("169.254.169.254")),
        "{events:?}"
    );
}

/// Clients that hold connections without sending requests: one trickles part
/// of a request head and stops (slow loris), one never sends a byte, one goes
/// silent after an answered request on a kept-alive connection. Each is
/// disconnected after the header timeout, while other clients are served.
#[test]
fn slow_or_silent_connections_are_closed_after_the_header_timeout() {
    let host = Host::start_with(
        &seed_components(),
        &temp_dir("slow-clients"),
        &["--header-timeout-secs", "1"],
    );
    let started = std::time::Instant::now();
    let mut slow = TcpStream::connect(host.addr).unwrap();
    slow.write_all(b"POST /reports/identity-check HTTP/1.1\r\nHost: hms\r\nContent-")
        .unwrap();
    let silent = TcpStream::connect(host.addr).unwrap();
    let mut idle = TcpStream::connect(host.addr).unwrap();
    idle.write_all(b"GET /_hms/health HTTP/1.1\r\nHost: hms\r\n\r\n")
        .unwrap();

    let answer = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(answer.status, 200);
    for (name, mut conn) in [("slow", slow), ("silent", silent), ("idle", idle)] {
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut received = Vec::new();
        match conn.read_to_end(&mut received) {
            Ok(_) => {}
            // A reset is a close too; a timeout means the host kept it open.
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{name} connection still open after {:?}",
                started.elapsed()
            ),
        }
        if name == "idle" {
            let text = String::from_utf8_lossy(&received);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        }
    }
    let held = started.elapsed();
    assert!(held < Duration::from_secs(15), "connections held {held:?}");
    // And the host still serves.
    let answer = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(answer.status, 200);
}

/// Sends a chunked request of `chunks` chunks of 32 KiB to echo-stream and
/// reads the chunked response: its status, the bytes echoed, and whether
/// the response ended cleanly (a last chunk) rather than being broken off.
fn echo_chunked(host: &Host, chunks: usize) -> (u16, usize, bool) {
    let mut s = TcpStream::connect(host.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = "POST /echo-stream/x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let chunk = format!("8000\r\n{}\r\n", "e".repeat(0x8000));
    for _ in 0..chunks {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        assert!(!line.is_empty(), "headers cut off");
    }
    let mut echoed = 0;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return (status, echoed, false),
            Ok(_) => {}
        }
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        let mut data = vec![0; size + 2];
        if reader.read_exact(&mut data).is_err() {
            return (status, echoed, false);
        }
        if size == 0 {
            return (status, echoed, true);
        }
        echoed += size;
    }
}

#[test]
fn a_streamed_response_whose_request_passes_its_limit_ends_in_an_error() {
    let config = "[services.echo-stream-service]\nmax_request_body_kb = 64\n";
    let host = start_with_config(&[component("echo_stream")], config);

    // Within the limit (exactly 64 KiB): all of it back, cleanly ended.
    assert_eq!(echo_chunked(&host, 2), (200, 64 << 10, true));

    // Over it: the head had gone out, so the status stays 200, but the
    // stream is broken off instead of ending like a whole answer.
    let (status, echoed, clean) = echo_chunked(&host, 3);
    assert_eq!(status, 200);
    assert!(!clean, "a failed exchange must not end cleanly");
    assert!(echoed <= 64 << 10, "{echoed} bytes echoed past the limit");
    let s = stats(&host, "echo-stream-service");
    assert_eq!(s["counters"]["body_too_large"], 1, "{s}");
}
