//! The application state every handler shares, and audit-before-response.

use crate::api::error::ApiError;
use crate::core::audit::AuditError;
use crate::runtime::Runtime;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Waits until every audit event logged so far is durable. When that
/// fails, the events are not durable and the answer must not go out: the
/// error response to send instead.
pub async fn audited(app: &App) -> Result<(), Response> {
    app.runtime
        .core()
        .audit
        .flush()
        .await
        .map_err(|e| audit_refusal(e).into_response())
}

/// The answer when the audit log cannot be read or written: 503
/// `audit_unavailable` while storing fails (the events are held and
/// retried, and the request may be retried too), 500 for anything else.
pub fn audit_refusal(e: AuditError) -> ApiError {
    match e {
        AuditError::Unavailable(_) | AuditError::Commit(_) => {
            ApiError::AuditUnavailable(format!("the audit log cannot be written: {e}"))
        }
        other => ApiError::Internal(format!("audit log: {other}")),
    }
}
