//! Core's service registry: service name → where it is served.
//!
//! Deployed components are registered by the host as they load; external
//! (non-wasm) services register themselves with a TTL and re-register as a
//! heartbeat. Reads are lock-free (`ArcSwap` snapshot) because report-style
//! services discover on every request; writes copy the map, which is fine for
//! a registry that changes on deploys and heartbeats, not per request.
//!
//! In a cluster, a component deployed here that the placement puts on other
//! hosts is **withheld**: it keeps its name (nobody may register it as
//! external), but this host does not list or discover it, so discovery
//! ([`crate::core::Core::discover`]) finds it on a host that serves it.

use crate::base::clock::unix_secs;
use crate::core::names::validate_service_name;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a registration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("invalid service name {0}")]
    InvalidName(String),
    #[error("service {0:?} is served by a deployed component and cannot be registered externally")]
    NameTaken(String),
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("no service named {0:?} is registered")]
    NotFound(String),
}

/// How a service is provided.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A WebAssembly component served by this host.
    Component,
    /// A service elsewhere that registered itself.
    External,
}

/// One registered service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Content digest of a component, or what an external service reported.
    pub version: String,
    /// Routes a component serves (empty for external services).
    pub routes: Vec<String>,
    /// Unix seconds of the latest registration.
    pub registered_at: u64,
    /// Unix seconds after which an external registration lapses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The component that registered this external service; absent when an
    /// operator did (admin API). Components can only be sent to addresses
    /// registered by a component if those are public (see `dispatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
}

/// How long a cluster host serves an external registration made through it
/// from its own copy, waiting for the cluster to have it (the database
/// answers or fails within 3 s).
pub const SHARE_GRACE: Duration = Duration::from_secs(5);

/// The registry. Cheap to share behind an `Arc`.
pub struct Registry {
    /// Where this host serves; the endpoint of every deployed component.
    local: SocketAddr,
    /// Registered on this host: its components, and external services
    /// registered through it.
    entries: ArcSwap<BTreeMap<String, Entry>>,
    /// In a cluster: the external services registered through any host
    /// (as last read, every heartbeat).
    shared: ArcSwap<BTreeMap<String, Entry>>,
    /// What readers see: `entries` over `shared`.
    visible: ArcSwap<BTreeMap<String, Entry>>,
    /// Components deployed here but placed on other hosts.
    withheld: ArcSwap<std::collections::BTreeSet<String>>,
    writer: Mutex<()>,
}

