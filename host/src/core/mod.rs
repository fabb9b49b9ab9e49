//! Core: the native services every component imports through WIT —
//! authentication ([`auth`]), the audit log ([`audit`]), the service
//! registry ([`registry`]) and each service's private store ([`store`]) —
//! plus the rules they share ([`names`], [`ratelimit`], [`trace`]).
//!
//! Core depends on nothing above it: not on the runtime, the HTTP front or
//! the run configuration. Each capability keeps its storage behind its own
//! module, so a second backend can sit beside SQLite.

pub mod audit;
pub mod auth;
pub mod cluster;
pub mod metrics;
pub mod names;
pub mod ratelimit;
pub mod registry;
pub mod store;
pub mod telemetry;
pub mod trace;

use crate::core::audit::{AuditLog, Level, NewEvent};
use crate::core::auth::Auth;
use crate::core::registry::Registry;
use crate::core::store::Stores;
use crate::core::trace::Trace;
use std::sync::Arc;

/// Service name the host uses for its own events.
pub const HOST_SERVICE: &str = "hms-host";

/// The native Core services, shared by every request (cheap to clone).
#[derive(Clone)]
pub struct Core {
    pub auth: Arc<Auth>,
    pub audit: AuditLog,
    pub registry: Arc<Registry>,
    /// Every service's private store.
    pub stores: Arc<Stores>,
    /// This host's id and the URL other hosts call it by.
    pub host: Arc<HostIdentity>,
    /// The cluster this host belongs to; `None`: standalone.
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// What `/_hms/metrics` serves.
    pub metrics: Arc<metrics::Metrics>,
    /// Where service hops' spans go (`--otlp-endpoint`).
    pub telemetry: Arc<telemetry::Telemetry>,
}

/// Who this host is.
#[derive(Debug, Clone)]
pub struct HostIdentity {
    pub id: String,
    pub url: String,
}

impl Core {
    /// Why this host must not serve requests now, if it must not: it cannot
    /// store audit events, or (in a cluster) it has lost the database, so
    /// it could neither audit nor see revocations.
    pub fn unavailable(&self) -> Option<String> {
        if let Some(why) = self.audit.failing() {
            return Some(format!("the audit log cannot be written: {why}"));
        }
        if self.cluster.is_some() && !self.auth.is_current() {
            return Some(
                "this host cannot reach the cluster database, which holds its audit log".into(),
            );
        }
        None
    }

    /// Where to call service `name`: this host when it serves it (the
    /// registry), else, in a cluster, a live host that serves it (the
    /// cluster view, hosts taking turns), else nowhere.
    pub fn discover(&self, name: &str) -> Option<registry::Entry> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static TURN: AtomicUsize = AtomicUsize::new(0);
        self.registry.get(name).or_else(|| {
            let turn = TURN.fetch_add(1, Ordering::Relaxed);
            self.cluster.as_ref()?.view().discover(name, turn)
        })
    }

    /// Appends an event for `service` within `trace`.
    pub fn log(&self, service: &str, trace: &Trace, level: Level, message: impl Into<String>) {
        trace.mark_logged();
        self.audit.append(NewEvent {
            service: service.to_string(),
            level,
            message: message.into(),
            trace_id: trace.id().to_string(),
        });
    }

    /// Appends an event of the host itself (deploys, operations).
    pub fn log_host(&self, message: impl Into<String>) {
        self.log(
            HOST_SERVICE,
            &Trace::from_traceparent(None),
            Level::Info,
            message,
        );
    }
}
