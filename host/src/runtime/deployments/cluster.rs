//! The cluster's record of deployments, in its PostgreSQL (see
//! `host/migrations/V5__deployments.sql`): component bytes stored once under
//! their digest, every version of a service deployed on any host, and the
//! active version of each service, which every host follows. This host's
//! own record ([`super::Deployments`]) stays beside it as its cache: the
//! bytes it has compiled and the digests its files had, which decide at a
//! restart whether a file is a new deploy or an old one.

use super::{MAX_VERSIONS, VersionRecord};
use crate::base::postgres::{OP_TIMEOUT, bounded, describe, error_text};
use crate::core::cluster::Refusal;
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Why the cluster's record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ClusterRecordError {
    #[error("the cluster database: {0}")]
    Unavailable(String),
    #[error("the cluster database holds no component {0}")]
    Missing(String),
    #[error("the bytes stored for {expected} have digest {found}")]
    Corrupt { expected: String, found: String },
}

fn unavailable(e: tokio_postgres::Error) -> ClusterRecordError {
    ClusterRecordError::Unavailable(describe(&e))
}

fn timed_out() -> ClusterRecordError {
    ClusterRecordError::Unavailable(format!("no answer within {OP_TIMEOUT:?}"))
}

/// What the cluster serves of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    /// `None`: undeployed.
    pub version: Option<String>,
    /// The source the version was deployed from.
    pub source: String,
}

/// The cluster's deployments, as one host reads and writes them.
pub struct ClusterRecord {
    pool: Pool,
    host: String,
}

