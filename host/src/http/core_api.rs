//! Core's own HTTP API, under the reserved `/_hms` prefix: health, token
//! exchange, public keys, API keys, the registry and the audit log. JSON in
//! and out; errors are [`ApiError`]s. Admin operations need the admin
//! credential as `Authorization: Bearer <admin token>`.

use crate::api::error::{ApiError, ErrorBody};
use crate::api::types::*;
use crate::core::audit::{Cursor, Query};
use crate::core::auth::{AuthError, Presenter};
use crate::core::registry::RegistryError;
use crate::core::store::{ImportError, StoreError};
use crate::http::app::{App, audit_refusal, audited};
use crate::http::error::ApiJson;
use crate::runtime::DeployError;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequestParts, OriginalUri, Path, Query as QueryParams, State,
};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest component upload accepted; the example services are ~150 KiB.
const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Largest data import accepted (JSON lines).
const MAX_IMPORT_BYTES: usize = 256 << 20;

/// How often a long-poll in a cluster looks for other hosts' events.
const CLUSTER_POLL: Duration = Duration::from_millis(250);
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
        .route("/audit/export", get(audit_export))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/cluster", get(cluster_status))
        .route("/placement", get(list_placement))
        .route("/placement/{service}", put(place).delete(unplace))
        // A known endpoint asked with a method it does not serve: 405 with
        // `Allow` (axum sets it) and the API's error body.
        .method_not_allowed_fallback(|method: Method, OriginalUri(uri): OriginalUri| async move {
            ApiError::MethodNotAllowed(format!("{method} is not served at {}", uri.path()))
        })
        .merge(crate::http::console::routes())
        .fallback(|| async { ApiError::NotFound("no such Core API endpoint".into()) })
        .layer(middleware::from_fn_with_state(app, audit_before_response))
}

/// Audit-before-response for the Core API: an action (a deploy, a rollback,
/// a key created or revoked, an import) is answered only once the events it
/// logged are durable. Reads answer at once. While the audit log cannot be
/// written (or, in a cluster, the database reached) an action is refused
/// before it is done: 503 `audit_unavailable` with `Retry-After`.
async fn audit_before_response(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    if !read_only && let Some(why) = app.runtime.core().unavailable() {
        app.runtime.core().metrics.refused("audit_unavailable");
        return ApiError::AuditUnavailable(why).into_response();
    }
    let response = next.run(req).await;
    if !read_only && let Err(refusal) = audited(&app).await {
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

/// The hosts of the cluster: id, URL, whether their lease holds (by the
/// database's clock), the age of their last heartbeat, what they serve. A
/// standalone host lists itself.
#[utoipa::path(get, path = "/_hms/cluster", tag = "cluster", security(("admin" = [])), responses(
    (status = 200, body = ClusterStatus), (status = 401, body = ErrorBody),
    (status = 503, description = "the cluster database cannot be reached", body = ErrorBody)))]
async fn cluster_status(
    _: Admin,
    State(app): State<Arc<App>>,
) -> Result<Json<ClusterStatus>, ApiError> {
    let core = app.runtime.core();
    let hosts = match &core.cluster {
        Some(cluster) => cluster
            .hosts()
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?,
        None => vec![HostInfo {
            id: core.host.id.clone(),
            url: core.host.url.clone(),
            alive: true,
            last_heartbeat_ms_ago: 0,
            services: app.runtime.service_versions(),
            refused: Default::default(),
        }],
    };
    Ok(Json(ClusterStatus { hosts }))
}

/// Every service with a placement; any other runs on every host. A
/// standalone host has none.
#[utoipa::path(get, path = "/_hms/placement", tag = "cluster", security(("admin" = [])), responses(
    (status = 200, body = PlacementList), (status = 401, body = ErrorBody),
    (status = 503, description = "the cluster database cannot be reached", body = ErrorBody)))]
async fn list_placement(
    _: Admin,
    State(app): State<Arc<App>>,
) -> Result<Json<PlacementList>, ApiError> {
    let placement = match &app.runtime.core().cluster {
        Some(cluster) => cluster
            .placement()
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?,
        None => Default::default(),
    };
    let placement = placement
        .into_iter()
        .map(|(service, hosts)| Placement {
            service,
            hosts: Some(hosts),
        })
        .collect();
    Ok(Json(PlacementList { placement }))
}

