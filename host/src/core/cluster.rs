//! Cluster membership: the hosts sharing one PostgreSQL, each holding its
//! row by a lease that the database's clock judges.
//!
//! A host claims its id at start (refused while another live process holds
//! it), renews its lease every heartbeat with the services it serves, and
//! gives the lease up when it stops. A lease that runs out only hides the
//! host: nothing is deleted because a host went quiet, and while the
//! database itself is unreachable nobody can judge, so nobody is declared
//! dead (the failure wasmCloud #5502 had with NATS).

use crate::base::postgres::{PgError, Target, bounded, error_text};
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
}

/// The services this host serves, asked at every heartbeat.
pub type ServicesOf = Arc<dyn Fn() -> BTreeMap<String, String> + Send + Sync>;

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
        };
        let mut waited = false;
        loop {
            match cluster.claim().await? {
                None => return Ok(cluster),
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
                tick.tick().await;
                match this.beat(&services()).await {
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

    async fn beat(&self, services: &BTreeMap<String, String>) -> Result<(), PgError> {
        bounded(self.beat_unbounded(services), || self.timed_out()).await
    }

    async fn beat_unbounded(&self, services: &BTreeMap<String, String>) -> Result<(), PgError> {
        let services = serde_json::to_value(services).expect("a map of strings serializes");
        let client = self.client().await?;
        let renewed = client
            .execute(
                "UPDATE hosts SET last_heartbeat = now(),
                     lease_until = now() + make_interval(secs => $3), url = $4, services = $5
                 WHERE host_id = $1 AND instance = $2",
                &[
                    &self.host_id,
                    &self.instance,
                    &self.lease.as_secs_f64(),
                    &self.url,
                    &services,
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

    /// The connections to the cluster database, for the capabilities kept
    /// there (stores, ...).
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
