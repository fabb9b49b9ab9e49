//! Cluster membership: the hosts sharing one PostgreSQL, each holding its
//! row by a lease that the database's clock judges.
//!
//! A host claims its id at start (refused while another live process holds
//! it), renews its lease every heartbeat with the services it serves, and
//! gives the lease up when it stops. A lease that runs out only hides the
//! host: nothing is deleted because a host went quiet, and while the
//! database itself is unreachable nobody can judge, so nobody is declared
//! dead (the failure wasmCloud #5502 had with NATS).
//!
//! Every heartbeat also reads the cluster's **view** — every other host
//! with its lease, services and routes, and the **placement** of services
//! (`placement` table: service → the hosts it may run on; no row: every
//! host) — into a snapshot ([`Cluster::view`]) that discovery and
//! forwarding read without touching the database. A host applies the
//! placement to itself from the same snapshot, before it says what it
//! serves: so hosts pick a placement change up within a heartbeat.

use crate::base::postgres::{PgError, Target, bounded, error_text};
use crate::core::registry::{Entry, Kind};
use arc_swap::ArcSwap;
use deadpool_postgres::Pool;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Settings of cluster mode (`hms-host run --cluster ...`).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `postgres://USER@HOST:PORT/DB`.
    pub url: String,
    /// This host's id (`--host-id`); `None`: the one kept in the data
    /// directory, generated on first start.
    pub host_id: Option<String>,
    /// What other hosts call; default `http://` + the listening address.
    pub advertise_url: Option<String>,
    /// How often the lease is renewed.
    pub heartbeat: Duration,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

/// One host as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostInfo {
    pub id: String,
    /// What other hosts call.
    pub url: String,
    /// Its lease has not run out (by the database's clock).
    pub alive: bool,
    pub last_heartbeat_ms_ago: u64,
    /// Service name → version it serves.
    pub services: BTreeMap<String, String>,
    /// Service name → the cluster's version it refused to serve, and why
    /// (it keeps serving the one it had).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, Refusal>,
}

/// A version a host would not serve, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Refusal {
    pub version: String,
    pub error: String,
}

/// Another host as this one last read it (every heartbeat).
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub id: String,
    /// What to call it by.
    pub url: String,
    /// `url`'s host (lower case) and port, to recognise requests for it.
    pub authority: Option<(String, u16)>,
    /// Its lease held when it was read.
    pub alive: bool,
    /// Service name → version it serves.
    pub services: BTreeMap<String, String>,
    /// Service name → its routes, as that host serves them.
    pub routes: BTreeMap<String, Vec<String>>,
}

/// The cluster as this host last read it: the snapshot discovery,
/// forwarding and placement use between heartbeats.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Every other host that ever joined, by id.
    pub peers: Vec<Peer>,
    /// Service → the hosts it may run on; a service not listed runs on every host.
    pub placement: BTreeMap<String, Vec<String>>,
    /// External services registered through any host, not lapsed.
    pub externals: Vec<crate::core::registry::Entry>,
}

impl View {
    /// Whether `service` may run on host `id`.
    pub fn placed_on(&self, service: &str, id: &str) -> bool {
        self.placement
            .get(service)
            .is_none_or(|hosts| hosts.iter().any(|h| h == id))
    }

    /// The live hosts that serve `service`, at most `n`: `preferred` first
    /// when it is one of them, then the others in turn from `turn` (so
    /// successive calls spread over them).
    pub fn serving(
        &self,
        service: &str,
        preferred: Option<&str>,
        turn: usize,
        n: usize,
    ) -> Vec<&Peer> {
        let live: Vec<&Peer> = self
            .peers
            .iter()
            .filter(|p| p.alive && p.services.contains_key(service))
            .collect();
        let mut chosen: Vec<&Peer> = live
            .iter()
            .filter(|p| Some(p.id.as_str()) == preferred)
            .copied()
            .collect();
        let others: Vec<&Peer> = live
            .iter()
            .filter(|p| Some(p.id.as_str()) != preferred)
            .copied()
            .collect();
        for i in 0..others.len() {
            chosen.push(others[(turn + i) % others.len()]);
        }
        chosen.truncate(n);
        chosen
    }