fn cluster_of(app: &App) -> Result<&Arc<crate::core::cluster::Cluster>, ApiError> {
    app.runtime.core().cluster.as_ref().ok_or_else(|| {
        ApiError::BadRequest(
            "placement is for hosts of a cluster (hms-host run --cluster ...)".into(),
        )
    })
}

/// Limits a service to the given hosts of the cluster: the others stop
/// serving it (and advertising it) within a heartbeat, and calls to it from
/// them cross to these hosts.
#[utoipa::path(put, path = "/_hms/placement/{service}", tag = "cluster", security(("admin" = [])),
    params(("service" = String, Path)), request_body = PlacementRequest, responses(
    (status = 200, body = Placement),
    (status = 400, description = "no hosts, a host id that never joined, a bad name, or a standalone host", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 503, description = "the cluster database cannot be reached", body = ErrorBody)))]
async fn place(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
    ApiJson(req): ApiJson<PlacementRequest>,
) -> Result<Json<Placement>, ApiError> {
    use crate::core::cluster::PlacementError;
    let hosts = cluster_of(&app)?
        .place(&service, &req.hosts)
        .await
        .map_err(|e| match e {
            PlacementError::Invalid(_) | PlacementError::UnknownHosts(_) => {
                ApiError::BadRequest(e.to_string())
            }
            PlacementError::Database(e) => ApiError::Unavailable(e.to_string()),
        })?;
    app.runtime.core().log_host(format!(
        "placement of {service} set to {}",
        hosts.join(", ")
    ));
    Ok(Json(Placement {
        service,
        hosts: Some(hosts),
    }))
}

/// Clears a service's placement: every host serves it again (within a
/// heartbeat). Clearing a service without one changes nothing.
#[utoipa::path(delete, path = "/_hms/placement/{service}", tag = "cluster", security(("admin" = [])),
    params(("service" = String, Path)), responses(
    (status = 200, body = Placement), (status = 400, description = "a standalone host", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 503, description = "the cluster database cannot be reached", body = ErrorBody)))]
async fn unplace(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
) -> Result<Json<Placement>, ApiError> {
    let cleared = cluster_of(&app)?
        .unplace(&service)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if cleared {
        app.runtime
            .core()
            .log_host(format!("placement of {service} cleared: every host"));
    }
    Ok(Json(Placement {
        service,
        hosts: None,
    }))
}

/// The generated OpenAPI document of this API.
#[utoipa::path(get, path = "/_hms/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        crate::http::openapi::document(),
    )
}

/// Whether the host serves: 200 once every component given at start is
/// deployed, 503 `loading` before, and 503 `degraded` (with the reason)
/// while it refuses requests because it cannot audit them.
#[utoipa::path(get, path = "/_hms/health", tag = "meta", responses(
    (status = 200, body = Health),
    (status = 503, description = "still loading, or degraded", body = Health)))]
async fn health(State(app): State<Arc<App>>) -> (StatusCode, Json<Health>) {
    let services = app.runtime.service_names();
    let reason = app.runtime.core().unavailable();
    let (status, word) = match (app.is_ready(), &reason) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "loading"),
        (true, Some(_)) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
        (true, None) => (StatusCode::OK, "ok"),
    };
    let health = Health {
        status: word.to_string(),
        reason,
        services,
    };
    (status, Json(health))
}

/// Exchanges an API key for a token. Failed attempts are throttled by the
/// client's address (the TCP peer: headers such as `X-Forwarded-For` are
/// anyone's to write); a throttled address gets 429 with `Retry-After`.
#[utoipa::path(post, path = "/_hms/auth/token", tag = "auth", request_body = TokenRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 400, body = ErrorBody), (status = 401, description = "unknown, malformed or revoked key", body = ErrorBody),
    (status = 429, description = "too many failures from this address", body = ErrorBody)))]
async fn token(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Result<ApiJson<TokenRequest>, ApiError>,
) -> Result<Json<TokenResponse>, ApiError> {
    let auth = &app.runtime.core().auth;
    let from = Presenter::address(peer.ip());
    if let Err(e) = auth.admit(&from) {
        app.runtime.core().metrics.refused("rate_limited");
        return Err(auth_error(e));
    }
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
    Ok(Json(TokenResponse {
        token: issued.token,
        token_type: "Bearer".into(),
        expires_at: issued.expires_at,
    }))
}

