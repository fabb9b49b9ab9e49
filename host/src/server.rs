//! The HTTP front: Core's API under `/_hms`, everything else routed to the
//! deployed components. The client's response leaves only after the events
//! its request logged are durable (audit-before-response).

use crate::api;
use crate::core::Caller;
use crate::error::ApiError;
use crate::runtime::Runtime;
use crate::trace::{TRACE_ID_HEADER, TRACEPARENT_HEADER, Trace};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime_wasi_http::Error as HttpError;

/// State shared by every handler.
pub struct App {
    pub runtime: Arc<Runtime>,
    ready: AtomicBool,
}

impl App {
    /// Not ready until [`App::set_ready`].
    pub fn new(runtime: Arc<Runtime>) -> Arc<App> {
        Arc::new(App {
            runtime,
            ready: AtomicBool::new(false),
        })
    }

    /// Whether every component given at start is deployed.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks start-up as complete (health turns 200).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

/// The whole HTTP application.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .nest(crate::router::RESERVED_PREFIX, api::routes(app.clone()))
        .fallback(serve_component)
        .with_state(app)
}

async fn serve_component(State(app): State<Arc<App>>, req: Request) -> Response {
    let trace = Trace::from_traceparent(
        req.headers()
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = match app.runtime.route(req.uri().path()) {
        None => {
            ApiError::NotFound(format!("no service serves {}", req.uri().path())).into_response()
        }
        Some(service) => {
            let caller = Caller {
                service: service.name.as_str().into(),
                trace: trace.clone(),
                depth: 0,
                loading: false,
            };
            let req = req.map(|body| {
                body.map_err(|e| {
                    HttpError::InternalError(Some(format!("reading request body: {e}")))
                })
                .boxed_unsync()
            });
            let response = app.runtime.invoke(service, req, caller).await;
            if trace.logged()
                && let Err(e) = app.runtime.core().audit.flush().await
            {
                // The events are not durable, so the answer must not go out.
                return ApiError::Internal(format!("audit log flush failed: {e}")).into_response();
            }
            response.map(Body::new)
        }
    };
    if let Ok(v) = trace.id().parse() {
        response.headers_mut().insert(TRACE_ID_HEADER, v);
    }
    response
}