    /// The host whose URL is `host:port` (`host` lower case, no brackets).
    pub fn peer_at(&self, host: &str, port: u16) -> Option<&Peer> {
        self.peers.iter().find(|p| {
            p.authority
                .as_ref()
                .is_some_and(|(h, p)| h == host && *p == port)
        })
    }

    /// A registry entry for `service` on a live host that serves it, the
    /// hosts taking turns by `turn`.
    pub fn discover(&self, service: &str, turn: usize) -> Option<Entry> {
        let peer = self.serving(service, None, turn, 1).into_iter().next()?;
        let (host, port) = peer.authority.clone()?;
        Some(Entry {
            name: service.to_string(),
            kind: Kind::Component,
            url: peer.url.clone(),
            host,
            port,
            version: peer.services.get(service).cloned().unwrap_or_default(),
            routes: peer.routes.get(service).cloned().unwrap_or_default(),
            registered_at: crate::base::clock::unix_secs(),
            expires_at: None,
            registered_by: None,
        })
    }
}

/// What a host serves, as its heartbeat advertises it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Served {
    /// Service name → version.
    pub versions: BTreeMap<String, String>,
    /// Service name → routes.
    pub routes: BTreeMap<String, Vec<String>>,
}

/// Why a placement was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("{0}")]
    Invalid(String),
    #[error("no host with id {0} has joined this cluster")]
    UnknownHosts(String),
    #[error(transparent)]
    Database(#[from] PgError),
}

/// `host:port` of an `http://` URL, lower case, without IPv6 brackets.
fn authority_of(url: &str) -> Option<(String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    Some((host, uri.port_u16().unwrap_or(80)))
}