/// The public keys that verify tokens (JWKS): verify tokens offline.
#[utoipa::path(get, path = "/_hms/auth/jwks", tag = "auth", responses((status = 200, body = Jwks)))]
async fn jwks(State(app): State<Arc<App>>) -> Json<Jwks> {
    Json(app.runtime.core().auth.jwks())
}

/// Creates an API key for a service; the key is shown only in this answer.
#[utoipa::path(post, path = "/_hms/keys", tag = "auth", security(("admin" = [])),
    request_body = CreateKeyRequest, responses(
    (status = 201, body = CreatedKeyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_key(
    _: Admin,
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKeyResponse>), ApiError> {
    let key = app
        .runtime
        .core()
        .auth
        .create_key(&req.service)
        .await
        .map_err(auth_error)?;
    let created = CreatedKeyResponse {
        id: key.id,
        service: key.service,
        api_key: key.secret,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every API key, oldest first (never their secrets).
#[utoipa::path(get, path = "/_hms/keys", tag = "auth", security(("admin" = [])), responses(
    (status = 200, body = KeyList), (status = 401, body = ErrorBody)))]
async fn list_keys(_: Admin, State(app): State<Arc<App>>) -> Result<Json<KeyList>, ApiError> {
    let keys = app
        .runtime
        .core()
        .auth
        .list_keys()
        .await
        .map_err(auth_error)?;
    Ok(Json(KeyList { keys }))
}

/// Revokes an API key: the key and every token issued from it stop working.
#[utoipa::path(delete, path = "/_hms/keys/{id}", tag = "auth", security(("admin" = [])),
    params(("id" = String, Path, description = "API key id")), responses(
    (status = 200, body = Revoked), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    app.runtime
        .core()
        .auth
        .revoke_key(&id)
        .await
        .map_err(auth_error)?;
    Ok(Json(Revoked { revoked: id }))
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
            retry_after_secs: crate::core::ratelimit::retry_after_secs(retry_after),
        },
        e @ AuthError::InvalidService(_) => ApiError::BadRequest(e.to_string()),
        e @ (AuthError::Stale | AuthError::Unavailable(_)) => ApiError::Unavailable(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// The registry: deployed components and external services.
#[utoipa::path(get, path = "/_hms/services", tag = "registry", responses((status = 200, body = ServiceList)))]
async fn list_services(State(app): State<Arc<App>>) -> Json<ServiceList> {
    Json(ServiceList {
        services: app.runtime.core().registry.list(),
    })
}

/// Registers an external service; re-POST before the TTL ends as a heartbeat.
#[utoipa::path(post, path = "/_hms/services", tag = "registry", security(("admin" = [])),
    request_body = RegisterService, responses(
    (status = 201, body = Entry), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 409, description = "the name is a deployed component", body = ErrorBody)))]
async fn register_service(
    _: Admin,
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RegisterService>,
) -> Result<(StatusCode, Json<Entry>), ApiError> {
    let version = req.version.as_deref().unwrap_or("unknown");
    let ttl = req.ttl_seconds.map(Duration::from_secs);
    let entry = app
        .runtime
        .core()
        .registry
        .register_external(&req.name, &req.host, req.port, version, ttl, None)
        .map_err(registry_error)?;
    if let Some(cluster) = &app.runtime.core().cluster {
        cluster
            .share_external(&entry)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Removes an external registration.
#[utoipa::path(delete, path = "/_hms/services/{name}", tag = "registry", security(("admin" = [])),
    params(("name" = String, Path, description = "service name")), responses(
    (status = 200, body = Unregistered), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, description = "a deployed component, not an external registration", body = ErrorBody)))]
