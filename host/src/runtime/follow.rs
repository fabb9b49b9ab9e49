//! Following the cluster's deployments: at start-up a host decides which of
//! its files are new deploys for the cluster, and from then on serves what
//! the cluster's record names as active (checked every [`FOLLOW_INTERVAL`]),
//! fetching, checking, compiling and swapping each new version. A version
//! this host cannot load is refused: the host keeps the version it had,
//! logs why, and reports it in `GET /_hms/cluster` (`refused`).
//!
//! The restart rule, cluster-wide: a file pushes its version over the
//! cluster's only if the cluster never had that version of the service, or
//! if the file changed while this host was down (its digest differs from
//! the one it had when this host last deployed from it). A host restarting
//! with the files it had therefore never rolls the cluster back.

use super::Runtime;
use super::deploy::DeployError;
use crate::core::cluster::Refusal;
use crate::runtime::deployments::State;
use crate::runtime::deployments::cluster::ClusterRecord;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often a host looks for new cluster versions.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// This host's part in the cluster's deployments.
pub struct Follower {
    runtime: Weak<Runtime>,
    /// Versions this host would not serve, by service.
    refused: BTreeMap<String, Refusal>,
    /// What was last reported to the cluster.
    reported: BTreeMap<String, Refusal>,
}

impl Runtime {
    /// After the start-up deploys of a cluster host: publishes the files
    /// that are new deploys (see the module docs), then serves what the
    /// cluster names active, and returns what keeps it following
    /// (`None` standalone).
    pub async fn join_cluster(
        self: &Arc<Self>,
        before: &State,
    ) -> Result<Option<Follower>, DeployError> {
        let Some(cluster) = self.record.cluster() else {
            return Ok(None);
        };
        let active = cluster.active().await?;
        let ours: Vec<_> = self.deployed.load().services.values().cloned().collect();
        for service in ours {
            let cluster_version = active.get(&service.name).and_then(|a| a.version.as_deref());
            if cluster_version == Some(service.version.as_str()) {
                continue;
            }
            let changed_while_down = before
                .file_digest(&service.source)
                .is_some_and(|had| had != service.version);
            let new_to_cluster = !cluster.knows(&service.name, &service.version).await?;
            if changed_while_down || new_to_cluster {
                let bytes = self.bytes_of(&service.version).await?;
                self.publish(&service, &bytes).await?;
            }
        }
        let mut follower = Follower {
            runtime: Arc::downgrade(self),
            refused: BTreeMap::new(),
            reported: BTreeMap::new(),
        };
        follower.follow(cluster).await?;
        Ok(Some(follower))
    }

    /// Serves `version` of `name`, the cluster's active version.
    async fn adopt(&self, name: &str, version: &str, source: &str) -> Result<(), DeployError> {
        let bytes = self.bytes_of(version).await?;
        let service = self
            .load(&bytes, &format!("cluster: {source}"), name)
            .await?;
        if service.name != name {
            return Err(DeployError::WrongName {
                expected: name.to_string(),
                found: service.name.clone(),
            });
        }
        self.install(service, &bytes, None, true, "followed the cluster to")?;
        Ok(())
    }
}

impl Follower {
    /// Brings this host to the cluster's active versions once.
    async fn follow(&mut self, cluster: &ClusterRecord) -> Result<(), DeployError> {
        let Some(runtime) = self.runtime.upgrade() else {
            return Ok(());
        };
        let active = cluster.active().await?;
        for (name, wanted) in &active {
            let serving = runtime
                .deployed
                .load()
                .services
                .get(name)
                .map(|s| s.version.clone());
            let Some(version) = &wanted.version else {
                if serving.is_some() {
                    runtime.undeploy(name);
                }
                self.refused.remove(name);
                continue;
            };
            if serving.as_ref() == Some(version) {
                self.refused.remove(name);
                continue;
            }
            if self
                .refused
                .get(name)
                .is_some_and(|r| r.version == *version)
            {
                continue;
            }
            if let Err(e) = runtime.adopt(name, version, &wanted.source).await {
                runtime.log_rejected(&format!("{name} ({version}, the cluster's)"), &e);
                let refusal = Refusal {
                    version: version.clone(),
                    error: e.to_string(),
                };
                self.refused.insert(name.clone(), refusal);
            }
        }
        if self.refused != self.reported {
            cluster.report_refusals(&self.refused).await?;
            self.reported = self.refused.clone();
        }
        Ok(())
    }

    /// Keeps following until the runtime is gone or the task is aborted.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(runtime) = self.runtime.upgrade() else {
                    return;
                };
                let Some(cluster) = runtime.record.cluster() else {
                    return;
                };
                match self.follow(cluster).await {
                    Ok(()) if failing => {
                        tracing::info!("following the cluster's deployments works again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        tracing::warn!("reading the cluster's deployments failed (retrying): {e}");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    }
}