/// This host's membership.
pub struct Cluster {
    pool: Pool,
    target: Target,
    host_id: String,
    url: String,
    /// Random per process: tells a restart from a second live process.
    instance: String,
    heartbeat: Duration,
    lease: Duration,
    /// The cluster as last read (every heartbeat).
    view: ArcSwap<View>,
    /// Wakes the heartbeat before its tick ([`Cluster::beat_soon`]).
    wake: tokio::sync::Notify,
    /// When the database last took this host's heartbeat.
    last_beat: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Called at every heartbeat with the view just read: applies it (the
/// placement) and answers what this host serves now, to advertise.
pub type ServicesOf = Arc<dyn Fn(&View) -> Served + Send + Sync>;

impl Cluster {
    /// Connects, migrates the schema and claims `host_id`. If another
    /// process holds the id, waits once for its lease to run out (a host
    /// restarted after a crash); if the lease is renewed meanwhile, that
    /// process is alive and this one refuses to start.
    pub async fn join(
        config: &ClusterConfig,
        host_id: String,
        url: String,
    ) -> Result<Cluster, PgError> {
        let target = Target::parse(&config.url)?;
        let pool = crate::base::postgres::connect(&target).await?;
        crate::base::postgres::migrate(&pool, &target).await?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cluster = Cluster {
            pool,
            target,
            host_id,
            url,
            instance: hex::encode(nonce),
            heartbeat: config.heartbeat,
            lease: config.lease,
            view: ArcSwap::from_pointee(View::default()),
            wake: tokio::sync::Notify::new(),
            last_beat: std::sync::Mutex::new(None),
        };
        let mut waited = false;
        loop {
            match cluster.claim().await? {
                None => {
                    // Placement applies from the first deploy on.
                    cluster.refresh().await?;
                    return Ok(cluster);
                }
                Some(held_ms) if !waited => {
                    tracing::warn!(
                        "host id {} is leased to another process for {held_ms} ms more; \
                         waiting for the lease to run out",
                        cluster.host_id
                    );
                    tokio::time::sleep(Duration::from_millis(held_ms + 50)).await;
                    waited = true;
                }
                Some(_) => {
                    return Err(PgError::Failed {
                        target: cluster.target.shown().to_string(),
                        reason: format!(
                            "host id {:?} is held by a live host (its lease keeps being renewed); \
                             stop it or start this one with another --host-id",
                            cluster.host_id
                        ),
                    });
                }
            }
        }
    }

    /// Takes the id if it is free, expired or already ours; otherwise the
    /// milliseconds its holder's lease has left.
    async fn claim(&self) -> Result<Option<u64>, PgError> {
        bounded(self.claim_unbounded(), || self.timed_out()).await
    }

    async fn claim_unbounded(&self) -> Result<Option<u64>, PgError> {
        let client = self.client().await?;
        let claimed = client
            .query_opt(
                "INSERT INTO hosts (host_id, url, instance, lease_until)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                 ON CONFLICT (host_id) DO UPDATE SET
                     url = EXCLUDED.url, instance = EXCLUDED.instance, started_at = now(),
                     last_heartbeat = now(), lease_until = EXCLUDED.lease_until, services = '{}'
                 WHERE hosts.lease_until <= now() OR hosts.instance = EXCLUDED.instance
                 RETURNING host_id",
                &[
                    &self.host_id,
                    &self.url,
                    &self.instance,
                    &self.lease.as_secs_f64(),
                ],
            )
            .await
            .map_err(|e| self.target.failed(e))?;
        if claimed.is_some() {
            return Ok(None);
        }
        let left: f64 = client
            .query_one(
                "SELECT GREATEST(EXTRACT(EPOCH FROM lease_until - now()), 0)::float8
                 FROM hosts WHERE host_id = $1",
                &[&self.host_id],
            )
            .await
            .map_err(|e| self.target.failed(e))?
            .get(0);
        Ok(Some((left * 1000.0).ceil() as u64))
    }

    /// Renews the lease every heartbeat until the returned handle is
    /// dropped or aborted. A failed heartbeat is logged and retried at the
    /// next tick: the database decides liveness, never this host's view.
    pub fn spawn_heartbeat(self: &Arc<Self>, services: ServicesOf) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.heartbeat);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = this.wake.notified() => {}
                }
                // A view that cannot be read stays as it was: hosts are not
                // dropped from it because the database is away.
                let refreshed = this.refresh().await;
                let served = services(&this.view());
                let beat = match refreshed {
                    Ok(()) => this.beat(&served).await,
                    Err(e) => Err(e),
                };
                if beat.is_ok() {
                    *crate::base::sync::lock(&this.last_beat) = Some(std::time::Instant::now());
                }
                match beat {
                    Ok(()) if failing => {
                        tracing::info!("cluster heartbeat works again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        tracing::warn!("cluster heartbeat failed (retrying every beat): {e}");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    }

    async fn beat(&self, served: &Served) -> Result<(), PgError> {
        bounded(self.beat_unbounded(served), || self.timed_out()).await
    }

    async fn beat_unbounded(&self, served: &Served) -> Result<(), PgError> {
        let services = serde_json::to_value(&served.versions).expect("a map of strings serializes");
        let routes = serde_json::to_value(&served.routes).expect("a map of strings serializes");
        let client = self.client().await?;
        let renewed = client
            .execute(
                "UPDATE hosts SET last_heartbeat = now(),
                     lease_until = now() + make_interval(secs => $3), url = $4, services = $5,
                     routes = $6
                 WHERE host_id = $1 AND instance = $2",
                &[
                    &self.host_id,
                    &self.instance,
                    &self.lease.as_secs_f64(),
                    &self.url,
                    &services,
                    &routes,
                ],
            )
            .await
            .map_err(|e| self.target.failed(e))?;
        if renewed == 0 {
            // Our lease ran out while we were cut off and another process
            // took the id: take it back only once its lease runs out too.
            drop(client);
            if let Some(held_ms) = self.claim().await? {
                return Err(self.target.failed(format!(
                    "host id {:?} was taken over by another process (lease {held_ms} ms more)",
                    self.host_id
                )));
            }
        }
        Ok(())
    }

    /// Gives the lease up at once (graceful shutdown): the host leaves
    /// discovery now rather than when its lease would have run out.
    pub async fn leave(&self) {
        let left = bounded(
            async {
                self.client()
                    .await?
                    .execute(
                        "UPDATE hosts SET lease_until = now() WHERE host_id = $1 AND instance = $2",
                        &[&self.host_id, &self.instance],
                    )
                    .await
                    .map_err(|e| self.target.failed(e))
            },
            || self.timed_out(),
        );
        if let Err(e) = left.await {
            tracing::warn!("leaving the cluster: {e}");
        }
    }

    /// Every host that ever joined, by id.
    pub async fn hosts(&self) -> Result<Vec<HostInfo>, PgError> {
        bounded(self.hosts_unbounded(), || self.timed_out()).await
    }

    async fn hosts_unbounded(&self) -> Result<Vec<HostInfo>, PgError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT host_id, url, lease_until > now(),
                        GREATEST(EXTRACT(EPOCH FROM now() - last_heartbeat) * 1000, 0)::float8,
                        services, refused
                 FROM hosts ORDER BY host_id",
                &[],
            )
            .await
            .map_err(|e| self.target.failed(e))?;
        Ok(rows
            .iter()
            .map(|r| HostInfo {
                id: r.get(0),
                url: r.get(1),
                alive: r.get(2),
                last_heartbeat_ms_ago: r.get::<_, f64>(3) as u64,
                services: serde_json::from_value(r.get(4)).unwrap_or_default(),
                refused: serde_json::from_value(r.get(5)).unwrap_or_default(),
            })
            .collect())
    }

    /// Runs the next heartbeat now rather than at its tick: what this host
    /// serves changed (a deploy), so the others should know without waiting.
    pub fn beat_soon(&self) {
        self.wake.notify_one();
    }

    /// The cluster as this host last read it (at most a heartbeat old).
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Reads the other hosts and the placement into the view.
    async fn refresh(&self) -> Result<(), PgError> {
        let view = bounded(self.read_view(), || self.timed_out()).await?;
        self.view.store(Arc::new(view));
        Ok(())
    }

    async fn read_view(&self) -> Result<View, PgError> {
        let client = self.client().await?;
        let failed = |e| self.target.failed(e);
        let rows = client
            .query(
                "SELECT host_id, url, lease_until > now(), services, routes
                 FROM hosts WHERE host_id <> $1 ORDER BY host_id",
                &[&self.host_id],
            )
            .await
            .map_err(failed)?;
        let peers = rows
            .iter()
            .map(|r| {
                let url: String = r.get(1);
                Peer {
                    id: r.get(0),
                    authority: authority_of(&url),
                    url,
                    alive: r.get(2),
                    services: serde_json::from_value(r.get(3)).unwrap_or_default(),
                    routes: serde_json::from_value(r.get(4)).unwrap_or_default(),
                }
            })
            .collect();
        let placement = client
            .query("SELECT service, hosts FROM placement", &[])
            .await
            .map_err(failed)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let externals = client
            .query(
                "SELECT entry FROM external_services
                 WHERE expires_at IS NULL OR expires_at > EXTRACT(EPOCH FROM now())",
                &[],
            )
            .await
            .map_err(failed)?
            .iter()
            .filter_map(|r| serde_json::from_value(r.get(0)).ok())
            .collect();
        Ok(View {
            peers,
            placement,
            externals,
        })
    }

    /// Shares an external service registered through this host with every
    /// host (they read it at their next heartbeat).
    pub async fn share_external(
        &self,
        entry: &crate::core::registry::Entry,
    ) -> Result<(), PgError> {
        let json = serde_json::to_value(entry).expect("an entry serializes");
        let expires_at = entry.expires_at.map(|t| t as i64);
        bounded(
            async {
                self.client()
                    .await?
                    .execute(
                        "INSERT INTO external_services (name, entry, expires_at) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO UPDATE SET entry = EXCLUDED.entry,
                             expires_at = EXCLUDED.expires_at",
                        &[&entry.name, &json, &expires_at],
                    )
                    .await
                    .map_err(|e| self.target.failed(e))
            },
            || self.timed_out(),
        )
        .await?;
        Ok(())
    }

    /// Removes an external service from the cluster.
    pub async fn withdraw_external(&self, name: &str) -> Result<(), PgError> {
        bounded(
            async {
                self.client()
                    .await?
                    .execute("DELETE FROM external_services WHERE name = $1", &[&name])
                    .await
                    .map_err(|e| self.target.failed(e))
            },
            || self.timed_out(),
        )
        .await?;
        Ok(())
    }

    /// Service → the hosts it may run on (services not listed: every host).
    pub async fn placement(&self) -> Result<BTreeMap<String, Vec<String>>, PgError> {
        bounded(
            async {
                Ok(self
                    .client()
                    .await?
                    .query("SELECT service, hosts FROM placement", &[])
                    .await
                    .map_err(|e| self.target.failed(e))?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            },
            || self.timed_out(),
        )
        .await
    }

    /// Limits `service` to `hosts` (ids of hosts that joined this cluster);
    /// every host applies it at its next heartbeat. Returns the hosts as
    /// stored (sorted, without duplicates).
    pub async fn place(
        &self,
        service: &str,
        hosts: &[String],
    ) -> Result<Vec<String>, PlacementError> {
        crate::core::names::validate_service_name(service)
            .map_err(|e| PlacementError::Invalid(e.0))?;
        let mut hosts: Vec<String> = hosts.iter().map(|h| h.trim().to_string()).collect();
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() {
            return Err(PlacementError::Invalid(format!(
                "a placement of {service} names at least one host; to run it on every host, clear its placement"
            )));
        }
        let stored = hosts.clone();
        bounded(
            async {
                let client = self.client().await?;
                let failed = |e| PlacementError::Database(self.target.failed(e));
                let known: Vec<String> = client
                    .query(
                        "SELECT host_id FROM hosts WHERE host_id = ANY($1)",
                        &[&hosts],
                    )
                    .await
                    .map_err(failed)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let unknown: Vec<String> = hosts
                    .iter()
                    .filter(|h| !known.contains(h))
                    .map(|h| format!("{h:?}"))
                    .collect();
                if !unknown.is_empty() {
                    return Err(PlacementError::UnknownHosts(unknown.join(", ")));
                }
                client
                    .execute(
                        "INSERT INTO placement (service, hosts) VALUES ($1, $2)
                         ON CONFLICT (service) DO UPDATE SET hosts = EXCLUDED.hosts, updated_at = now()",
                        &[&service, &hosts],
                    )
                    .await
                    .map_err(failed)?;
                Ok(())
            },
            || PlacementError::Database(self.timed_out()),
        )
        .await?;
        Ok(stored)
    }

    /// Clears the placement of `service`: it runs on every host again.
    /// Whether there was one.
    pub async fn unplace(&self, service: &str) -> Result<bool, PgError> {
        bounded(
            async {
                let n = self
                    .client()
                    .await?
                    .execute("DELETE FROM placement WHERE service = $1", &[&service])
                    .await
                    .map_err(|e| self.target.failed(e))?;
                Ok(n > 0)
            },
            || self.timed_out(),
        )
        .await
    }

    /// The connections to the cluster database, for the capabilities kept
    /// there (stores, ...).
    /// How long ago the database last took this host's heartbeat (`None`
    /// before the first).
    pub fn heartbeat_age(&self) -> Option<Duration> {
        crate::base::sync::lock(&self.last_beat).map(|at| at.elapsed())
    }

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// This host's id.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    fn timed_out(&self) -> PgError {
        PgError::Unreachable {
            target: self.target.shown().to_string(),
            reason: format!("no answer within {:?}", crate::base::postgres::OP_TIMEOUT),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool.get().await.map_err(|e| PgError::Unreachable {
            target: self.target.shown().to_string(),
            reason: error_text(&e),
        })
    }
}

/// This host's id: `configured`, else the one kept in `data_dir/host-id`,
/// generated on first use. Ids follow the service naming rule.
pub fn host_id(data_dir: &Path, configured: Option<&str>) -> std::io::Result<String> {
    let invalid = |e: crate::core::names::InvalidName| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--host-id: {}", e.0),
        )
    };
    if let Some(id) = configured {
        crate::core::names::validate_service_name(id).map_err(invalid)?;
        return Ok(id.to_string());
    }
    let path = data_dir.join("host-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            crate::core::names::validate_service_name(&id).map_err(invalid)?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 4];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let id = format!("host-{}", hex::encode(bytes));
            crate::base::files::write_atomically(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, port: u16, alive: bool, services: &[&str]) -> Peer {
        let url = format!("http://127.0.0.1:{port}");
        Peer {
            id: id.into(),
            authority: authority_of(&url),
            url,
            alive,
            services: services
                .iter()
                .map(|s| (s.to_string(), "v1".into()))
                .collect(),
            routes: services
                .iter()
                .map(|s| (s.to_string(), vec![format!("/{s}/...")]))
                .collect(),
        }
    }

    fn view() -> View {
        View {
            peers: vec![
                peer("h2", 8082, true, &["identity"]),
                peer("h3", 8083, true, &["identity", "report"]),
                peer("h4", 8084, false, &["identity"]),
                peer("h5", 8085, true, &["report"]),
            ],
            placement: [("identity".to_string(), vec!["h2".into(), "h3".into()])].into(),
            externals: Vec::new(),
        }
    }

    fn ids(peers: Vec<&Peer>) -> Vec<&str> {
        peers.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn only_live_hosts_that_serve_the_service_are_chosen_preferred_first() {
        let v = view();
        assert_eq!(ids(v.serving("identity", None, 0, 2)), ["h2", "h3"]);
        assert_eq!(ids(v.serving("identity", None, 1, 2)), ["h3", "h2"]);
        assert_eq!(ids(v.serving("identity", Some("h3"), 0, 2)), ["h3", "h2"]);
        // A preferred host that is gone or does not serve it is not tried.
        assert_eq!(ids(v.serving("identity", Some("h4"), 0, 2)), ["h2", "h3"]);
        assert_eq!(ids(v.serving("identity", Some("h5"), 0, 1)), ["h2"]);
        assert!(v.serving("nobody", None, 0, 2).is_empty());
        // Turns spread discovery over the live hosts.
        let found: Vec<String> = (0..4)
            .map(|turn| v.discover("report", turn).unwrap().url)
            .collect();
        assert_eq!(
            found,
            [
                "http://127.0.0.1:8083",
                "http://127.0.0.1:8085",
                "http://127.0.0.1:8083",
                "http://127.0.0.1:8085"
            ]
        );
        let e = v.discover("identity", 0).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.version.as_str()),
            ("127.0.0.1", 8082, "v1")
        );
        assert_eq!(e.routes, ["/identity/..."]);
        assert!(v.discover("nobody", 0).is_none());
    }

    #[test]
    fn placement_limits_a_service_to_its_hosts_and_others_run_everywhere() {
        let v = view();
        assert!(v.placed_on("identity", "h2"));
        assert!(!v.placed_on("identity", "h1"));
        assert!(v.placed_on("report", "h1"));
    }

    #[test]
    fn hosts_are_recognised_by_their_url_under_any_spelling() {
        let v = view();
        assert_eq!(v.peer_at("127.0.0.1", 8083).unwrap().id, "h3");
        assert!(v.peer_at("127.0.0.1", 8080).is_none());
        assert_eq!(
            authority_of("http://Host.Example.:81/x"),
            Some(("host.example".to_string(), 81))
        );
        assert_eq!(authority_of("http://[::1]"), Some(("::1".to_string(), 80)));
        assert_eq!(authority_of("not a url"), None);
    }
}
