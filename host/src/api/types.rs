//! Request and response bodies of the Core API, one type per shape. Types
//! that Core itself owns (API keys, registry entries, audit events, the
//! JWKS, limits) are re-exported from where they live.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

pub use crate::config::Limits;
pub use crate::core::audit::{Event, Level};
pub use crate::core::auth::{Jwk, Jwks, KeyInfo};
pub use crate::core::cluster::HostInfo;
pub use crate::core::registry::{Entry, Kind};

/// `GET /_hms/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` once every component given at start is deployed, `loading`
    /// before; `degraded` while the host serves nothing because it cannot
    /// audit (or, in a cluster, has lost the database).
    pub status: String,
    /// Why the host is `degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Names of the deployed services.
    pub services: Vec<String>,
}

/// `POST /_hms/auth/token`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// An API key, `hms_<id>_<secret>`.
    pub api_key: String,
}

/// A token issued for an API key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The compact JWT (EdDSA).
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// `POST /_hms/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateKeyRequest {
    /// The service the key authenticates as.
    pub service: String,
}

/// A new API key; the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedKeyResponse {
    pub id: String,
    pub service: String,
    /// The complete key, `hms_<id>_<secret>`.
    pub api_key: String,
}

/// `GET /_hms/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// `DELETE /_hms/keys/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// The id of the revoked key.
    pub revoked: String,
}

/// `GET /_hms/services`: the registry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<Entry>,
}

/// `POST /_hms/services`: register an external service (re-POST before the
/// TTL ends as a heartbeat).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterService {
    pub name: String,
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub version: Option<String>,
    /// Seconds until the registration lapses unless renewed.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `DELETE /_hms/services/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Unregistered {
    pub unregistered: String,
}

/// A version now serving: `POST /_hms/services/{name}/versions` (with its
/// routes) and `POST /_hms/services/{name}/rollback` (without).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deployed {
    pub name: String,
    /// `sha256:<hex>` of the component.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
}

/// A version as listed to operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    pub version: String,
    /// Unix seconds of its latest deployment.
    pub deployed_at: u64,
    /// A file path, or `upload for <service>`.
    pub source: String,
    pub active: bool,
}

/// `GET /_hms/services/{name}/versions`: oldest first, across restarts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    pub name: String,
    pub versions: Vec<VersionInfo>,
}

/// `POST /_hms/services/{name}/rollback`; an empty body means the previous
/// version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RollbackRequest {
    /// Digest (or unique prefix) to switch to; default: the previous version.
    #[serde(default)]
    pub to: Option<String>,
}

/// `GET /_hms/services/{name}/stats`: a deployed service's limits, grants,
/// requests in flight and the count of every limit it hit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceStats {
    /// `host:port` destinations it may call beyond this host's services.
    pub allow_outbound: Vec<String>,
    /// Services allowed to call it through the host; `null`: any.
    pub callers: Option<Vec<String>>,
    /// Counter name → count since start: `requests`, `busy`,
    /// `forbidden_caller`, `headers_too_large`, `body_too_large`,
    /// `response_too_large`, `timeout`, `memory_limit`, `trap`,
    /// `outbound_denied`.
    pub counters: BTreeMap<String, u64>,
    /// Instances running now.
    pub in_flight: u32,
    /// Instances kept between requests now, for the next ones (0 unless
    /// `limits.requests_per_instance` is over 1).
    #[serde(default)]
    pub kept_instances: u32,
    pub limits: Limits,
    pub name: String,
    pub version: String,
}

/// `GET /_hms/cluster`: every host that joined, by id (a standalone host
/// lists itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    pub hosts: Vec<HostInfo>,
}

/// `PUT /_hms/placement/{service}`: the hosts the service may run on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlacementRequest {
    /// Ids of hosts that joined the cluster (at least one).
    pub hosts: Vec<String>,
}

/// Where one service runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Placement {
    pub service: String,
    /// The hosts it runs on, sorted; `null`: every host.
    pub hosts: Option<Vec<String>>,
}

/// `GET /_hms/placement`: every service with a placement (any other
/// service runs on every host).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlacementList {
    pub placement: Vec<Placement>,
}

/// `POST /_hms/data/{service}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Imported {
    pub service: String,
    /// Records set.
    pub imported: usize,
}

/// `GET /_hms/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    /// Where these events end: give it back as `cursor` to read on (the
    /// last `seq` seen of each host's chain, `HOST:SEQ,...`).
    pub cursor: String,
}

/// The query of `GET /_hms/audit/export`: which part of which chains.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    /// Only this host's chain (default: every chain the log holds).
    pub host: Option<String>,
    /// First `seq` of each chain (default 1).
    pub from_seq: Option<u64>,
    /// Last `seq` of each chain (default: its end).
    pub to_seq: Option<u64>,
}

/// The query of `GET /_hms/events`. (Not `#[serde(flatten)]`: flattening
/// loses number parsing in query strings.)
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events of this service.
    pub service: Option<String>,
    /// Only events of this trace id.
    pub trace: Option<String>,
    /// Only events at least this severe (`debug`, `info`, `warn`, `error`).
    pub level: Option<Level>,
    /// Only events of this host's chain.
    pub host: Option<String>,
    /// Only events after this cursor (the `cursor` of a previous answer).
    pub cursor: Option<String>,
    /// Only events of this host's own chain with a greater `seq` (standalone
    /// paging; in a cluster use `cursor`, which covers every host).
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Seconds to wait for new events when there are none yet (long-poll,
    /// at most 30).
    pub wait: Option<u64>,
}
