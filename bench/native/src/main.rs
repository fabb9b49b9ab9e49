//! Native contenders for `bench/bench.py`: the hello handler and the seed's
//! identity/report services as axum handlers doing the same work as the
//! components (token issue/verify and durable audit events through
//! hms-host's own Core library), without WebAssembly.
//!
//! `hms-bench-native MODE LISTEN DATA_DIR [IDENTITY_URL]`, MODE one of:
//! `hello`, `identity`, `report` (calls IDENTITY_URL over loopback HTTP, found
//! through a registry lookup), `seed` (both services in one process, report
//! calling identity as a function: the ceiling).

#![allow(
    clippy::result_large_err,
    reason = "handlers return ready error responses; the size is irrelevant at this scale"
)]

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hms_host::core::audit::{AuditLog, Level, NewEvent};
use hms_host::core::auth::{Auth, AuthConfig};
use hms_host::core::registry::Registry;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::Arc;

/// hello.wasm's answer for `path` (paths the benchmark sends need no escaping).
fn hello(path: &str) -> String {
    format!(r#"{{"message":"hello from a wasi:http component","ok":true,"path":"{path}"}}"#)
}

struct Core {
    auth: Auth,
    audit: AuditLog,
    registry: Registry,
    client: Client<HttpConnector, Full<Bytes>>,
}

type App = State<Arc<Core>>;

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!({ "code": code, "message": message }))
}

fn parse_id(body: &[u8]) -> Result<String, Response> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()))?;
    match v["id"].as_str() {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(error(StatusCode::BAD_REQUEST, "bad_request", "missing id")),
    }
}

fn log(core: &Core, service: &str, message: String) {
    core.audit.append(NewEvent {
        service: service.into(),
        level: Level::Info,
        message,
        trace_id: String::new(),
    });
}

/// Identity's work, shared by the HTTP handler and the in-process flow.
fn verify(core: &Core, headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "unauthorized", "missing token"))?;
    core.auth
        .verify(token)
        .map_err(|e| error(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string()))?;
    let id = parse_id(body)?;
    log(core, "identity-service", format!("Verified ID {id}"));
    Ok(json!({ "status": "verified", "citizen_id": id }))
}

async fn identity(State(core): App, headers: HeaderMap, body: Bytes) -> Response {
    match verify(&core, &headers, &body) {
        Ok(v) => {
            let _ = core.audit.flush().await;
            json_response(StatusCode::OK, &v)
        }
        Err(r) => r,
    }
}

async fn report(State(core): App, body: Bytes) -> Response {
    let id = match parse_id(&body) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(endpoint) = core.registry.get("identity-service") else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_unavailable",
            "identity-service",
        );
    };
    let token = core.auth.workload_token("report-service").token;
    let req = http::Request::post(format!("{}/identity/verify", endpoint.url))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({ "id": id }).to_string())))
        .expect("valid request");
    let answer: Value = match core.client.request(req).await {
        Ok(resp) if resp.status().is_success() => match resp.into_body().collect().await {
            Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
            Err(e) => return error(StatusCode::BAD_GATEWAY, "upstream_error", &e.to_string()),
        },
        Ok(resp) => {
            return error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                resp.status().as_str(),
            );
        }
        Err(e) => return error(StatusCode::BAD_GATEWAY, "upstream_error", &e.to_string()),
    };
    finish_report(&core, &id, &answer).await
}

async fn finish_report(core: &Core, id: &str, answer: &Value) -> Response {
    log(core, "report-service", format!("Generated report for {id}"));
    let _ = core.audit.flush().await;
    let status = answer["status"].as_str().unwrap_or("unknown");
    json_response(
        StatusCode::OK,
        &json!({ "report": format!("ID {id} is {status}") }),
    )
}

async fn seed_in_process(State(core): App, body: Bytes) -> Response {
    let id = match parse_id(&body) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if core.registry.get("identity-service").is_none() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_unavailable",
            "identity-service",
        );
    }
    let mut headers = HeaderMap::new();
    let token = core.auth.workload_token("report-service").token;
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let inner = json!({ "id": id }).to_string();
    match verify(&core, &headers, inner.as_bytes()) {
        Ok(answer) => finish_report(&core, &id, &answer).await,
        Err(r) => r,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, listen, data_dir, rest @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: hms-bench-native hello|identity|report|seed LISTEN DATA_DIR [IDENTITY_URL]"
        );
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let data_dir = std::path::Path::new(data_dir);
    let core = Arc::new(Core {
        auth: Auth::open(data_dir, AuthConfig::default())?,
        audit: AuditLog::open(&data_dir.join(format!("audit-{mode}.db")), "native")?,
        registry: Registry::new(addr),
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    let app = match mode.as_str() {
        "hello" => Router::new().fallback(|uri: http::Uri| async move {
            ([("content-type", "application/json")], hello(uri.path()))
        }),
        "identity" => Router::new().route("/identity/verify", axum::routing::post(identity)),
        "report" => {
            let url: http::Uri = rest
                .first()
                .ok_or_else(|| anyhow::anyhow!("report needs IDENTITY_URL"))?
                .parse()?;
            let (host, port) = (
                url.host().unwrap_or("127.0.0.1"),
                url.port_u16().unwrap_or(80),
            );
            core.registry.register_external(
                "identity-service",
                host,
                port,
                "native",
                None,
                None,
            )?;
            Router::new().route("/reports/identity-check", axum::routing::post(report))
        }
        "seed" => {
            core.registry
                .register_component("identity-service", "native", vec![]);
            Router::new().route(
                "/reports/identity-check",
                axum::routing::post(seed_in_process),
            )
        }
        other => anyhow::bail!("unknown mode {other}"),
    };
    println!("listening on http://{addr}");
    // A token the load generator can present to the identity service.
    println!("token {}", core.auth.workload_token("bench-client").token);
    axum::serve(listener, app.with_state(core)).await?;
    Ok(())
}
