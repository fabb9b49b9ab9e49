//! The HTTP front: Core's API under `/_hms`, everything else routed to the
//! deployed components. The client's response leaves only after the events
//! its request logged are durable (audit-before-response).

use crate::api::error::ApiError;
use crate::core::trace::{TRACE_ID_HEADER, TRACEPARENT_HEADER, Trace};
use crate::http::app::{App, audited};
use crate::http::core_api;
use crate::runtime::forward;
use crate::runtime::state::Caller;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use wasmtime_wasi_http::Error as HttpError;

/// Accepts connections on `listener` and serves `router` on each (HTTP/1.1)
/// until `shutdown` resolves; then accepts no more and waits for requests in
/// flight to finish. A client has `header_timeout` to send each request head,
/// idle keep-alive time included: a connection that trickles its headers or
/// sits silent longer is closed, so slow clients cannot pile up connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors, say: back off, then go on.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are written as soon as they are ready: without TCP_NODELAY
        // a response whose head and body leave in two writes waits for the
        // client's delayed ACK (~40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on a connection from {peer}: {e}");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // The peer address, for the endpoints that throttle by it.
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let connection = connections.watch(http1.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// The whole HTTP application.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .nest(
            crate::runtime::router::RESERVED_PREFIX,
            core_api::routes(app.clone()),
        )
        .fallback(serve_component)
        .with_state(app)
}

/// The router of `--metrics-listen`: `GET /metrics` without a credential.
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(app): State<Arc<App>>| async move {
                core_api::render_metrics(&app)
            }),
        )
        .fallback(|| async { ApiError::NotFound("only /metrics is served here".into()) })
        .with_state(app)
}

/// Serves a request with a deployed component. A request carrying a host
/// call credential is a call another host of the cluster forwarded: it is
/// served as a call from the service the credential names, through that
/// service's caller policy, or refused (401) when the credential is not
/// valid for this host ([`crate::runtime::forward`]).
async fn serve_component(State(app): State<Arc<App>>, mut req: Request) -> Response {
    let trace = Trace::from_traceparent(
        req.headers()
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let core = app.runtime.core();
    let from_host = forward::caller_of(core, req.headers_mut());
    let mut response = match (from_host, app.runtime.route(req.uri().path())) {
        (Err(refused), _) => refused.into_response(),
        // Nothing it served now could be audited.
        (Ok(_), Some(_)) if let Some(why) = core.unavailable() => {
            core.metrics.refused("audit_unavailable");
            ApiError::AuditUnavailable(why).into_response()
        }
        (Ok(_), None) => {
            ApiError::NotFound(format!("no service serves {}", req.uri().path())).into_response()
        }
        (Ok(from_host), Some(service)) => {
            let req = req.map(|body| {
                body.map_err(|e| {
                    HttpError::InternalError(Some(format!("reading request body: {e}")))
                })
                .boxed_unsync()
            });
            let response = match from_host {
                Some((calling, depth)) => {
                    let caller = Caller::new(calling.into(), trace.clone(), depth);
                    app.runtime.call(service, req, &caller).await
                }
                None => {
                    let caller = Caller::new(service.name.as_str().into(), trace.clone(), 0);
                    app.runtime.invoke(service, req, caller).await
                }
            };
            if trace.logged()
                && let Err(refusal) = audited(&app).await
            {
                return refusal;
            }
            response.map(Body::new)
        }
    };
    if let Ok(v) = trace.id().parse() {
        response.headers_mut().insert(TRACE_ID_HEADER, v);
    }
    response
}