impl ClusterRecord {
    pub fn new(pool: Pool, host: &str) -> ClusterRecord {
        ClusterRecord {
            pool,
            host: host.to_string(),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ClusterRecordError> {
        self.pool
            .get()
            .await
            .map_err(|e| ClusterRecordError::Unavailable(error_text(&e)))
    }

    /// Makes `record` of `service` the cluster's active version, storing
    /// `bytes` if the cluster does not have them yet. One transaction.
    pub async fn publish(
        &self,
        service: &str,
        record: &VersionRecord,
        bytes: &[u8],
    ) -> Result<(), ClusterRecordError> {
        self.record(service, record, bytes, true).await
    }

    /// Adds `record` of `service` to the cluster's versions (bytes too)
    /// without making it active.
    pub async fn add_version(
        &self,
        service: &str,
        record: &VersionRecord,
        bytes: &[u8],
    ) -> Result<(), ClusterRecordError> {
        self.record(service, record, bytes, false).await
    }

    async fn record(
        &self,
        service: &str,
        record: &VersionRecord,
        bytes: &[u8],
        activate: bool,
    ) -> Result<(), ClusterRecordError> {
        bounded(
            async {
                let mut client = self.client().await?;
                let txn = client.transaction().await.map_err(unavailable)?;
                txn.execute(
                    "INSERT INTO deploy_components (digest, bytes) VALUES ($1, $2)
                     ON CONFLICT (digest) DO NOTHING",
                    &[&record.version, &bytes],
                )
                .await
                .map_err(unavailable)?;
                txn.execute(
                    "INSERT INTO deploy_versions (service, version, deployed_at, source)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (service, version) DO UPDATE SET
                         deployed_at = EXCLUDED.deployed_at, source = EXCLUDED.source,
                         ordinal = nextval('deploy_order')",
                    &[
                        &service,
                        &record.version,
                        &(record.deployed_at as i64),
                        &record.source,
                    ],
                )
                .await
                .map_err(unavailable)?;
                if activate {
                    self.set_active(&txn, service, Some(&record.version))
                        .await?;
                }
                txn.commit().await.map_err(unavailable)
            },
            timed_out,
        )
        .await
    }

    /// Records that `service` is undeployed cluster-wide (its history stays).
    pub async fn unpublish(&self, service: &str) -> Result<(), ClusterRecordError> {
        bounded(
            async {
                let mut client = self.client().await?;
                let txn = client.transaction().await.map_err(unavailable)?;
                self.set_active(&txn, service, None).await?;
                txn.commit().await.map_err(unavailable)
            },
            timed_out,
        )
        .await
    }

    async fn set_active(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
        service: &str,
        version: Option<&str>,
    ) -> Result<(), ClusterRecordError> {
        txn.execute(
            "INSERT INTO deploy_active (service, version, generation, by_host)
             VALUES ($1, $2, 1, $3)
             ON CONFLICT (service) DO UPDATE SET version = EXCLUDED.version,
                 generation = deploy_active.generation + 1, by_host = EXCLUDED.by_host",
            &[&service, &version, &self.host],
        )
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// What the cluster serves, by service.
    pub async fn active(&self) -> Result<BTreeMap<String, Active>, ClusterRecordError> {
        bounded(
            async {
                let rows = self
                    .client()
                    .await?
                    .query(
                        "SELECT a.service, a.version, COALESCE(v.source, '')
                         FROM deploy_active a
                         LEFT JOIN deploy_versions v
                             ON v.service = a.service AND v.version = a.version",
                        &[],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let active = Active {
                            version: r.get(1),
                            source: r.get(2),
                        };
                        (r.get(0), active)
                    })
                    .collect())
            },
            timed_out,
        )
        .await
    }

    /// Whether `version` of `service` was ever deployed in the cluster.
    pub async fn knows(&self, service: &str, version: &str) -> Result<bool, ClusterRecordError> {
        bounded(
            async {
                let row = self
                    .client()
                    .await?
                    .query_opt(
                        "SELECT 1 FROM deploy_versions WHERE service = $1 AND version = $2",
                        &[&service, &version],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(row.is_some())
            },
            timed_out,
        )
        .await
    }

    /// The latest [`MAX_VERSIONS`] versions of `service`, oldest first, and
    /// the active one (`None`: never deployed).
    pub async fn versions(
        &self,
        service: &str,
    ) -> Result<Option<(Vec<VersionRecord>, Option<String>)>, ClusterRecordError> {
        bounded(
            async {
                let client = self.client().await?;
                let rows = client
                    .query(
                        "SELECT version, deployed_at, source FROM (
                             SELECT * FROM deploy_versions WHERE service = $1
                             ORDER BY ordinal DESC LIMIT $2) latest
                         ORDER BY ordinal",
                        &[&service, &(MAX_VERSIONS as i64)],
                    )
                    .await
                    .map_err(unavailable)?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let active: Option<String> = client
                    .query_opt(
                        "SELECT version FROM deploy_active WHERE service = $1",
                        &[&service],
                    )
                    .await
                    .map_err(unavailable)?
                    .and_then(|r| r.get(0));
                let versions = rows
                    .iter()
                    .map(|r| VersionRecord {
                        version: r.get(0),
                        deployed_at: r.get::<_, i64>(1) as u64,
                        source: r.get(2),
                    })
                    .collect();
                Ok(Some((versions, active)))
            },
            timed_out,
        )
        .await
    }

    /// The bytes of `version`, checked against their digest.
    pub async fn component(&self, version: &str) -> Result<Vec<u8>, ClusterRecordError> {
        let bytes: Vec<u8> = bounded(
            async {
                let row = self
                    .client()
                    .await?
                    .query_opt(
                        "SELECT bytes FROM deploy_components WHERE digest = $1",
                        &[&version],
                    )
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| ClusterRecordError::Missing(version.to_string()))?;
                Ok(row.get(0))
            },
            timed_out,
        )
        .await?;
        let found = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if found != version {
            return Err(ClusterRecordError::Corrupt {
                expected: version.to_string(),
                found,
            });
        }
        Ok(bytes)
    }

    /// Publishes the versions this host refuses to serve (with
    /// `GET /_hms/cluster`).
    pub async fn report_refusals(
        &self,
        refused: &BTreeMap<String, Refusal>,
    ) -> Result<(), ClusterRecordError> {
        let refused = serde_json::to_value(refused).expect("refusals serialize");
        bounded(
            async {
                self.client()
                    .await?
                    .execute(
                        "UPDATE hosts SET refused = $2 WHERE host_id = $1",
                        &[&self.host, &refused],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(())
            },
            timed_out,
        )
        .await
    }
}
