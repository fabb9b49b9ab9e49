//! Deploying: loading a version, publishing it in a new routing snapshot,
//! the durable record of versions, rollback, restore after a restart, and
//! undeploying. Deploys are serialised by one lock; requests never take it.

use super::{Deployment, Runtime, plain_name};
use crate::api::types::VersionInfo;
use crate::base::sync::lock;
use crate::core::HOST_SERVICE;
use crate::core::audit::Level;
use crate::core::trace::Trace;
use crate::runtime::component::{self, LoadError, Service};
use crate::runtime::deployments::cluster::ClusterRecordError;
use crate::runtime::deployments::{State, VersionRecord};
use crate::runtime::router::RouteError;
use std::path::Path;
use std::sync::Arc;

/// Why a deploy failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the component calls itself {found:?}, not {expected:?}")]
    WrongName { expected: String, found: String },
    #[error("no service named {0:?} has been deployed")]
    UnknownService(String),
    #[error("{0} has no version {1:?}")]
    UnknownVersion(String, String),
    #[error("version prefix {0:?} matches several versions")]
    AmbiguousVersion(String),
    #[error("{file}: {source}")]
    Route { file: String, source: RouteError },
    #[error("recording the deployment in the data directory failed: {0}")]
    Record(#[from] std::io::Error),
    #[error("recording the deployment in the cluster failed: {0}")]
    Cluster(#[from] ClusterRecordError),
    #[error("{file}: service {name:?} is already deployed from {other}")]
    NameTaken {
        file: String,
        name: String,
        other: String,
    },
}

impl Runtime {
    /// Loads, validates and deploys the component at `path` as a new
    /// service (start-up: a name already deployed is an error).
    pub async fn deploy_file(&self, path: &Path) -> Result<Arc<Service>, DeployError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            file: file.clone(),
            source,
        })?;
        let service = self.load(&bytes, &file, &plain_name(path)).await?;
        self.install(service, &bytes, Some(&file), false, "deployed")
    }

    /// What can be told of the component file at `path` without compiling
    /// it: readable, a component importing only what the host provides and
    /// exporting the HTTP handler, its memory within the limits, and for a
    /// plain component a valid name. `run` checks every file this way before
    /// it starts listening; compiling and instantiating come after.
    pub fn check_file(&self, path: &Path) -> Result<(), DeployError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            file: file.clone(),
            source,
        })?;
        let shape = component::inspect(&bytes, &file)?;
        component::check_memory(&shape, &file, None, self.engine.pool().max_memory)?;
        if !shape.has_manifest {
            let name = plain_name(path);
            crate::core::names::validate_service_name(&name).map_err(|e| LoadError::Manifest {
                file: file.clone(),
                reason: format!("a plain component is named after its file: {e}"),
            })?;
            let limit = self.sandbox.grants(&name).limits.memory;
            component::check_memory(&shape, &file, Some(&name), limit)?;
        }
        Ok(())
    }

    /// After start-up deploys: serve again what was active when the host
    /// last stopped. A service whose file is unchanged since it was last
    /// deployed from it gets back the version that was active (an upload or
    /// rollback outlives a restart); a file changed meanwhile is the newer
    /// deploy and stays. Services deployed only by upload come back too.
    pub async fn restore(&self, before: &State) -> Result<(), DeployError> {
        for (name, version) in before.active() {
            let current = self.deployed.load().services.get(name).cloned();
            if current.as_ref().is_some_and(|c| c.version == version) {
                continue;
            }
            if let Some(c) = &current
                && before.file_digest(&c.source) != Some(c.version.as_str())
            {
                continue; // the file changed while the host was stopped
            }
            let source = before
                .source_of(name, version)
                .unwrap_or("upload")
                .to_string();
            let bytes = match self.record.component(version) {
                Ok(bytes) => bytes,
                Err(e) => {
                    // Serve what the files give rather than refuse to start.
                    let e = DeployError::Record(e);
                    self.log_rejected(&format!("{name} (restoring {version})"), &e);
                    continue;
                }
            };
            let service = self.load(&bytes, &source, name).await?;
            self.install(service, &bytes, None, true, "restored")?;
        }
        Ok(())
    }

    /// Validates `bytes` as a new version of `name` and swaps it in: requests
    /// in flight finish on the version they started on, new ones get this
    /// one. Compilation happens before any lock is taken, so serving never
    /// waits for it. On any error the running version stays.
    pub async fn deploy_version(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<Service>, DeployError> {
        let service = self
            .load(bytes, &format!("upload for {name}"), name)
            .await?;
        if service.name != name {
            return Err(DeployError::WrongName {
                expected: name.to_string(),
                found: service.name.clone(),
            });
        }
        self.publish(&service, bytes).await?;
        self.install(service, bytes, None, true, "deployed")
    }

    /// In a cluster: makes `service` (loaded from `bytes`) the cluster's
    /// active version, which every host then follows. Done before this host
    /// serves it: a deploy the cluster cannot record does not happen.
    pub(super) async fn publish(&self, service: &Service, bytes: &[u8]) -> Result<(), DeployError> {
        if let Some(cluster) = self.record.cluster() {
            let record = VersionRecord {
                version: service.version.clone(),
                deployed_at: crate::base::clock::unix_secs(),
                source: service.source.clone(),
            };
            cluster.publish(&service.name, &record, bytes).await?;
        }
        Ok(())
    }

    /// Versions of `name`, oldest first, and the active one: the
    /// cluster's in a cluster, this host's otherwise.
    async fn history(
        &self,
        name: &str,
    ) -> Result<(Vec<VersionRecord>, Option<String>), DeployError> {
        let found = match self.record.cluster() {
            Some(cluster) => cluster.versions(name).await?,
            None => self.record.versions(name),
        };
        found.ok_or_else(|| DeployError::UnknownService(name.to_string()))
    }

    /// The bytes of a version deployed before (from the cluster, checked
    /// against its digest, when this host does not have them).
    pub(super) async fn bytes_of(&self, version: &str) -> Result<Vec<u8>, DeployError> {
        match (self.record.component(version), self.record.cluster()) {
            (Ok(bytes), _) => Ok(bytes),
            (Err(_), Some(cluster)) => Ok(cluster.component(version).await?),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Switches `name` back to an earlier version: `to` (a digest, or a
    /// unique prefix of one), else the version active before the current one.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<&str>,
    ) -> Result<Arc<Service>, DeployError> {
        let (versions, active) = self.history(name).await?;
        let found: Vec<&VersionRecord> = match to {
            Some(to) => {
                let to = to.strip_prefix("sha256:").unwrap_or(to);
                versions
                    .iter()
                    .filter(|v| v.version["sha256:".len()..].starts_with(to))
                    .collect()
            }
            None => versions
                .iter()
                .rev()
                .filter(|v| Some(&v.version) != active.as_ref())
                .take(1)
                .collect(),
        };
        let target = match found.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let wanted = to.unwrap_or("previous").to_string();
                return Err(DeployError::UnknownVersion(name.to_string(), wanted));
            }
            _ => {
                return Err(DeployError::AmbiguousVersion(
                    to.unwrap_or_default().to_string(),
                ));
            }
        };
        let bytes = self.bytes_of(&target.version).await?;
        let service = self.load(&bytes, &target.source, name).await?;
        self.publish(&service, &bytes).await?;
        self.install(service, &bytes, None, true, "rolled back to")
    }

    /// Every version of `name` deployed (across restarts), oldest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, DeployError> {
        let (versions, active) = self.history(name).await?;
        Ok(versions
            .into_iter()
            .map(|v| VersionInfo {
                active: Some(&v.version) == active.as_ref(),
                version: v.version,
                deployed_at: v.deployed_at,
                source: v.source,
            })
            .collect())
    }

    pub(super) async fn load(
        &self,
        bytes: &[u8],
        label: &str,
        stem: &str,
    ) -> Result<Arc<Service>, LoadError> {
        let started = std::time::Instant::now();
        let service = component::load_bytes(
            &self.engine,
            &self.linker,
            bytes,
            label,
            stem,
            |n| self.probe_store(n),
            |n| self.guard(n),
        )
        .await?;
        self.core
            .metrics
            .component_loaded(&service.name, started.elapsed());
        Ok(service)
    }

    /// Redeploys the component file at `path`, whose content is now `bytes`
    /// (file watch). If the running version already is that content, nothing
    /// happens. A file that now declares another service replaces the one it
    /// used to provide.
    pub async fn deploy_changed_file(&self, path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
        let source = path.display().to_string();
        let service = match self.load(bytes, &source, &plain_name(path)).await {
            Ok(s) => s,
            Err(e) => {
                let e = DeployError::Load(e);
                self.log_rejected(&source, &e);
                return Err(e);
            }
        };
        let current = self.deployed.load();
        if current
            .services
            .get(&service.name)
            .is_some_and(|s| s.version == service.version)
        {
            return Ok(());
        }
        let previous = current
            .services
            .values()
            .find(|s| s.source == source)
            .map(|s| s.name.clone());
        let installed = match self.publish(&service, bytes).await {
            Ok(()) => self.install(service.clone(), bytes, Some(&source), true, "deployed"),
            Err(e) => Err(e),
        };
        if let Err(e) = installed {
            self.log_rejected(&source, &e);
            return Err(e);
        }
        if let Some(old) = previous.filter(|old| *old != service.name) {
            self.undeploy_everywhere(&old).await;
        }
        Ok(())
    }

    /// Undeploys `name` here and, in a cluster, on every host.
    async fn undeploy_everywhere(&self, name: &str) {
        if let Some(cluster) = self.record.cluster()
            && let Err(e) = cluster.unpublish(name).await
        {
            tracing::error!("undeploying {name} in the cluster: {e}");
        }
        self.undeploy(name);
    }

    /// Undeploys the service last loaded from the file at `path`, if any
    /// (in a cluster, on every host).
    pub async fn undeploy_file(&self, path: &Path) {
        let source = path.display().to_string();
        let name = self
            .deployed
            .load()
            .services
            .values()
            .find(|s| s.source == source)
            .map(|s| s.name.clone());
        if let Some(name) = name {
            self.undeploy_everywhere(&name).await;
        }
    }

    /// Removes a service: its routes answer 404 and the registry forgets it.
    /// Its versions stay listed, so it can be deployed again by rollback.
    pub fn undeploy(&self, name: &str) -> bool {
        let _guard = lock(&self.deploying);
        let current = self.deployed.load();
        let Some(service) = current.services.get(name).cloned() else {
            return false;
        };
        let mut routes = current.routes.clone();
        routes.remove_owner(name);
        let mut services = current.services.clone();
        services.remove(name);
        let mut withheld = current.withheld.clone();
        withheld.remove(name);
        self.swap_in(Deployment {
            services,
            routes,
            withheld,
        });
        let _ = self.core.registry.unregister(name);
        if let Err(e) = self.record.record_undeploy(name, Some(&service.source)) {
            tracing::error!("recording the undeploy of {name}: {e}");
        }
        let msg = format!(
            "undeployed {name} {} (was from {})",
            service.version, service.source
        );
        self.core.log_host(msg);
        true
    }

    /// Publishes `service` in a new routing snapshot. With `replace`, it
    /// takes the place of the deployed service of the same name; otherwise
    /// that name must be free.
    pub(super) fn install(
        &self,
        service: Arc<Service>,
        bytes: &[u8],
        file: Option<&str>,
        replace: bool,
        verb: &str,
    ) -> Result<Arc<Service>, DeployError> {
        let _guard = lock(&self.deploying);
        let current = self.deployed.load();
        let previous = current.services.get(&service.name).cloned();
        if let (Some(other), false) = (&previous, replace) {
            return Err(DeployError::NameTaken {
                file: service.source.clone(),
                name: service.name.clone(),
                other: other.source.clone(),
            });
        }
        let mut routes = current.routes.clone();
        routes.remove_owner(&service.name);
        for pattern in &service.routes {
            routes
                .add(pattern.clone(), &service.name, service.clone())
                .map_err(|source| DeployError::Route {
                    file: service.source.clone(),
                    source,
                })?;
        }
        let mut services = current.services.clone();
        services.insert(service.name.clone(), service.clone());
        // Durable first: a deploy the record cannot keep does not happen.
        let record = VersionRecord {
            version: service.version.clone(),
            deployed_at: crate::base::clock::unix_secs(),
            source: service.source.clone(),
        };
        self.record
            .record_deploy(&service.name, record, bytes, file)?;
        let mut withheld = current.withheld.clone();
        if self.placed_here(&service.name) {
            withheld.remove(&service.name);
        } else {
            withheld.insert(service.name.clone());
        }
        self.swap_in(Deployment {
            services,
            routes,
            withheld,
        });

        let route_list: Vec<String> = service.routes.iter().map(|r| r.to_string()).collect();
        self.core
            .registry
            .register_component(&service.name, &service.version, route_list.clone());
        let replaced = previous
            .map(|p| format!(" (was {})", p.version))
            .unwrap_or_default();
        let msg = format!(
            "{verb} {} {} from {} serving {}{replaced}",
            service.name,
            service.version,
            service.source,
            route_list.join(" ")
        );
        self.core.log_host(msg);
        Ok(service)
    }

    /// Publishes the routing snapshot after a deploy or an undeploy (the
    /// deploying lock held): the registry learns what is withheld, and the
    /// other hosts of a cluster learn what this one serves without waiting
    /// for the next heartbeat.
    fn swap_in(&self, next: Deployment) {
        // A version no longer deployed keeps no instances for later.
        let current = self.deployed.load();
        for (name, old) in &current.services {
            if next.services.get(name).is_none_or(|s| !Arc::ptr_eq(s, old)) {
                old.warm.clear();
            }
        }
        self.core.registry.set_withheld(next.withheld.clone());
        self.deployed.store(Arc::new(next));
        if let Some(cluster) = &self.core.cluster {
            cluster.beat_soon();
        }
    }

    /// Records a refused deploy in the audit log.
    pub fn log_rejected(&self, what: &str, error: &DeployError) {
        let msg = format!("rejected a new version of {what}: {error}");
        self.core.log(
            HOST_SERVICE,
            &Trace::from_traceparent(None),
            Level::Warn,
            msg,
        );
    }
}
