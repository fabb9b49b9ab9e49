//! Watching component files: a changed file is swapped in, a new file in a
//! watched directory is deployed, a removed file is undeployed.
//!
//! Editors and `cargo build` write a file several times and often through a
//! rename, so the parent directories are watched (not the files' inodes) and
//! events are coalesced: a path is acted on once it has been quiet for
//! [`QUIET`] and its size and modification time stayed the same across that
//! wait. A file that is still half-written fails validation and is simply
//! retried on its next write; the running version keeps serving meanwhile.

use crate::runtime::Runtime;
use crate::runtime::engine::digest;
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// How long a path must be quiet before it is (re)deployed.
pub const QUIET: Duration = Duration::from_millis(300);

/// What is watched: the given component files, and directories whose every
/// `*.wasm` is a component.
#[derive(Clone, Debug, Default)]
pub struct WatchSet {
    pub files: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

impl WatchSet {
    fn covers(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
            || (path.extension().is_some_and(|e| e == "wasm")
                && path
                    .parent()
                    .is_some_and(|p| self.dirs.iter().any(|d| d == p)))
    }
}

/// Starts watching; the returned watcher stops when dropped.
pub fn spawn(runtime: Arc<Runtime>, set: WatchSet) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
            Err(e) => tracing::warn!("file watch error: {e}"),
        })?;
    let parents: BTreeSet<PathBuf> = set
        .files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .chain(set.dirs.iter().cloned())
        .collect();
    for dir in &parents {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    // What each file held when last deployed: an event that leaves the
    // content as it was (a touch, a rewrite of the same build) changes
    // nothing, and must not undo a later upload or rollback.
    let mut deployed = BTreeMap::new();
    for dir in &set.dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if set.covers(&entry.path()) {
                deployed.insert(entry.path(), None);
            }
        }
    }
    for file in set.files.iter().chain(deployed.clone().keys()) {
        deployed.insert(file.clone(), std::fs::read(file).ok().map(|b| digest(&b)));
    }
    tokio::spawn(coalesce(runtime, set, deployed, rx));
    Ok(watcher)
}

/// Size and modification time: enough to tell a file still being written.
fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

async fn coalesce(
    runtime: Arc<Runtime>,
    set: WatchSet,
    mut deployed: BTreeMap<PathBuf, Option<String>>,
    mut rx: mpsc::UnboundedReceiver<PathBuf>,
) {
    let mut pending: BTreeMap<PathBuf, Option<(u64, SystemTime)>> = BTreeMap::new();
    loop {
        let next = if pending.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(QUIET, rx.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    // Quiet for QUIET: act on every path whose file stood still.
                    let ready: Vec<PathBuf> = pending
                        .iter()
                        .filter(|(path, seen)| stamp(path) == **seen)
                        .map(|(path, _)| path.clone())
                        .collect();
                    for path in &ready {
                        pending.remove(path);
                        apply(&runtime, path, &mut deployed).await;
                    }
                    // Files still changing get a fresh stamp and another wait.
                    for (path, seen) in pending.iter_mut() {
                        *seen = stamp(path);
                    }
                    continue;
                }
            }
        };
        let Some(path) = next else { return };
        let path = std::path::absolute(&path).unwrap_or(path);
        if set.covers(&path) {
            let seen = stamp(&path);
            pending.insert(path, seen);
        }
    }
}

async fn apply(runtime: &Runtime, path: &Path, deployed: &mut BTreeMap<PathBuf, Option<String>>) {
    match std::fs::read(path) {
        Ok(bytes) => {
            let version = Some(digest(&bytes));
            if deployed.get(path) == Some(&version) {
                return;
            }
            deployed.insert(path.to_path_buf(), version);
            if let Err(e) = runtime.deploy_changed_file(path, &bytes).await {
                tracing::warn!("{e}");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            deployed.remove(path);
            runtime.undeploy_file(path).await;
        }
        Err(e) => tracing::warn!("{}: cannot read: {e}", path.display()),
    }
}
