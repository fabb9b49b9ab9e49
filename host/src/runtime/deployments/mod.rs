//! The durable record of deployments: every version's bytes (content-addressed
//! under `<data-dir>/components/`) and, per service, its version history and
//! which version is active (`<data-dir>/deployments.json`, replaced atomically
//! on every change). It is what lets a restart serve what was active when the
//! host stopped, and a rollback reach versions deployed before the restart.
//!
//! In a cluster, the versions and the active one are the cluster's
//! ([`cluster::ClusterRecord`], beside this one); this record remains the
//! host's cache of bytes and of the digests its files had.

pub mod cluster;

use crate::base::files::write_atomically;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Versions remembered per service (older ones are forgotten; their bytes
/// stay on disk, content-addressed, and cost nothing if deployed again).
pub const MAX_VERSIONS: usize = 10;

/// One deployed version, as listed to operators.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VersionRecord {
    /// `sha256:<hex>` of the component.
    pub version: String,
    /// Unix seconds of its latest deployment.
    pub deployed_at: u64,
    /// A file path, or `upload for <service>`.
    pub source: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ServiceState {
    /// The version serving now; `None` once undeployed.
    active: Option<String>,
    /// Oldest first; each version once, at its latest deployment.
    versions: Vec<VersionRecord>,
}

/// Everything persisted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    services: BTreeMap<String, ServiceState>,
    /// Component file → the digest it had when last deployed from it.
    files: BTreeMap<String, String>,
}

impl State {
    /// The active version of every service.
    pub fn active(&self) -> impl Iterator<Item = (&str, &str)> {
        self.services
            .iter()
            .filter_map(|(name, s)| s.active.as_deref().map(|v| (name.as_str(), v)))
    }

    /// What `file` held when it was last deployed.
    pub fn file_digest(&self, file: &str) -> Option<&str> {
        self.files.get(file).map(String::as_str)
    }

    /// The source a version of `service` was deployed from.
    pub fn source_of(&self, service: &str, version: &str) -> Option<&str> {
        let versions = &self.services.get(service)?.versions;
        versions
            .iter()
            .find(|v| v.version == version)
            .map(|v| v.source.as_str())
    }
}

/// The store; all methods are cheap except the writes, which happen only on
/// deploys (never on the request path).
pub struct Deployments {
    dir: PathBuf,
    state: Mutex<State>,
    cluster: Option<cluster::ClusterRecord>,
}