impl Registry {
    /// A registry for a host listening on `local`. An unspecified address
    /// (`0.0.0.0`) is advertised as loopback, where this host surely answers.
    pub fn new(local: SocketAddr) -> Registry {
        let mut local = local;
        if local.ip().is_unspecified() {
            local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Registry {
            local,
            entries: ArcSwap::from_pointee(BTreeMap::new()),
            shared: ArcSwap::from_pointee(BTreeMap::new()),
            visible: ArcSwap::from_pointee(BTreeMap::new()),
            withheld: ArcSwap::from_pointee(Default::default()),
            writer: Mutex::new(()),
        }
    }

    /// The address components are advertised at.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Registers (or re-registers, on a new version) a deployed component.
    pub fn register_component(&self, name: &str, version: &str, routes: Vec<String>) {
        let entry = Entry {
            name: name.to_string(),
            kind: Kind::Component,
            url: format!("http://{}", self.local),
            host: self.local.ip().to_string(),
            port: self.local.port(),
            version: version.to_string(),
            routes,
            registered_at: unix_secs(),
            expires_at: None,
            registered_by: None,
        };
        self.update(|map| {
            map.insert(name.to_string(), entry);
        });
    }

    /// Registers an external service for `ttl` (`None`: until removed), on
    /// behalf of component `by`, or of an operator (`None`). A component
    /// cannot take over a name that an operator or another component holds.
    pub fn register_external(
        &self,
        name: &str,
        host: &str,
        port: u16,
        version: &str,
        ttl: Option<Duration>,
        by: Option<&str>,
    ) -> Result<Entry, RegistryError> {
        validate_service_name(name).map_err(|e| RegistryError::InvalidName(e.0))?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !host_ok || port == 0 {
            return Err(RegistryError::InvalidAddress(format!(
                "{host:?} port {port}"
            )));
        }
        if let Some(e) = self.live(name)
            && (e.kind == Kind::Component || (by.is_some() && e.registered_by.as_deref() != by))
        {
            return Err(RegistryError::NameTaken(name.to_string()));
        }
        let registered_at = unix_secs();
        let bracketed = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let entry = Entry {
            name: name.to_string(),
            kind: Kind::External,
            url: format!("http://{bracketed}:{port}"),
            host: host.to_string(),
            port,
            version: version.to_string(),
            routes: Vec::new(),
            registered_at,
            expires_at: ttl.map(|t| registered_at + t.as_secs().max(1)),
            registered_by: by.map(str::to_string),
        };
        let stored = entry.clone();
        self.update(move |map| {
            map.insert(stored.name.clone(), stored);
        });
        Ok(entry)
    }

    /// Removes a service.
    pub fn unregister(&self, name: &str) -> Result<(), RegistryError> {
        if self.live(name).is_none() {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        let _ = self.shared.rcu(|shared| {
            let mut shared = BTreeMap::clone(shared);
            shared.remove(name);
            shared
        });
        self.update(|map| {
            map.remove(name);
        });
        Ok(())
    }

    /// The registration of `name` unless lapsed, withheld or not.
    fn live(&self, name: &str) -> Option<Entry> {
        let now = unix_secs();
        self.visible
            .load()
            .get(name)
            .filter(|e| e.expires_at.is_none_or(|t| t > now))
            .cloned()
    }

    /// Where `name` is served, unless unknown, lapsed or withheld.
    pub fn get(&self, name: &str) -> Option<Entry> {
        self.live(name)
            .filter(|e| !self.withheld.load().contains(&e.name))
    }

    /// Every live registration this host serves, by name.
    pub fn list(&self) -> Vec<Entry> {
        let now = unix_secs();
        let withheld = self.withheld.load();
        self.visible
            .load()
            .values()
            .filter(|e| e.expires_at.is_none_or(|t| t > now) && !withheld.contains(&e.name))
            .cloned()
            .collect()
    }

    /// The components deployed here that the placement puts elsewhere:
    /// neither listed nor discovered here, their names still taken.
    pub fn set_withheld(&self, names: std::collections::BTreeSet<String>) {
        self.withheld.store(Arc::new(names));
    }

    /// The live external registration at `host:port`, if any (preferring
    /// one an operator made).
    pub fn external_endpoint(&self, host: &str, port: u16) -> Option<Entry> {
        let now = unix_secs();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let entries = self.visible.load();
        let mut found: Vec<&Entry> = entries
            .values()
            .filter(|e| {
                e.kind == Kind::External
                    && e.port == port
                    && e.host.eq_ignore_ascii_case(host)
                    && e.expires_at.is_none_or(|t| t > now)
            })
            .collect();
        found.sort_by_key(|e| e.registered_by.is_some());
        found.first().map(|e| (*e).clone())
    }

    fn update(&self, f: impl FnOnce(&mut BTreeMap<String, Entry>)) {
        // Writers serialise on a mutex and publish a new snapshot; readers
        // never wait for them.
        let _writer = crate::base::sync::lock(&self.writer);
        let mut map = BTreeMap::clone(&self.entries.load());
        f(&mut map);
        self.entries.store(Arc::new(map));
        self.publish();
    }

    /// In a cluster: the external services registered anywhere (read each
    /// heartbeat), which are then the truth. An external registration made
    /// through this host is served from this host's own copy only until the
    /// cluster has it: once shared, or [`SHARE_GRACE`] after it was made
    /// without reaching the cluster (it was removed through another host,
    /// or the database was unreachable), the cluster's answer stands.
    pub fn set_shared(&self, externals: impl IntoIterator<Item = Entry>) {
        let _writer = crate::base::sync::lock(&self.writer);
        let shared: BTreeMap<String, Entry> = externals
            .into_iter()
            .filter(|e| e.kind == Kind::External)
            .map(|e| (e.name.clone(), e))
            .collect();
        let now = unix_secs();
        let entries = self.entries.load_full();
        let settled = |e: &Entry| {
            e.kind == Kind::External
                && (shared.contains_key(&e.name) || e.registered_at + SHARE_GRACE.as_secs() < now)
        };
        let any_settled = entries.values().any(settled);
        if any_settled {
            let kept = entries
                .iter()
                .filter(|(_, e)| !settled(e))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.entries.store(Arc::new(kept));
        }
        if any_settled || **self.shared.load() != shared {
            self.shared.store(Arc::new(shared));
            self.publish();
        }
    }

    /// Recomputes what readers see (the writer mutex held).
    fn publish(&self) {
        let mut visible = BTreeMap::clone(&self.shared.load());
        visible.extend(
            self.entries
                .load()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        self.visible.store(Arc::new(visible));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new("0.0.0.0:8080".parse().unwrap())
    }

    #[test]
    fn external_services_of_the_cluster_are_seen_and_this_hosts_own_win() {
        let r = registry();
        let elsewhere = Registry::new("10.0.0.2:8080".parse().unwrap());
        let shared = elsewhere
            .register_external("stats", "10.9.9.9", 80, "2", None, None)
            .unwrap();
        let lapsed = elsewhere
            .register_external(
                "old",
                "10.9.9.8",
                80,
                "1",
                Some(Duration::from_secs(1)),
                None,
            )
            .unwrap();
        let lapsed = Entry {
            expires_at: Some(1),
            ..lapsed
        };
        r.set_shared([shared.clone(), lapsed]);
        assert_eq!(r.get("stats"), Some(shared.clone()));
        assert_eq!(r.get("old"), None, "lapsed by its TTL");
        assert_eq!(r.external_endpoint("10.9.9.9", 80), Some(shared));
        assert_eq!(r.list().len(), 1);
        // A component cannot take a name the cluster has.
        assert_eq!(
            r.register_external("stats", "1.2.3.4", 80, "x", None, Some("svc")),
            Err(RegistryError::NameTaken("stats".into()))
        );
        r.register_external("stats", "10.1.1.1", 81, "3", None, None)
            .unwrap();
        assert_eq!(
            r.get("stats").unwrap().port,
            81,
            "this host's own, until shared"
        );
        // The cluster has it now: its copy stands.
        let ours = r.get("stats").unwrap();
        r.set_shared([ours.clone()]);
        assert_eq!(r.get("stats"), Some(ours));
        // Removed through another host: gone here at the next read.
        r.set_shared([]);
        assert_eq!(r.get("stats"), None);
        // Made here, not yet in the cluster: kept through the grace.
        r.register_external("fresh", "10.1.1.2", 80, "1", None, None)
            .unwrap();
        r.set_shared([]);
        assert!(r.get("fresh").is_some());
        r.unregister("fresh").unwrap();
        assert!(r.list().is_empty());
    }

    #[test]
    fn components_are_served_locally() {
        let r = registry();
        assert_eq!(r.local_addr().to_string(), "127.0.0.1:8080");
        r.register_component(
            "identity-service",
            "sha256:abc",
            vec!["/identity/...".into()],
        );
        let e = r.get("identity-service").unwrap();
        assert_eq!(
            (e.url.as_str(), e.host.as_str(), e.port),
            ("http://127.0.0.1:8080", "127.0.0.1", 8080)
        );
        assert_eq!(e.kind, Kind::Component);
        assert_eq!(e.routes, vec!["/identity/...".to_string()]);
        assert!(r.get("nobody").is_none());
    }

    #[test]
    fn external_services_register_and_cannot_shadow_components() {
        let r = registry();
        r.register_component("identity-service", "v", vec![]);
        assert_eq!(
            r.register_external("identity-service", "evil.example", 80, "1", None, None)
                .unwrap_err(),
            RegistryError::NameTaken("identity-service".into())
        );
        let e = r
            .register_external("legacy-db", "10.1.2.3", 5432, "9.6", None, None)
            .unwrap();
        assert_eq!(e.url, "http://10.1.2.3:5432");
        assert!(r.external_endpoint("10.1.2.3", 5432).is_some());
        assert!(r.external_endpoint("10.1.2.3", 5433).is_none());
        let v6 = r
            .register_external("v6", "::1", 81, "1", None, None)
            .unwrap();
        assert_eq!(v6.url, "http://[::1]:81");
        assert!(r.external_endpoint("[::1]", 81).is_some());
        assert!(r.register_external("bad", "", 80, "1", None, None).is_err());
        assert!(
            r.register_external("bad", "host/x", 80, "1", None, None)
                .is_err()
        );
        assert!(r.register_external("bad", "h", 0, "1", None, None).is_err());
        assert!(matches!(
            r.register_external("Bad", "h", 1, "1", None, None),
            Err(RegistryError::InvalidName(_))
        ));
        assert_eq!(r.list().len(), 3);
        r.unregister("legacy-db").unwrap();
        assert!(r.get("legacy-db").is_none());
        assert_eq!(
            r.unregister("legacy-db").unwrap_err(),
            RegistryError::NotFound("legacy-db".into())
        );
    }

    #[test]
    fn a_component_cannot_take_over_a_name_it_did_not_register() {
        let r = registry();
        r.register_external("stats", "10.0.0.1", 80, "1", None, None)
            .unwrap();
        let taken = r.register_external("stats", "203.0.113.9", 80, "1", None, Some("evil"));
        assert_eq!(taken.unwrap_err(), RegistryError::NameTaken("stats".into()));
        r.register_external("mine", "203.0.113.9", 80, "1", None, Some("a"))
            .unwrap();
        assert!(
            r.register_external("mine", "203.0.113.10", 80, "2", None, Some("b"))
                .is_err()
        );
        let renewed = r.register_external("mine", "203.0.113.10", 80, "2", None, Some("a"));
        assert_eq!(renewed.unwrap().registered_by.as_deref(), Some("a"));
        // An operator may always replace a registration.
        r.register_external("mine", "10.0.0.2", 80, "3", None, None)
            .unwrap();
        assert_eq!(
            r.external_endpoint("10.0.0.2", 80).unwrap().registered_by,
            None
        );
    }

    #[test]
    fn a_withheld_component_is_not_discovered_and_keeps_its_name() {
        let r = registry();
        r.register_component("identity-service", "v", vec![]);
        r.set_withheld(["identity-service".to_string()].into());
        assert!(r.get("identity-service").is_none());
        assert!(r.list().is_empty());
        assert_eq!(
            r.register_external(
                "identity-service",
                "203.0.113.9",
                80,
                "1",
                None,
                Some("evil")
            )
            .unwrap_err(),
            RegistryError::NameTaken("identity-service".into())
        );
        r.set_withheld(Default::default());
        assert!(r.get("identity-service").is_some());
    }

    #[test]
    fn registrations_lapse_after_their_ttl() {
        let r = registry();
        let e = r
            .register_external("svc", "h", 1, "1", Some(Duration::from_secs(30)), None)
            .unwrap();
        assert_eq!(e.expires_at, Some(e.registered_at + 30));
        assert!(r.get("svc").is_some());
        // Backdate the registration instead of sleeping.
        r.update(|m| m.get_mut("svc").unwrap().expires_at = Some(unix_secs() - 1));
        assert!(r.get("svc").is_none());
        assert!(r.list().is_empty());
        assert!(r.external_endpoint("h", 1).is_none());
    }
}