async fn unregister_service(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Unregistered>, ApiError> {
    let registry = &app.runtime.core().registry;
    if registry
        .get(&name)
        .is_some_and(|e| e.kind == crate::core::registry::Kind::Component)
    {
        return Err(ApiError::Conflict(format!(
            "{name} is a deployed component, not an external registration"
        )));
    }
    registry.unregister(&name).map_err(registry_error)?;
    if let Some(cluster) = &app.runtime.core().cluster {
        cluster
            .withdraw_external(&name)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }
    Ok(Json(Unregistered { unregistered: name }))
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

/// Validates a new version (the `.wasm` as the body) and swaps it in, or
/// deploys a new service; the running version keeps serving if refused.
#[utoipa::path(post, path = "/_hms/services/{name}/versions", tag = "deployments", security(("admin" = [])),
    params(("name" = String, Path, description = "service name")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "the component"),
    responses((status = 201, body = Deployed), (status = 400, description = "refused, with the reason", body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn deploy_version(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Deployed>), ApiError> {
    let runtime = &app.runtime;
    match runtime.deploy_version(&name, &body).await {
        Ok(service) => {
            let routes: Vec<String> = service.routes.iter().map(|r| r.to_string()).collect();
            let deployed = Deployed {
                name: service.name.clone(),
                version: service.version.clone(),
                routes: Some(routes),
            };
            Ok((StatusCode::CREATED, Json(deployed)))
        }
        Err(e) => {
            runtime.log_rejected(&name, &e);
            Err(deploy_error(e))
        }
    }
}

/// Every version of a service deployed, oldest first, across restarts.
#[utoipa::path(get, path = "/_hms/services/{name}/versions", tag = "deployments",
    params(("name" = String, Path, description = "service name")), responses(
    (status = 200, body = VersionList), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = app.runtime.versions(&name).await.map_err(deploy_error)?;
    Ok(Json(VersionList { name, versions }))
}

/// A deployed service's limits, grants, requests in flight and the count of
/// every limit it hit.
#[utoipa::path(get, path = "/_hms/services/{name}/stats", tag = "deployments", security(("admin" = [])),
    params(("name" = String, Path, description = "service name")), responses(
    (status = 200, body = ServiceStats), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn service_stats(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<ServiceStats>, ApiError> {
    app.runtime
        .stats(&name)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no service named {name:?} is deployed")))
}

/// A service's private store as JSON lines `{"key","value"}` (`value_base64`
/// for values that are not UTF-8).
#[utoipa::path(get, path = "/_hms/data/{service}", tag = "data", security(("admin" = [])),
    params(("service" = String, Path, description = "service name")), responses(
    (status = 200, description = "JSON lines", content_type = "application/x-ndjson", body = String),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn export_data(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let db = store_of(&app, &service)?;
    let lines = db
        .export()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let msg = format!("exported the store of {service} ({} bytes)", lines.len());
    app.runtime.core().log_host(msg);
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        lines,
    ))
}

/// Sets every record of JSON lines in a service's private store, all or
/// nothing (existing keys are replaced).
#[utoipa::path(post, path = "/_hms/data/{service}", tag = "data", security(("admin" = [])),
    params(("service" = String, Path, description = "service name")),
    request_body(content = String, content_type = "application/x-ndjson", description = "JSON lines as exported"),
    responses((status = 200, body = Imported), (status = 400, description = "names the bad line", body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 413, description = "over the store's quota", body = ErrorBody)))]
async fn import_data(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(service): Path<String>,
    body: Bytes,
) -> Result<Json<Imported>, ApiError> {
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
    Ok(Json(Imported { service, imported }))
}

fn store_of(app: &App, service: &str) -> Result<Arc<crate::core::store::Db>, ApiError> {
    crate::core::names::validate_service_name(service)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    app.runtime
        .core()
        .stores
        .of(service)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Switches a service to an earlier version (default: the previous one).
#[utoipa::path(post, path = "/_hms/services/{name}/rollback", tag = "deployments", security(("admin" = [])),
    params(("name" = String, Path, description = "service name")), request_body = RollbackRequest,
    responses((status = 200, body = Deployed), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
async fn rollback(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Deployed>, ApiError> {
    // An empty body means "the previous version".
    let req: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let service = app
        .runtime
        .rollback(&name, req.to.as_deref())
        .await
        .map_err(deploy_error)?;
    Ok(Json(Deployed {
        name: service.name.clone(),
        version: service.version.clone(),
        routes: None,
    }))
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
        DeployError::Cluster(_) => ApiError::Unavailable(e.to_string()),
    }
}

/// Audit events in sequence order; with `wait`, a long-poll for new ones.
#[utoipa::path(get, path = "/_hms/events", tag = "audit", security(("admin" = [])), params(EventQuery),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn events(
    _: Admin,
    State(app): State<Arc<App>>,
    params: Result<QueryParams<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let QueryParams(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let core = app.runtime.core();
    let audit = core.audit.clone();
    let cursor = match (params.cursor, params.after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give either cursor or after, not both".into(),
            ));
        }
        (Some(text), None) => text
            .parse::<Cursor>()
            .map_err(|e| ApiError::BadRequest(format!("cursor: {e}")))?,
        (None, Some(_)) if core.cluster.is_some() => {
            return Err(ApiError::BadRequest(
                "after is the seq of one host's chain: in a cluster, page with cursor".into(),
            ));
        }
        (None, Some(seq)) => Cursor::at(audit.host(), seq),
        (None, None) => Cursor::default(),
    };
    let mut query = Query {
        service: params.service,
        trace: params.trace,
        level: params.level,
        host: params.host,
        cursor,
        limit: params.limit,
    };
    // Everything logged before this read is part of it (the writer may be
    // holding events nobody has flushed yet).
    audit.flush().await.map_err(audit_refusal)?;
    let mut updates = audit.subscribe();
    // Other hosts' commits are not announced here: a cluster read polls.
    let poll = match core.cluster {
        Some(_) => CLUSTER_POLL,
        None => MAX_WAIT,
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(params.wait.unwrap_or(0)).min(MAX_WAIT);
    loop {
        let found = audit.query(&query).await.map_err(audit_refusal)?;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            query.cursor.advance(&found);
            return Ok(Json(EventList {
                events: found,
                cursor: query.cursor.to_string(),
            }));
        }
        // Nothing yet: wait for the next durable commit, a poll, or the
        // deadline.
        let next = (tokio::time::Instant::now() + poll).min(deadline);
        let _ = tokio::time::timeout_at(next, updates.changed()).await;
    }
}

/// Every metric of this host in the Prometheus text format (0.0.4). Also
/// served without a credential on `--metrics-listen`, for scrapers.
#[utoipa::path(get, path = "/_hms/metrics", tag = "meta", security(("admin" = [])), responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
    (status = 401, body = ErrorBody)))]