impl Deployments {
    /// Opens (or starts) the record in `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<Deployments> {
        let dir = data_dir.to_path_buf();
        std::fs::create_dir_all(dir.join("components"))?;
        let state = match std::fs::read(dir.join("deployments.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Deployments {
            dir,
            state: Mutex::new(state),
            cluster: None,
        })
    }

    /// This record, with the cluster's beside it (cluster mode).
    pub fn with_cluster(self, cluster: cluster::ClusterRecord) -> Deployments {
        Deployments {
            cluster: Some(cluster),
            ..self
        }
    }

    /// The cluster's record, in cluster mode.
    pub fn cluster(&self) -> Option<&cluster::ClusterRecord> {
        self.cluster.as_ref()
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    /// Versions of `service`, oldest first (`None`: never deployed).
    pub fn versions(&self, service: &str) -> Option<(Vec<VersionRecord>, Option<String>)> {
        let state = self.lock();
        let s = state.services.get(service)?;
        Some((s.versions.clone(), s.active.clone()))
    }

    /// The bytes of a version deployed before.
    pub fn component(&self, version: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.component_path(version))
    }

    /// Records that `record` of `service` is now active, keeping its bytes.
    /// Deploying the active version again from the same source (a restart)
    /// keeps its original record and writes nothing.
    pub fn record_deploy(
        &self,
        service: &str,
        record: VersionRecord,
        bytes: &[u8],
        file: Option<&str>,
    ) -> io::Result<()> {
        let path = self.component_path(&record.version);
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        let mut state = self.lock();
        // The version that is active already, from the same source (every
        // service at a restart): nothing changes, so nothing is written.
        let same = state.services.get(service).is_some_and(|s| {
            s.active.as_ref() == Some(&record.version)
                && s.versions
                    .iter()
                    .any(|v| v.version == record.version && v.source == record.source)
        });
        if same && file.is_none_or(|f| state.file_digest(f) == Some(&record.version)) {
            return Ok(());
        }
        if let Some(file) = file {
            state.files.insert(file.to_string(), record.version.clone());
        }
        let s = state.services.entry(service.to_string()).or_default();
        s.active = Some(record.version.clone());
        s.versions.retain(|v| v.version != record.version);
        s.versions.push(record);
        if s.versions.len() > MAX_VERSIONS {
            s.versions.remove(0);
        }
        self.save(&state)
    }

    /// Records that `service` no longer serves (its history stays).
    pub fn record_undeploy(&self, service: &str, file: Option<&str>) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(file) = file {
            state.files.remove(file);
        }
        if let Some(s) = state.services.get_mut(service) {
            s.active = None;
        }
        self.save(&state)
    }

    /// `hms-host cluster import`: adds every version of this record to the
    /// cluster's, oldest first, and makes this record's active version the
    /// cluster's for each service the cluster does not serve yet. Returns
    /// the versions added and the services made active.
    pub async fn import_into(
        &self,
        cluster: &cluster::ClusterRecord,
    ) -> anyhow::Result<(usize, Vec<String>)> {
        let state = self.snapshot();
        let serving = cluster.active().await?;
        let (mut added, mut activated) = (0, Vec::new());
        for (name, service) in &state.services {
            for record in &service.versions {
                let bytes = self.component(&record.version).map_err(|e| {
                    anyhow::anyhow!("{name} {}: reading its bytes: {e}", record.version)
                })?;
                cluster.add_version(name, record, &bytes).await?;
                added += 1;
            }
            let taken = serving.get(name).is_some_and(|a| a.version.is_some());
            let active = service
                .active
                .as_ref()
                .and_then(|v| service.versions.iter().find(|r| r.version == *v));
            if let (Some(record), false) = (active, taken) {
                cluster
                    .publish(name, record, &self.component(&record.version)?)
                    .await?;
                activated.push(name.clone());
            }
        }
        Ok((added, activated))
    }

    fn component_path(&self, version: &str) -> PathBuf {
        let hex = version.strip_prefix("sha256:").unwrap_or(version);
        self.dir.join("components").join(format!("{hex}.wasm"))
    }

    fn save(&self, state: &State) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        write_atomically(&self.dir.join("deployments.json"), &json)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::base::sync::lock(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TempDir;

    fn record(version: &str, source: &str) -> VersionRecord {
        VersionRecord {
            version: version.into(),
            deployed_at: 1,
            source: source.into(),
        }
    }

    #[test]
    fn deploys_persist_across_reopen() {
        let dir = TempDir::new("deployments");
        let d = Deployments::open(dir.path()).unwrap();
        assert!(d.versions("svc").is_none());
        d.record_deploy(
            "svc",
            record("sha256:aa", "/x/svc.wasm"),
            b"one",
            Some("/x/svc.wasm"),
        )
        .unwrap();
        d.record_deploy("svc", record("sha256:bb", "upload for svc"), b"two", None)
            .unwrap();
        d.record_deploy("svc", record("sha256:aa", "/x/svc.wasm"), b"one", None)
            .unwrap();

        let d = Deployments::open(dir.path()).unwrap();
        let (versions, active) = d.versions("svc").unwrap();
        let order: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(
            order,
            ["sha256:bb", "sha256:aa"],
            "each version once, latest deploy last"
        );
        assert_eq!(active.as_deref(), Some("sha256:aa"));
        assert_eq!(d.component("sha256:bb").unwrap(), b"two");
        let state = d.snapshot();
        assert_eq!(state.file_digest("/x/svc.wasm"), Some("sha256:aa"));
        assert_eq!(state.active().collect::<Vec<_>>(), [("svc", "sha256:aa")]);
        assert_eq!(state.source_of("svc", "sha256:bb"), Some("upload for svc"));

        d.record_undeploy("svc", Some("/x/svc.wasm")).unwrap();
        let state = Deployments::open(dir.path()).unwrap().snapshot();
        assert_eq!(state.active().count(), 0);
        assert_eq!(state.file_digest("/x/svc.wasm"), None);
    }

    #[cfg(unix)]
    #[test]
    fn redeploying_the_active_version_writes_nothing() {
        use std::os::unix::fs::MetadataExt;
        let dir = TempDir::new("deployments-same");
        let d = Deployments::open(dir.path()).unwrap();
        let file = Some("/x/svc.wasm");
        d.record_deploy("svc", record("sha256:aa", "/x/svc.wasm"), b"one", file)
            .unwrap();
        let json = dir.path().join("deployments.json");
        // Every save replaces the file, so an unchanged inode means no write.
        let inode = std::fs::metadata(&json).unwrap().ino();
        let mut again = record("sha256:aa", "/x/svc.wasm");
        again.deployed_at = 2;
        d.record_deploy("svc", again, b"one", file).unwrap();
        assert_eq!(std::fs::metadata(&json).unwrap().ino(), inode);
        assert_eq!(d.versions("svc").unwrap().0[0].deployed_at, 1);

        // The same bytes uploaded, or the file under another path: recorded.
        d.record_deploy("svc", record("sha256:aa", "upload for svc"), b"one", None)
            .unwrap();
        assert_ne!(std::fs::metadata(&json).unwrap().ino(), inode);
        assert_eq!(d.versions("svc").unwrap().0[0].source, "upload for svc");
    }

    #[test]
    fn history_is_bounded() {
        let dir = TempDir::new("deployments-bounded");
        let d = Deployments::open(dir.path()).unwrap();
        for i in 0..MAX_VERSIONS + 3 {
            d.record_deploy("svc", record(&format!("sha256:{i:02}"), "up"), b"x", None)
                .unwrap();
        }
        let (versions, _) = d.versions("svc").unwrap();
        assert_eq!(versions.len(), MAX_VERSIONS);
        assert_eq!(versions[0].version, "sha256:03");
    }
}
