//! A small JSON client for the Core HTTP API, used by the CLI (and the tests).

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {0}")]
    Url(String),
    #[error("cannot reach {url}: {source}")]
    Connect {
        url: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the response from {url}: {source}")]
    Read { url: String, source: hyper::Error },
    #[error("{status}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
}

/// Client of one host.
#[derive(Clone)]
pub struct Client {
    base: String,
    bearer: Option<String>,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

/// A response: status, headers and the body parsed as JSON (`Null` if empty
/// or not JSON).
#[derive(Debug)]
pub struct JsonResponse {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl Client {
    /// A client of the host at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            bearer: None,
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_bearer(mut self, token: impl Into<String>) -> Client {
        self.bearer = Some(token.into());
        self
    }

    /// Sends a request with an optional JSON body and returns whatever
    /// status came back.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<JsonResponse, ClientError> {
        let mut all = headers.to_vec();
        let body = match body {
            Some(v) => {
                all.push(("content-type", "application/json"));
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        self.send_bytes(method, path, body, &all).await
    }

    /// Sends a request with a raw body; the answer's body parsed as JSON
    /// (`null` if it is not JSON).
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<JsonResponse, ClientError> {
        let (parts, bytes) = self.send_raw(method, path, body, headers).await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(JsonResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request with a raw body; the answer's head and whole body.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<(http::response::Parts, Bytes), ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|_| ClientError::Url(url.clone()))?;
        let resp = self
            .inner
            .request(req)
            .await
            .map_err(|source| ClientError::Connect {
                url: url.clone(),
                source,
            })?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|source| ClientError::Read { url, source })?
            .to_bytes();
        Ok((parts, bytes))
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.send(method, path, body, &[]).await?.into_result()
    }
}

impl JsonResponse {
    /// The body of a 2xx answer; anything else as [`ClientError::Api`].
    pub fn into_result(self) -> Result<Value, ClientError> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        let field = |k: &str| {
            self.body
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Err(ClientError::Api {
            status: self.status,
            code: field("code"),
            message: field("message"),
        })
    }
}