async fn metrics(_: Admin, State(app): State<Arc<App>>) -> axum::response::Response {
    render_metrics(&app)
}

/// The metrics answer, for either listener.
pub(crate) fn render_metrics(app: &App) -> axum::response::Response {
    (
        [(
            http::header::CONTENT_TYPE,
            crate::core::metrics::CONTENT_TYPE,
        )],
        app.runtime.core().metrics.render(),
    )
        .into_response()
}

/// The audit log as a bundle of JSON lines, each chain in `seq` order with
/// its signed checkpoints, for `hms-host audit verify` (format: README,
/// "Audit log"). Streamed: a bundle that breaks off ends in an error.
#[utoipa::path(get, path = "/_hms/audit/export", tag = "audit", security(("admin" = [])), params(AuditExportQuery),
    responses((status = 200, description = "JSON lines", content_type = "application/x-ndjson", body = String),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn audit_export(
    _: Admin,
    State(app): State<Arc<App>>,
    params: Result<QueryParams<AuditExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let QueryParams(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let (Some(from), Some(to)) = (params.from_seq, params.to_seq)
        && from > to
    {
        return Err(ApiError::BadRequest(format!(
            "from_seq {from} is after to_seq {to}"
        )));
    }
    let audit = app.runtime.core().audit.clone();
    // Everything logged before the export is part of it.
    audit.flush().await.map_err(audit_refusal)?;
    let range = crate::core::audit::bundle::Range {
        host: params.host,
        from_seq: params.from_seq,
        to_seq: params.to_seq,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        if let Err(e) = crate::core::audit::bundle::export(&audit, &range, tx.clone()).await {
            tracing::error!("audit export broke off: {e}");
            let _ = tx.send(Err(e)).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// The OpenAPI description of every route above (see [`crate::http::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "hms-host Core API",
        description = "Core's own HTTP API under /_hms: health, token exchange, public keys, API keys, the registry, deployments, private stores and the audit log. Errors are always {\"code\",\"message\"} JSON."
    ),
    paths(
        health, openapi, metrics, token, jwks, create_key, list_keys, revoke_key, list_services,
        register_service, unregister_service, deploy_version, list_versions, rollback,
        service_stats, export_data, import_data, events, audit_export, cluster_status, list_placement,
        place, unplace
    ),
    modifiers(&AdminCredential)
)]
pub(super) struct ApiDoc;

/// Declares the admin bearer credential that `security(("admin" = []))` names.
struct AdminCredential;

impl utoipa::Modify for AdminCredential {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "the admin credential (hmsadmin_...), from <data-dir>/admin.token or HMS_ADMIN_TOKEN",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("admin", SecurityScheme::Http(scheme));
    }
}
