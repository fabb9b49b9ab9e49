//! The client of a host's Core HTTP API: one typed method per endpoint (the
//! types of [`crate::api::types`], the paths of [`crate::api::paths`]), and
//! raw `send*` calls for anything else, used by the CLI and the tests.

use crate::api::error::ErrorBody;
use crate::api::paths;
use crate::api::types::*;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
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
    #[error("{url} answered something other than the API's JSON: {source}")]
    Decode {
        url: String,
        source: serde_json::Error,
    },
    #[error("writing the answer: {0}")]
    Write(std::io::Error),
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
        let (url, resp) = self.open(method, path, body, headers).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|source| ClientError::Read { url, source })?
            .to_bytes();
        Ok((parts, bytes))
    }

    /// Sends a request; the answer's head, its body still to be read.
    async fn open(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<(String, http::Response<hyper::body::Incoming>), ClientError> {
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
        Ok((url, resp))
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
        Err(api_error(self.status, &self.body))
    }
}

/// A non-2xx answer as [`ClientError::Api`], from its JSON error body.
fn api_error(status: StatusCode, body: &Value) -> ClientError {
    let error: ErrorBody = serde_json::from_value(body.clone()).unwrap_or(ErrorBody {
        code: String::new(),
        message: String::new(),
    });
    ClientError::Api {
        status,
        code: error.code,
        message: error.message,
    }
}

/// The typed Core API, one method per endpoint.
impl Client {
    /// Sends a request and decodes a 2xx answer as `T`.
    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let (parts, bytes) = self.send_raw(method, path, body, headers).await?;
        if !parts.status.is_success() {
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(api_error(parts.status, &body));
        }
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            url: format!("{}{path}", self.base),
            source,
        })
    }

    async fn typed_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = Bytes::from(serde_json::to_vec(body).expect("request types serialize"));
        self.typed(method, path, body, &[("content-type", "application/json")])
            .await
    }

    /// `GET /_hms/health` (503 `loading` is an error here).
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.typed(Method::GET, paths::HEALTH, Bytes::new(), &[])
            .await
    }

    /// Exchanges an API key for a token.
    pub async fn token(&self, api_key: &str) -> Result<TokenResponse, ClientError> {
        let req = TokenRequest {
            api_key: api_key.to_string(),
        };
        self.typed_json(Method::POST, paths::TOKEN, &req).await
    }

    /// The public keys that verify tokens.
    pub async fn jwks(&self) -> Result<Jwks, ClientError> {
        self.typed(Method::GET, paths::JWKS, Bytes::new(), &[])
            .await
    }

    /// Creates an API key for `service` (admin).
    pub async fn create_key(&self, service: &str) -> Result<CreatedKeyResponse, ClientError> {
        let req = CreateKeyRequest {
            service: service.to_string(),
        };
        self.typed_json(Method::POST, paths::KEYS, &req).await
    }

    /// Every API key (admin).
    pub async fn list_keys(&self) -> Result<KeyList, ClientError> {
        self.typed(Method::GET, paths::KEYS, Bytes::new(), &[])
            .await
    }

    /// Revokes key `id` (admin).
    pub async fn revoke_key(&self, id: &str) -> Result<Revoked, ClientError> {
        self.typed(Method::DELETE, &paths::key(id), Bytes::new(), &[])
            .await
    }

    /// The registry.
    pub async fn services(&self) -> Result<ServiceList, ClientError> {
        self.typed(Method::GET, paths::SERVICES, Bytes::new(), &[])
            .await
    }

    /// Uploads `component` as a new version of `service` (admin).
    pub async fn deploy(&self, service: &str, component: Bytes) -> Result<Deployed, ClientError> {
        let headers = [("content-type", "application/wasm")];
        self.typed(Method::POST, &paths::versions(service), component, &headers)
            .await
    }

    /// The versions of `service`, oldest first.
    pub async fn versions(&self, service: &str) -> Result<VersionList, ClientError> {
        self.typed(Method::GET, &paths::versions(service), Bytes::new(), &[])
            .await
    }

    /// Switches `service` to version `to` (a digest or unique prefix), or
    /// the previous one (admin).
    pub async fn rollback(&self, service: &str, to: Option<&str>) -> Result<Deployed, ClientError> {
        let req = RollbackRequest {
            to: to.map(str::to_string),
        };
        self.typed_json(Method::POST, &paths::rollback(service), &req)
            .await
    }

    /// Limits, grants and counters of a deployed service (admin).
    pub async fn stats(&self, service: &str) -> Result<ServiceStats, ClientError> {
        self.typed(Method::GET, &paths::stats(service), Bytes::new(), &[])
            .await
    }

    /// A service's store as JSON lines (admin).
    pub async fn export_data(&self, service: &str) -> Result<Bytes, ClientError> {
        let (parts, bytes) = self
            .send_raw(Method::GET, &paths::data(service), Bytes::new(), &[])
            .await?;
        if !parts.status.is_success() {
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(api_error(parts.status, &body));
        }
        Ok(bytes)
    }

    /// Loads JSON lines into a service's store, all or nothing (admin).
    pub async fn import_data(&self, service: &str, lines: Bytes) -> Result<Imported, ClientError> {
        self.typed(Method::POST, &paths::data(service), lines, &[])
            .await
    }

    /// The hosts of the cluster (admin).
    pub async fn cluster(&self) -> Result<ClusterStatus, ClientError> {
        self.typed(Method::GET, paths::CLUSTER, Bytes::new(), &[])
            .await
    }

    /// Every placement of the cluster (admin).
    pub async fn placement(&self) -> Result<PlacementList, ClientError> {
        self.typed(Method::GET, paths::PLACEMENT, Bytes::new(), &[])
            .await
    }

    /// Limits `service` to `hosts` (admin); `None` clears its placement:
    /// it runs on every host.
    pub async fn place(
        &self,
        service: &str,
        hosts: Option<&[String]>,
    ) -> Result<Placement, ClientError> {
        let path = paths::placement(service);
        match hosts {
            Some(hosts) => {
                let body = PlacementRequest {
                    hosts: hosts.to_vec(),
                };
                self.typed_json(Method::PUT, &path, &body).await
            }
            None => self.typed(Method::DELETE, &path, Bytes::new(), &[]).await,
        }
    }

    /// The audit bundle of `query` (admin), handed to `sink` piece by piece
    /// as it arrives. A body that breaks off is an error.
    pub async fn audit_export(
        &self,
        query: &AuditExportQuery,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        let path = paths::audit_export(query);
        let (url, resp) = self.open(Method::GET, &path, Bytes::new(), &[]).await?;
        let (parts, mut body) = resp.into_parts();
        if !parts.status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|source| ClientError::Read { url, source })?
                .to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(api_error(parts.status, &body));
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| ClientError::Read {
                url: url.clone(),
                source,
            })?;
            if let Some(data) = frame.data_ref() {
                sink(data).map_err(ClientError::Write)?;
            }
        }
        Ok(())
    }

    /// Audit events matching `query` (admin).
    pub async fn events(&self, query: &EventQuery) -> Result<EventList, ClientError> {
        self.typed(Method::GET, &paths::events(query), Bytes::new(), &[])
            .await
    }
}
