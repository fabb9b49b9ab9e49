//! Core's own HTTP API, under the reserved `/_hms` prefix: health, token
//! exchange, public keys, API keys, the registry and the audit log. JSON in
//! and out; errors are [`ApiError`]s. Admin operations need the admin
//! credential as `Authorization: Bearer <admin token>`.

use crate::audit::Query;
use crate::auth::{AuthError, Presenter};
use crate::error::{ApiError, ApiJson};
use crate::registry::RegistryError;
use crate::runtime::DeployError;
use crate::server::App;
use crate::store::{ImportError, StoreError};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query as QueryParams, State,
};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest component upload accepted; the example services are ~150 KiB.
const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Largest data import accepted (JSON lines).
const MAX_IMPORT_BYTES: usize = 256 << 20;

/// Longest a `GET /_hms/events?wait=N` long-poll is held open.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Routes of the Core API (mounted at `/_hms`).
pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/health", get(health))
        .route("/auth/token", post(token))
        .route("/auth/jwks", get(jwks))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(revoke_key))
        .route("/services", get(list_services).post(register_service))
        .route("/services/{name}", delete(unregister_service))
        .route(
            "/services/{name}/versions",
            get(list_versions)
                .post(deploy_version)
                .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route("/services/{name}/rollback", post(rollback))
        .route("/services/{name}/stats", get(service_stats))
        .route(
            "/data/{service}",
            get(export_data)
                .post(import_data)
                .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/events", get(events))
        .fallback(|| async { ApiError::NotFound("no such Core API endpoint".into()) })
        .layer(middleware::from_fn_with_state(app, audit_before_response))
}

/// Audit-before-response for the Core API: an action (a deploy, a rollback,
/// a key created or revoked, an import) is answered only once the events it
/// logged are durable. Reads answer at once.
async fn audit_before_response(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    let response = next.run(req).await;
    if !read_only && let Err(refusal) = crate::server::audited(&app).await {
        return refusal;
    }
    response
}

/// Extractor that admits only the admin credential.
pub struct Admin;

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Admin, ApiError> {
        let presented = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "admin credential required (Authorization: Bearer ...)".into(),
                )
            })?;
        if app.runtime.core().auth.check_admin(presented.trim()) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized("invalid admin credential".into()))
        }
    }
}

async fn health(State(app): State<Arc<App>>) -> (StatusCode, Json<Value>) {
    let services = app.runtime.service_names();
    if app.is_ready() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ok", "services": services })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "loading", "services": services })),
        )
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    api_key: String,
}

/// Exchanges an API key for a token. Failed attempts are throttled by the
/// client's address (the TCP peer: headers such as `X-Forwarded-For` are
/// anyone's to write); a throttled address gets 429 with `Retry-After`.
async fn token(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Result<ApiJson<TokenRequest>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let auth = &app.runtime.core().auth;
    let from = Presenter::address(peer.ip());
    auth.admit(&from).map_err(auth_error)?;
    let req = match req {
        Ok(ApiJson(req)) => req,
        Err(_) => {
            auth.record_failure(&from);
            // Not the parser's message: it may quote the body, i.e. the key.
            return Err(ApiError::BadRequest(
                r#"expected a JSON body {"api_key": "hms_..."}"#.into(),
            ));
        }
    };
    let issued = auth
        .authenticate_from(&from, &req.api_key)
        .map_err(auth_error)?;
    Ok(Json(
        json!({ "token": issued.token, "token_type": "Bearer", "expires_at": issued.expires_at }),
    ))
}

async fn jwks(State(app): State<Arc<App>>) -> Json<Value> {
    Json(app.runtime.core().auth.jwks())
}

#[derive(Deserialize)]
struct CreateKey {
    service: String,
}

async fn create_key(
    _: Admin,
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = app
        .runtime
        .core()
        .auth
        .create_key(&req.service)
        .map_err(auth_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": key.id, "service": key.service, "api_key": key.secret })),
    ))
}

async fn list_keys(_: Admin, State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let keys = app.runtime.core().auth.list_keys().map_err(auth_error)?;
    Ok(Json(json!({ "keys": keys })))
}

async fn revoke_key(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.runtime
        .core()
        .auth
        .revoke_key(&id)
        .map_err(auth_error)?;
    Ok(Json(json!({ "revoked": id })))
}

fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::InvalidKey => ApiError::Unauthorized("invalid API key".into()),
        AuthError::Revoked => ApiError::Unauthorized("API key revoked".into()),
        AuthError::Expired => ApiError::Unauthorized("token expired".into()),
        AuthError::InvalidToken(why) => ApiError::Unauthorized(format!("invalid token: {why}")),
        AuthError::UnknownKeyId(id) => ApiError::NotFound(format!("no API key {id:?}")),
        AuthError::Throttled { retry_after } => ApiError::TooManyRequests {
            message: "too many failed authentication attempts".into(),
            retry_after_secs: crate::ratelimit::retry_after_secs(retry_after),
        },
        e @ AuthError::InvalidService(_) => ApiError::BadRequest(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

async fn list_services(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "services": app.runtime.core().registry.list() }))
}

