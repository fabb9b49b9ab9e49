//! OpenTelemetry traces over OTLP/HTTP (`--otlp-endpoint`): one span per
//! service hop, in the host's own W3C trace.
//!
//! A hop is one instance serving one request: a client's request is the
//! root span (the child of the caller's span when the client sent a
//! `traceparent`), each call a component makes to another service is a
//! child of the calling hop's span, on this host or, forwarded, on another
//! (the forwarded `traceparent` names the calling span). A span carries the
//! service, its version, the caller, the response status, and the host's
//! error code when the host answered for the component (a limit it hit:
//! `busy`, `timeout`, `payload_too_large`, ...; or a trap).
//!
//! Built on the opentelemetry crates: the SDK's batch processor and the
//! OTLP exporter (protobuf over HTTP), posting through hyper on this
//! process's tokio runtime (the SDK exports from a thread of its own).
//! Without an endpoint nothing is recorded and a hop costs nothing.

use std::cell::Cell;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler, SdkTracer,
    SdkTracerProvider,
};

/// How long the exporter waits for the collector.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a finished span waits before it is sent.
const EXPORT_DELAY: Duration = Duration::from_millis(500);

/// Where spans go: nowhere, or an OTLP/HTTP collector.
pub struct Telemetry {
    otlp: Option<(SdkTracerProvider, SdkTracer)>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.otlp.is_some())
            .finish()
    }
}

/// What a hop's span says about the request before it runs.
pub struct HopStart<'a> {
    pub service: &'a str,
    pub version: &'a str,
    /// The calling service, for a call between services.
    pub caller: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    /// The 32-hex-digit trace id.
    pub trace_id: &'a str,
    /// The parent span (16 hex digits) and whether it is another process's.
    pub parent: Option<(&'a str, bool)>,
}

/// The span of one hop while it runs; ended with [`Hop::end`] (or on drop).
pub struct Hop(Option<opentelemetry_sdk::trace::Span>);

impl Telemetry {
    /// Records nothing.
    pub fn disabled() -> Telemetry {
        Telemetry { otlp: None }
    }

    /// Exports every hop's span to the OTLP/HTTP traces endpoint `url`
    /// (e.g. `http://collector:4318/v1/traces`). Must be called on the
    /// tokio runtime that will carry the exports.
    pub fn otlp(url: &str, host_id: &str) -> anyhow::Result<Telemetry> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("--otlp-endpoint {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            anyhow::bail!(
                "--otlp-endpoint {url:?}: expected http://HOST:PORT/v1/traces (plain HTTP)"
            );
        }
        let client = OnRuntime {
            client: Client::builder(TokioExecutor::new()).build_http(),
            runtime: tokio::runtime::Handle::current(),
        };
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(EXPORT_DELAY)
                    .build(),
            )
            .build();
        let resource = Resource::builder()
            .with_service_name("hms-host")
            .with_attribute(KeyValue::new("service.instance.id", host_id.to_string()))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::AlwaysOn)
            .with_id_generator(HostTraceIds::default())
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("hms-host");
        Ok(Telemetry {
            otlp: Some((provider, tracer)),
        })
    }

    /// Starts the span of a hop (a no-op without an endpoint).
    pub fn start_hop(&self, hop: HopStart<'_>) -> Hop {
        let Some((_, tracer)) = &self.otlp else {
            return Hop(None);
        };
        let Ok(trace_id) = TraceId::from_hex(hop.trace_id) else {
            return Hop(None);
        };
        let mut attributes = vec![
            KeyValue::new("hms.service", hop.service.to_string()),
            KeyValue::new("hms.version", hop.version.to_string()),
            KeyValue::new("http.request.method", hop.method.to_string()),
            KeyValue::new("url.path", hop.path.to_string()),
        ];
        if let Some(caller) = hop.caller {
            attributes.push(KeyValue::new("hms.caller", caller.to_string()));
        }
        let builder = tracer
            .span_builder(format!("{} {}", hop.method, hop.service))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        let parent = hop
            .parent
            .and_then(|(id, remote)| Some((SpanId::from_hex(id).ok()?, remote)));
        let span = match parent {
            Some((parent, remote)) => {
                let parent = SpanContext::new(
                    trace_id,
                    parent,
                    TraceFlags::SAMPLED,
                    remote,
                    TraceState::default(),
                );
                builder.start_with_context(tracer, &Context::new().with_remote_span_context(parent))
            }
            None => {
                // A root span takes its trace id from the id generator.
                NEXT_TRACE_ID.with(|next| next.set(Some(trace_id)));
                let span = builder.start_with_context(tracer, &Context::new());
                NEXT_TRACE_ID.with(|next| next.set(None));
                span
            }
        };
        Hop(Some(span))
    }

    /// Sends the spans still waiting and stops exporting.
    pub async fn shutdown(&self) {
        if let Some((provider, _)) = &self.otlp {
            let provider = provider.clone();
            // Both block until the exporter thread is done with them.
            let _ = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .await;
        }
    }
}

impl Hop {
    /// The span's id (16 hex digits): the parent of the calls it makes.
    pub fn span_id(&self) -> Option<String> {
        self.0
            .as_ref()
            .map(|s| s.span_context().span_id().to_string())
    }

    /// Ends the span with the response's status and, when the host answered
    /// for the component, its error code.
    pub fn end(mut self, status: http::StatusCode, host_error: Option<&str>) {
        let Some(span) = self.0.as_mut() else {
            return;
        };
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if let Some(code) = host_error {
            span.set_attribute(KeyValue::new("hms.error", code.to_string()));
        }
        if status.is_server_error() {
            span.set_status(Status::error(
                host_error.unwrap_or("server error").to_string(),
            ));
        }
        span.end();
    }
}

thread_local! {
    /// The trace id the next root span takes (span starts are synchronous).
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Span ids at random; trace ids the host's own for root spans.
#[derive(Debug, Default)]
struct HostTraceIds(RandomIdGenerator);

impl IdGenerator for HostTraceIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(|next| next.take())
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// The exporter's HTTP client: hyper, run on the host's tokio runtime (the
/// SDK calls it from its own export thread).
#[derive(Debug, Clone)]
struct OnRuntime {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move {
                let (parts, body) = request.into_parts();
                let sent = client.request(Request::from_parts(parts, Full::new(body)));
                let response = tokio::time::timeout(EXPORT_TIMEOUT, sent).await??;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            })
            .await?
    }
}
