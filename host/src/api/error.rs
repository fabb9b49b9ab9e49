//! The one error shape of everything the host answers itself — Core API
//! errors, unknown routes, component failures: an HTTP status and a JSON body
//! `{"code": "<stable_code>", "message": "<text>"}` ([`ErrorBody`]).
//!
//! The HTTP front turns an [`ApiError`] into an axum response, the runtime
//! into a wasi:http one; both build it with [`ApiError::to_response`].

use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The body of every error the host answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable snake_case code, e.g. `not_found`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// Marks a response the host made in a component's place (a limit it hit,
/// a trap, a refusal), with the error's code; traces record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostAnswered(pub &'static str);

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    /// The audit log cannot be written, so nothing is done that it would
    /// have to record: retry in a moment.
    #[error("{0}")]
    AuditUnavailable(String),
    /// Every instance slot of a service is in use: retry in a moment.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Timeout(String),
    /// A component's response broke its limits.
    #[error("{0}")]
    ResponseTooLarge(String),
    /// Refused until `retry_after_secs` have passed (sent as `Retry-After`).
    #[error("{message}; retry after {retry_after_secs} s")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// A component trapped or answered with an error instead of a response.
    #[error("{0}")]
    ComponentFailed(String),
    /// A host fault: logged in full, answered generically.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::AuditUnavailable(_) | ApiError::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ResponseTooLarge(_) => StatusCode::BAD_GATEWAY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ComponentFailed(_) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::AuditUnavailable(_) => "audit_unavailable",
            ApiError::Busy(_) => "busy",
            ApiError::Timeout(_) => "timeout",
            ApiError::ResponseTooLarge(_) => "response_too_large",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::ComponentFailed(_) => "component_failed",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body. Internal errors are logged in full here, once, and
    /// answered generically.
    pub fn body(&self) -> Bytes {
        if let ApiError::Internal(detail) = self {
            tracing::error!("internal error: {detail}");
        }
        let body = ErrorBody {
            code: self.code().to_string(),
            message: self.to_string(),
        };
        Bytes::from(serde_json::to_vec(&body).expect("an error body always serializes"))
    }

    /// Seconds for a `Retry-After` header, if the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            // A slot of a busy service frees up as soon as a request ends;
            // a failed audit commit is retried every 250 ms.
            ApiError::Busy(_) | ApiError::AuditUnavailable(_) => Some(1),
            _ => None,
        }
    }

    /// The error as an HTTP response whose body type `body` makes from the
    /// JSON bytes.
    pub fn to_response<B>(&self, body: impl FnOnce(Bytes) -> B) -> http::Response<B> {
        let mut builder = http::Response::builder()
            .status(self.status())
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(secs) = self.retry_after() {
            builder = builder.header(http::header::RETRY_AFTER, secs);
        }
        builder
            .extension(HostAnswered(self.code()))
            .body(body(self.body()))
            .expect("static response parts are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_with_a_stable_code() {
        let resp = ApiError::NotFound("no route for /x".into()).to_response(|b| b);
        assert_eq!(resp.status(), 404);
        let v: ErrorBody = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(
            v,
            ErrorBody {
                code: "not_found".into(),
                message: "no route for /x".into()
            }
        );
    }

    #[test]
    fn too_many_requests_says_when_to_retry() {
        let e = ApiError::TooManyRequests {
            message: "too many failed attempts".into(),
            retry_after_secs: 3,
        };
        let resp = e.to_response(|b| b);
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "3");
        assert_eq!(
            resp.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
    }

    #[test]
    fn internal_errors_hide_details() {
        let e = ApiError::Internal("db path /secret failed".into());
        assert_eq!(e.status(), 500);
        assert_eq!(e.to_string(), "internal error");
    }
}
