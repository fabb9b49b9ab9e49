//! OpenTelemetry traces: with `--otlp-endpoint` every service hop is a span
//! sent over OTLP/HTTP (protobuf) to a receiver this test runs itself, in
//! the host's W3C trace, with in-process calls as child spans and the
//! status and limit hits as attributes.

use crate::common::*;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An OTLP/HTTP receiver: every span posted to `/v1/traces`.
struct Receiver {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let content_types: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kept, types) = (spans.clone(), content_types.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let (kept, types) = (kept.clone(), types.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: http::Request<hyper::body::Incoming>| {
                                let (kept, types) = (kept.clone(), types.clone());
                                async move {
                                    assert_eq!(req.uri().path(), "/v1/traces");
                                    let ct = req
                                        .headers()
                                        .get("content-type")
                                        .map(|v| v.to_str().unwrap().to_string())
                                        .unwrap_or_default();
                                    types.lock().unwrap().push(ct);
                                    let body = req.into_body().collect().await?.to_bytes();
                                    let export = ExportTraceServiceRequest::decode(body.as_ref())
                                        .expect("an OTLP protobuf export");
                                    for rs in export.resource_spans {
                                        for ss in rs.scope_spans {
                                            kept.lock().unwrap().extend(ss.spans);
                                        }
                                    }
                                    Ok::<_, hyper::Error>(http::Response::new(Full::new(
                                        Bytes::new(),
                                    )))
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                            .await;
                    });
                }
            });
        });
        Receiver {
            addr,
            spans,
            content_types,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// The spans of `trace` (32 hex digits), once `n` have arrived.
    fn spans_of(&self, trace: &str, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| hex::encode(&s.trace_id) == trace)
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} spans of trace {trace} arrived",
                found.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn string(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        other => panic!("{key} is {other:?}"),
    }
}

fn status_code(span: &Span) -> i64 {
    match attribute(span, "http.response.status_code") {
        Some(AnyValue::IntValue(n)) => n,
        other => panic!("http.response.status_code is {other:?}"),
    }
}

fn of_service<'a>(spans: &'a [Span], service: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| string(s, "hms.service").as_deref() == Some(service))
        .unwrap_or_else(|| panic!("no span of {service}"))
}

#[test]
fn every_service_hop_is_a_span_of_the_hosts_trace_sent_over_otlp() {
    let receiver = Receiver::start();
    let endpoint = receiver.endpoint();
    let host = Host::start_with(
        &seed_components(),
        &temp_dir("data"),
        &["--otlp-endpoint", &endpoint],
    );

    // A client that sent its own traceparent: report's span is the child
    // of the client's span, identity's the child of report's.
    let (trace, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = block_on(host.client().send(
        Method::POST,
        "/reports/identity-check",
        Some(&json!({"id": "C12345"})),
        &[("traceparent", &format!("00-{trace}-{client_span}-01"))],
    ))
    .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let spans = receiver.spans_of(trace, 2);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (report, identity) = (
        of_service(&spans, "report-service"),
        of_service(&spans, "identity-service"),
    );
    assert_eq!(hex::encode(&report.parent_span_id), client_span);
    assert_eq!(
        identity.parent_span_id, report.span_id,
        "an in-process call is a child span"
    );
    assert_eq!(
        string(identity, "hms.caller").as_deref(),
        Some("report-service")
    );
    assert_eq!(string(report, "hms.caller"), None);
    for span in [report, identity] {
        assert_eq!(status_code(span), 200);
        assert!(string(span, "hms.version").unwrap().starts_with("sha256:"));
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        assert_ne!(
            span.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
    }
    assert_eq!(
        string(report, "url.path").as_deref(),
        Some("/reports/identity-check")
    );
    assert!(
        receiver
            .content_types
            .lock()
            .unwrap()
            .iter()
            .all(|t| t == "application/x-protobuf")
    );

    // Without a traceparent: the host's own trace id (x-trace-id), report's
    // span the root.
    let r = host.post("/reports/identity-check", &json!({"id": "C12345"}));
    let trace = r.headers["x-trace-id"].to_str().unwrap().to_string();
    let spans = receiver.spans_of(&trace, 2);
    let report = of_service(&spans, "report-service");
    assert!(report.parent_span_id.is_empty(), "a root span");
    assert_eq!(
        of_service(&spans, "identity-service").parent_span_id,
        report.span_id
    );

    // A limit hit: the host answered for the component, and the span says
    // which limit.
    let r = post_over_body_limit(&host);
    assert_eq!(r.status, 413);
    let trace = r.headers["x-trace-id"].to_str().unwrap().to_string();
    let span = receiver.spans_of(&trace, 1).remove(0);
    assert_eq!(status_code(&span), 413);
    assert_eq!(
        string(&span, "hms.error").as_deref(),
        Some("payload_too_large")
    );
}

#[test]
fn an_unusable_otlp_endpoint_stops_the_start_with_a_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hms-host"))
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(temp_dir("data"))
        .args(["--otlp-endpoint", "grpc://collector:4317"])
        .arg(component("hello"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--otlp-endpoint"), "{stderr}");
    assert!(out.stdout.is_empty(), "refused before the listening line");
}

#[test]
fn a_call_forwarded_to_another_host_is_a_child_of_the_calling_span() {
    use crate::cluster::{cluster_flags, fresh_database};
    use crate::cluster_calls::{place, wait_until_served_on};
    let receiver = Receiver::start();
    let endpoint = receiver.endpoint();
    let url = fresh_database("traces");
    let start = |id: &str| {
        let mut flags = cluster_flags(&url, id);
        flags.extend(["--otlp-endpoint", &endpoint]);
        Host::start_with(&seed_components(), &temp_dir(id), &flags)
    };
    let (h1, h2) = (start("h1"), start("h2"));
    place(&h1, &["identity-service", "h2"]);
    wait_until_served_on("identity-service", &["h2"], &[&h1, &h2]);

    let r = h1.post("/reports/identity-check", &json!({"id": "C12345"}));
    assert_eq!(r.body, json!({"report": "ID C12345 is verified"}));
    let trace = r.headers["x-trace-id"].to_str().unwrap().to_string();
    let spans = receiver.spans_of(&trace, 2);
    let (report, identity) = (
        of_service(&spans, "report-service"),
        of_service(&spans, "identity-service"),
    );
    assert!(
        report.parent_span_id.is_empty(),
        "report's span is the root"
    );
    assert_eq!(
        identity.parent_span_id, report.span_id,
        "h2's span is the child of h1's calling span"
    );
    assert_eq!(
        string(identity, "hms.caller").as_deref(),
        Some("report-service")
    );
}