#[derive(Deserialize)]
struct RegisterService {
    name: String,
    host: String,
    port: u16,
    #[serde(default)]
    version: Option<String>,
    /// Seconds until the registration lapses unless renewed.
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

async fn register_service(
    _: Admin,
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RegisterService>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let version = req.version.as_deref().unwrap_or("unknown");
    let ttl = req.ttl_seconds.map(Duration::from_secs);
    let entry = app
        .runtime
        .core()
        .registry
        .register_external(&req.name, &req.host, req.port, version, ttl, None)
        .map_err(registry_error)?;
    Ok((StatusCode::CREATED, Json(json!(entry))))
}

async fn unregister_service(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let registry = &app.runtime.core().registry;
    if registry
        .get(&name)
        .is_some_and(|e| e.kind == crate::registry::Kind::Component)
    {
        return Err(ApiError::Conflict(format!(
            "{name} is a deployed component, not an external registration"
        )));
    }
    registry.unregister(&name).map_err(registry_error)?;
    Ok(Json(json!({ "unregistered": name })))
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::NotFound(_) => ApiError::NotFound(e.to_string()),
        RegistryError::NameTaken(_) => ApiError::Conflict(e.to_string()),
        RegistryError::InvalidName(_) | RegistryError::InvalidAddress(_) => {
            ApiError::BadRequest(e.to_string())
        }
    }
}

async fn deploy_version(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let runtime = &app.runtime;
    match runtime.deploy_version(&name, &body).await {
        Ok(service) => {
            let routes: Vec<String> = service.routes.iter().map(|r| r.to_string()).collect();
            let body =
                json!({ "name": service.name, "version": service.version, "routes": routes });
            Ok((StatusCode::CREATED, Json(body)))
        }
        Err(e) => {
            runtime.log_rejected(&name, &e);
            Err(deploy_error(e))
        }
    }
}

async fn list_versions(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = app.runtime.versions(&name).map_err(deploy_error)?;
    Ok(Json(json!({ "name": name, "versions": versions })))
}

/// A deployed service's limits, grants, requests in flight and the count of
/// every limit it hit (admin).
async fn service_stats(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.runtime
        .stats(&name)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no service named {name:?} is deployed")))
}

/// A service's private store as JSON lines (admin).
async fn export_data(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let db = store_of(&app, &service)?;
    let lines = db.export().map_err(|e| ApiError::Internal(e.to_string()))?;
    let msg = format!("exported the store of {service} ({} bytes)", lines.len());
    app.runtime.core().log_host(msg);
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        lines,
    ))
}

/// Loads JSON lines into a service's private store, all or nothing (admin).
async fn import_data(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let db = store_of(&app, &service)?;
    let imported = db.import(&body).await.map_err(|e| match e {
        ImportError::Line(..) => ApiError::BadRequest(e.to_string()),
        ImportError::Store(e @ StoreError::QuotaExceeded(_)) => {
            ApiError::PayloadTooLarge(e.to_string())
        }
        ImportError::Store(e) => ApiError::Internal(e.to_string()),
    })?;
    let msg = format!("imported {imported} records into the store of {service}");
    app.runtime.core().log_host(msg);
    Ok(Json(json!({ "service": service, "imported": imported })))
}

fn store_of(app: &App, service: &str) -> Result<Arc<crate::store::Db>, ApiError> {
    crate::registry::validate_service_name(service)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    app.runtime
        .core()
        .stores
        .of(service)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Deserialize, Default)]
struct Rollback {
    /// Digest (or unique prefix) to switch to; default: the previous version.
    to: Option<String>,
}

async fn rollback(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // An empty body means "the previous version".
    let req: Rollback = if body.iter().all(u8::is_ascii_whitespace) {
        Rollback::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let service = app
        .runtime
        .rollback(&name, req.to.as_deref())
        .await
        .map_err(deploy_error)?;
    Ok(Json(
        json!({ "name": service.name, "version": service.version }),
    ))
}

fn deploy_error(e: DeployError) -> ApiError {
    match e {
        DeployError::UnknownService(_) | DeployError::UnknownVersion(..) => {
            ApiError::NotFound(e.to_string())
        }
        DeployError::NameTaken { .. } | DeployError::Route { .. } => {
            ApiError::Conflict(e.to_string())
        }
        DeployError::Load(_) | DeployError::WrongName { .. } | DeployError::AmbiguousVersion(_) => {
            ApiError::BadRequest(e.to_string())
        }
        DeployError::Record(_) => ApiError::Internal(e.to_string()),
    }
}

/// Query string of `GET /_hms/events`. (Not `#[serde(flatten)]` of
/// [`Query`]: flattening loses number parsing in query strings.)
#[derive(Deserialize)]
struct EventParams {
    service: Option<String>,
    trace: Option<String>,
    level: Option<crate::audit::Level>,
    after: Option<u64>,
    limit: Option<usize>,
    /// Seconds to wait for new events when there are none yet (long-poll).
    #[serde(default)]
    wait: Option<u64>,
}

async fn events(
    _: Admin,
    State(app): State<Arc<App>>,
    params: Result<QueryParams<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let QueryParams(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = Query {
        service: params.service,
        trace: params.trace,
        level: params.level,
        after: params.after,
        limit: params.limit,
    };
    let audit = app.runtime.core().audit.clone();
    // Everything logged before this read is part of it (the writer may be
    // holding events nobody has flushed yet).
    audit
        .flush()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut updates = audit.subscribe();
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(params.wait.unwrap_or(0)).min(MAX_WAIT);
    loop {
        let (a, q) = (audit.clone(), query.clone());
        let found = tokio::task::spawn_blocking(move || a.query(&q))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(json!({ "events": found })));
        }
        // Nothing yet: wait for the next durable commit, or the deadline.
        if tokio::time::timeout_at(deadline, updates.changed())
            .await
            .is_err()
        {
            return Ok(Json(json!({ "events": [] })));
        }
    }
}
