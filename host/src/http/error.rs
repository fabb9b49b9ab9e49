//! Core API errors at the axum boundary: [`ApiError`] as a response, and a
//! JSON extractor whose rejections have the same shape.

use crate::api::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.to_response(axum::body::Body::from)
    }
}

/// JSON body extractor whose rejections use our error shape. The body is
/// parsed as JSON whatever the `Content-Type` says, so `curl -d '{...}'`
/// (which sends a form content type) works.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        serde_json::from_slice(&body)
            .map(ApiJson)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}
