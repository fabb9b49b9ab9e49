//! Durable, tamper-evident audit log with group commit.
//!
//! Each host writes one hash chain of events, numbered from 1 without gaps.
//! Where the chain is stored is a [`Storage`]: a SQLite file in the data
//! directory ([`sqlite`], standalone) or the cluster's PostgreSQL
//! ([`postgres`]), where every host writes its own chain beside the others
//! (no lock taken across hosts) and any host reads them all.
//!
//! [`AuditLog::append`] only queues an event; one writer thread takes
//! everything queued at once, stores it in a single transaction (one fsync
//! for the whole batch) and only then answers the [`AuditLog::flush`] calls
//! that were queued with it. Many concurrent requests therefore share one
//! commit instead of paying one each.
//!
//! The writer commits when somebody waits: a [`AuditLog::flush`] is queued,
//! [`MAX_BATCH`] events are, or the oldest queued event is [`LINGER`] old.
//! Events nobody flushes (a deploy, a line logged while a response streams)
//! are therefore durable within [`LINGER`], and a request whose services log
//! several events (report and identity in the seed flow) pays one commit for
//! all of them when its response flushes, not one per event.
//!
//! A commit that fails (disk full, the cluster database unreachable) fails
//! the flushes waiting for it, so their responses do not go out, but its
//! events stay queued and are committed, in order, as soon as storing works
//! again (at most [`MAX_PENDING`] are held; beyond that the oldest are
//! dropped, and that is logged). After a failure the writer re-reads the
//! chain's head before continuing, so a commit whose outcome was unknown
//! (a connection lost while committing) is neither repeated nor skipped.
//!
//! Every event carries `hash = SHA-256(prev_hash ‖ seq ‖ time_ms ‖ service ‖
//! level ‖ message ‖ trace_id)` (integers as 8-byte big-endian, strings
//! prefixed by their 8-byte big-endian length, first `prev_hash` = 32 zero
//! bytes), so editing or deleting a stored row is detected by
//! [`AuditLog::verify_chain`]. Within a chain `time_ms` never decreases (the
//! writer raises a time that would go back to the previous event's), which
//! is what lets a [`Cursor`] page through several chains merged by time.
//!
//! Checkpoints ([`checkpoint`]): once given a key ([`AuditLog::sign_checkpoints`])
//! the writer signs a checkpoint of the events committed since the previous
//! one at each interval, and when it closes; [`bundle`] exports a chain with
//! its checkpoints and verifies such an export offline.
//!
//! Shutdown: the writer thread stops when the last [`AuditLog`] clone is
//! dropped; that drop commits whatever is still queued and waits for the
//! thread. [`AuditLog::close`] is the explicit spelling of the same thing.
//! Open each chain with only one `AuditLog` at a time.

pub mod bundle;
pub mod checkpoint;
pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::base::sync::lock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};

pub use checkpoint::{Checkpoint, Signer};

/// Most events written in one transaction; bounds the time a flush waits
/// behind a burst.
const MAX_BATCH: usize = 4096;
/// Longest an event waits for a commit when nobody flushes it.
const LINGER: Duration = Duration::from_millis(20);
/// How soon a failed commit is tried again when nobody asks sooner.
const RETRY: Duration = Duration::from_millis(250);
/// Most events held while storing fails.
const MAX_PENDING: usize = 100_000;
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Severity of an event, ordered from `Debug` to `Error`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    #[serde(alias = "warning")]
    Warn,
    /// A failure.
    Error,
}

impl Level {
    /// The lowercase name (`"debug"`, `"info"`, `"warn"`, `"error"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The stored number (0 debug … 3 error), so "at least this level" is a
    /// plain `>=`.
    fn number(self) -> i64 {
        self as i64
    }

    fn from_number(n: i64) -> Option<Level> {
        [Level::Debug, Level::Info, Level::Warn, Level::Error]
            .get(usize::try_from(n).ok()?)
            .copied()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a [`Level`] name.
#[derive(thiserror::Error, Debug)]
#[error("unknown level {0:?} (expected debug, info, warn or error)")]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Accepts the names case-insensitively, and `warning` for `warn`.
    fn from_str(s: &str) -> Result<Level, ParseLevelError> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(ParseLevelError(s.to_owned())),
        }
    }
}

/// An event to append; `seq`, time and hash are assigned by the log.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The service the event concerns.
    pub service: String,
    /// Severity.
    pub level: Level,
    /// Free text.
    pub message: String,
    /// Request trace id, empty if none.
    pub trace_id: String,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// The host whose chain holds the event.
    pub host: String,
    /// Position in that host's chain, from 1 without gaps.
    pub seq: u64,
    /// When [`AuditLog::append`] was called, Unix milliseconds (raised to
    /// the previous event's time where it would go back).
    pub time_ms: u64,
    /// The service the event concerns.
    pub service: String,
    /// Severity.
    pub level: Level,
    /// Free text.
    pub message: String,
    /// Request trace id, empty if none.
    pub trace_id: String,
    /// Chain hash, lowercase hex.
    pub hash: String,
}

/// Where a reader has got to: the last `seq` seen of each host's chain.
/// Written `HOST:SEQ,HOST:SEQ` (chains not named start from the beginning).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<String, u64>);

impl Cursor {
    /// After event `seq` of `host`'s chain.
    pub fn at(host: &str, seq: u64) -> Cursor {
        Cursor(BTreeMap::from([(host.to_string(), seq)]))
    }

    /// The last `seq` seen of `host`'s chain (0: none).
    pub fn seen(&self, host: &str) -> u64 {
        self.0.get(host).copied().unwrap_or(0)
    }

    /// Moves past `events`.
    pub fn advance(&mut self, events: &[Event]) {
        for e in events {
            let seen = self.0.entry(e.host.clone()).or_default();
            *seen = (*seen).max(e.seq);
        }
    }

    /// Each chain named, with its last `seq` seen.
    pub fn chains(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(host, seq)| (host.as_str(), *seq))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (host, seq)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{host}:{seq}")?;
        }
        Ok(())
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Cursor, String> {
        let mut cursor = Cursor::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let parsed = part.rsplit_once(':').and_then(|(host, seq)| {
                crate::core::names::validate_service_name(host).ok()?;
                Some((host, seq.parse::<u64>().ok()?))
            });
            let Some((host, seq)) = parsed else {
                return Err(format!(
                    "cursor part {part:?} is not HOST:SEQ (give back the cursor of a previous answer)"
                ));
            };
            cursor.0.insert(host.to_string(), seq);
        }
        Ok(cursor)
    }
}

/// Filters for [`AuditLog::query`]; all given filters must match.
#[derive(Default, Clone, Debug)]
pub struct Query {
    /// Only this service.
    pub service: Option<String>,
    /// Only this trace id.
    pub trace: Option<String>,
    /// Only events at least this severe.
    pub level: Option<Level>,
    /// Only this host's chain.
    pub host: Option<String>,
    /// Only events after this.
    pub cursor: Cursor,
    /// At most this many events (default 100, capped at 1000).
    pub limit: Option<usize>,
}

impl Query {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
    }
}

/// Why an audit log operation failed.
#[derive(thiserror::Error, Debug)]
pub enum AuditError {
    /// The SQLite database failed.
    #[error("audit store: {0}")]
    Storage(#[from] rusqlite::Error),
    /// The cluster database did not answer or refused.
    #[error("audit log in the cluster database: {0}")]
    Unavailable(String),
    /// A file or the writer thread could not be created.
    #[error("audit store I/O: {0}")]
    Io(#[from] io::Error),
    /// Stored data cannot be continued from (e.g. a malformed last hash).
    #[error("audit store corrupt: {0}")]
    Corrupt(String),
    /// A stored row cannot be read back as an event (tampered with).
    #[error("audit event {seq} is unreadable: {why}")]
    BadRow { seq: u64, why: String },
    /// A batch failed to commit; its events are held and retried.
    #[error("audit commit failed: {0}")]
    Commit(String),
    /// The writer thread is no longer running.
    #[error("audit writer has stopped")]
    WriterGone,
}

impl From<crate::base::sqlite::OpenError> for AuditError {
    fn from(e: crate::base::sqlite::OpenError) -> Self {
        match e {
            crate::base::sqlite::OpenError::Io(e) => AuditError::Io(e),
            crate::base::sqlite::OpenError::Sqlite(e) => AuditError::Storage(e),
        }
    }
}

/// The last event of a chain: where the next commit continues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Head {
    seq: u64,
    time_ms: u64,
    hash: [u8; 32],
}

/// Where one host's chain is stored, and every chain is read.
trait Storage: Send + Sync + 'static {
    /// The last stored event of this host's chain. Blocking.
    fn head(&self) -> Result<Head, AuditError>;
    /// Stores `events`, which continue the head without a gap, in one
    /// transaction: all of them or none. Blocking.
    fn insert(&self, events: &[Event]) -> Result<(), AuditError>;
    /// Stored events matching `q`: one chain in `seq` order, several merged
    /// by time.
    fn query(self: Arc<Self>, q: Query) -> BoxFuture<Result<Vec<Event>, AuditError>>;
    /// This host's latest checkpoint. Blocking.
    fn last_checkpoint(&self) -> Result<Option<Checkpoint>, AuditError>;
    /// Stores a checkpoint of this host's chain. Blocking.
    fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AuditError>;
    /// Checkpoints of one chain in `range`, in `to_seq` order.
    fn checkpoints(
        self: Arc<Self>,
        range: CheckpointRange,
    ) -> BoxFuture<Result<Vec<Checkpoint>, AuditError>>;
    /// The hosts that have a chain here, by id.
    fn chains(self: Arc<Self>) -> BoxFuture<Result<Vec<String>, AuditError>>;
}

/// Which checkpoints of a chain to read: `to_seq` in `after+1..=until`, at
/// most `limit`.
#[derive(Clone, Debug)]
pub struct CheckpointRange {
    pub host: String,
    pub after: u64,
    pub until: u64,
    pub limit: usize,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

enum Msg {
    Event {
        time_ms: u64,
        event: NewEvent,
    },
    Barrier(oneshot::Sender<Result<(), String>>),
    /// Sign checkpoints with this key every `every`, and at close.
    Sign {
        signer: Signer,
        every: Duration,
    },
    /// Commit what is queued, then checkpoint it now.
    Checkpoint(oneshot::Sender<Result<Option<Checkpoint>, String>>),
    /// Record each commit's duration and size here.
    Metrics(crate::core::metrics::AuditMetrics),
}

/// Handle to the audit log; clones share one writer thread.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Option` only so that `Drop` can close the channel before joining.
    tx: Option<mpsc::Sender<Msg>>,
    host: String,
    storage: Arc<dyn Storage>,
    durable: Arc<watch::Sender<u64>>,
    /// Transactions committed since open.
    commits: Arc<AtomicU64>,
    /// Why storing fails, while it does.
    failing: Arc<Mutex<Option<String>>>,
    writer: Option<JoinHandle<()>>,
    reported_dead: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain, commit and exit.
        drop(self.tx.take());
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("audit writer thread panicked");
        }
    }
}

/// What a flushed event survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every group commit is fsynced (`synchronous=FULL`): events survive a
    /// crash of the process, of the OS and a power loss.
    #[default]
    Full,
    /// Commits reach the OS but are fsynced only at checkpoints (WAL with
    /// `synchronous=NORMAL`): events survive `kill -9` and any crash of the
    /// process, but an OS crash or power loss may lose the latest ones.
    Process,
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Durability, String> {
        match s {
            "full" => Ok(Durability::Full),
            "process" => Ok(Durability::Process),
            other => Err(format!(
                "unknown durability {other:?} (expected full or process)"
            )),
        }
    }
}

impl AuditLog {
    /// Opens (creating if needed) the SQLite log at `path` with full
    /// durability, as host `host`'s chain.
    pub fn open(path: &Path, host: &str) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(path, host, Durability::Full)
    }

    /// Opens (creating if needed) the SQLite log at `path`, continuing its
    /// sequence and hash chain, and starts the writer thread.
    pub fn open_with(
        path: &Path,
        host: &str,
        durability: Durability,
    ) -> Result<AuditLog, AuditError> {
        let storage = sqlite::SqliteLog::open(path, host, durability)?;
        AuditLog::start(host, Arc::new(storage))
    }

    /// Opens host `host`'s chain in the cluster database behind `pool`, and
    /// starts the writer thread, which reaches the database through this
    /// tokio runtime.
    pub async fn open_cluster(
        pool: deadpool_postgres::Pool,
        host: &str,
    ) -> Result<AuditLog, AuditError> {
        let storage = postgres::PgLog::new(pool, host, tokio::runtime::Handle::current());
        let head = storage.fetch_head().await?;
        AuditLog::start_at(host, Arc::new(storage), head)
    }

    fn start(host: &str, storage: Arc<dyn Storage>) -> Result<AuditLog, AuditError> {
        let head = storage.head()?;
        AuditLog::start_at(host, storage, head)
    }

    fn start_at(host: &str, storage: Arc<dyn Storage>, head: Head) -> Result<AuditLog, AuditError> {
        let durable = Arc::new(watch::Sender::new(head.seq));
        let commits = Arc::new(AtomicU64::new(0));
        let failing = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            storage: storage.clone(),
            host: host.to_string(),
            head,
            stale: false,
            signing: None,
            metrics: None,
            durable: durable.clone(),
            commits: commits.clone(),
            failing: failing.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run(rx))?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                tx: Some(tx),
                host: host.to_string(),
                storage,
                durable,
                commits,
                failing,
                writer: Some(handle),
                reported_dead: AtomicBool::new(false),
            }),
        })
    }

    /// `hms-host cluster import`: copies the standalone log at `path`, as
    /// it is (every `seq`, time and hash), into the cluster database behind
    /// `pool` as host `host`'s chain, then anchors it: a first event written
    /// in the cluster continues the old chain and names its head. The chain
    /// must be new to the cluster, or this very log imported before (then
    /// nothing is copied again). Returns the events copied.
    pub async fn import_into_cluster(
        path: &Path,
        pool: deadpool_postgres::Pool,
        host: &str,
    ) -> Result<u64, AuditError> {
        let local = AuditLog::open(path, host)?;
        let head = local.last_seq();
        if head == 0 {
            return Ok(0);
        }
        if let Some(bad) = local.verify_chain().await? {
            return Err(AuditError::Corrupt(format!(
                "{}: the chain does not hold at event {bad}; not imported",
                path.display()
            )));
        }
        let last = local
            .query(&Query {
                cursor: Cursor::at(host, head - 1),
                limit: Some(1),
                ..Query::default()
            })
            .await?;
        let theirs = postgres::PgLog::new(pool.clone(), host, tokio::runtime::Handle::current());
        theirs.claim_chain().await?;
        if theirs.fetch_head().await?.seq > 0 {
            if theirs.has_event(last.first()).await? {
                return Ok(0);
            }
            return Err(AuditError::Corrupt(format!(
                "the cluster already has an audit chain of host {host:?} that is not {}; \
                 import it under another --host-id",
                path.display()
            )));
        }
        let mut cursor = Cursor::default();
        let mut copied = 0;
        loop {
            let page = local
                .query(&Query {
                    cursor: cursor.clone(),
                    limit: Some(MAX_LIMIT),
                    ..Query::default()
                })
                .await?;
            if page.is_empty() {
                break;
            }
            cursor.advance(&page);
            theirs.store(&page).await?;
            copied += page.len() as u64;
        }
        // Its checkpoints too, so the imported chain still verifies.
        let mut after = 0;
        loop {
            let page = local
                .checkpoints(CheckpointRange {
                    host: host.to_string(),
                    after,
                    until: u64::MAX,
                    limit: MAX_LIMIT,
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.to_seq;
            theirs.store_checkpoints(&page).await?;
        }
        local.close();
        let head_hash = last.first().map(|e| e.hash.as_str()).unwrap_or_default();
        let anchored = AuditLog::open_cluster(pool, host).await?;
        anchored.append(NewEvent {
            service: crate::core::HOST_SERVICE.to_string(),
            level: Level::Info,
            message: format!(
                "imported the standalone audit log {}: events 1..{head}, chain head {head_hash}; \
                 this event continues that chain",
                path.display()
            ),
            trace_id: String::new(),
        });
        anchored.flush().await?;
        Ok(copied)
    }

    /// The host whose chain this log writes.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Queues an event. Never blocks and never fails: if the writer thread
    /// has died the event is dropped and that is logged once. The queue is
    /// unbounded, so a stalled disk shows up as memory growth, not latency.
    pub fn append(&self, event: NewEvent) {
        let msg = Msg::Event {
            time_ms: crate::base::clock::unix_millis(),
            event,
        };
        let sent = self
            .inner
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(msg).is_ok());
        if !sent && !self.inner.reported_dead.swap(true, Ordering::Relaxed) {
            tracing::error!("audit writer has stopped; audit events are being dropped");
        }
    }

    /// Resolves once every event appended (by any handle) before this call
    /// is durably committed. While commits fail, resolves with
    /// [`AuditError::Commit`] (the events stay queued and are retried).
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or(AuditError::WriterGone)?;
        tx.send(Msg::Barrier(done))
            .map_err(|_| AuditError::WriterGone)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditError::Commit(e)),
            Err(_) => Err(AuditError::WriterGone),
        }
    }

    /// Durable events matching `q`: this host's chain in `seq` order, or in
    /// a cluster every host's chain merged by time (advance the cursor with
    /// [`Cursor::advance`] to read on). Never waits for the writer.
    pub async fn query(&self, q: &Query) -> Result<Vec<Event>, AuditError> {
        self.inner.storage.clone().query(q.clone()).await
    }

    /// Why events cannot be stored, while the latest commit has failed and
    /// its events are held for a retry; `None` while storing works.
    pub fn failing(&self) -> Option<String> {
        lock(&self.inner.failing).clone()
    }

    /// Transactions (each one disk sync) committed since this log was
    /// opened; the events committed since then, divided by it, are the
    /// average group-commit size.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Watches the last durable `seq` of this host's chain (for live tail
    /// and long-polling).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.durable.subscribe()
    }

    /// Recomputes this host's hash chain over the whole log and returns the
    /// `seq` of the first event that does not match (edited, or missing
    /// when rows were deleted), or `None` when the chain is intact. Reads
    /// the whole chain: proportional to the log's size.
    pub async fn verify_chain(&self) -> Result<Option<u64>, AuditError> {
        // Taken before reading, so every event counted here is visible to
        // the reads; fewer rows than this means the tail was deleted.
        let durable = self.last_seq();
        let mut prev = [0u8; 32];
        let mut expected = 1u64;
        // An unreadable row: the events before it are checked first.
        let mut unreadable: Option<u64> = None;
        loop {
            let limit = match unreadable {
                Some(seq) if seq <= expected => return Ok(Some(seq)),
                Some(seq) => (seq - expected).min(MAX_LIMIT as u64) as usize,
                None => MAX_LIMIT,
            };
            let page = self
                .query(&Query {
                    host: Some(self.host().to_string()),
                    cursor: Cursor::at(self.host(), expected - 1),
                    limit: Some(limit),
                    ..Query::default()
                })
                .await;
            let page = match page {
                Err(AuditError::BadRow { seq, .. }) if unreadable.is_none() => {
                    unreadable = Some(seq);
                    continue;
                }
                page => page?,
            };
            if page.is_empty() {
                let missing = unreadable.is_some() || expected <= durable;
                return Ok(missing.then_some(expected));
            }
            for event in &page {
                if event.seq != expected {
                    return Ok(Some(expected));
                }
                let hash = chain_hash(&prev, event);
                if hex::encode(hash) != event.hash {
                    return Ok(Some(event.seq));
                }
                prev = hash;
                expected += 1;
            }
        }
    }

    /// From now on the writer signs a checkpoint with `signer` every
    /// `every` (when events were committed since the last one) and one
    /// more when the log closes.
    pub fn sign_checkpoints(&self, signer: Signer, every: Duration) {
        if let Some(tx) = &self.inner.tx {
            let _ = tx.send(Msg::Sign { signer, every });
        }
    }

    /// From now on every commit's duration and size is recorded in
    /// `metrics`.
    pub fn record_metrics(&self, metrics: crate::core::metrics::AuditMetrics) {
        if let Some(tx) = &self.inner.tx {
            let _ = tx.send(Msg::Metrics(metrics));
        }
    }

    /// Commits everything appended before this call, then signs a
    /// checkpoint of it at once; `None` when nothing new needs one. Fails
    /// when the log has no signing key ([`AuditLog::sign_checkpoints`]) or
    /// storing fails.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let (done, wait) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or(AuditError::WriterGone)?;
        tx.send(Msg::Checkpoint(done))
            .map_err(|_| AuditError::WriterGone)?;
        match wait.await {
            Ok(Ok(checkpoint)) => Ok(checkpoint),
            Ok(Err(e)) => Err(AuditError::Commit(e)),
            Err(_) => Err(AuditError::WriterGone),
        }
    }

    /// Checkpoints of one chain, in `to_seq` order.
    pub async fn checkpoints(&self, range: CheckpointRange) -> Result<Vec<Checkpoint>, AuditError> {
        self.inner.storage.clone().checkpoints(range).await
    }

    /// The hosts whose chains this log reads: this host standalone, every
    /// host that ever logged in a cluster.
    pub async fn chains(&self) -> Result<Vec<String>, AuditError> {
        self.inner.storage.clone().chains().await
    }

    /// The last durably committed `seq` of this host's chain (0: empty).
    pub fn last_seq(&self) -> u64 {
        *self.inner.durable.borrow()
    }

    /// Drops this handle. If it is the last one, commits everything still
    /// queued and waits for the writer thread to finish; dropping the last
    /// handle does the same.
    pub fn close(self) {
        drop(self);
    }
}

/// State owned by the writer thread.
struct Writer {
    storage: Arc<dyn Storage>,
    host: String,
    /// The last committed event.
    head: Head,
    /// A commit failed: re-read the head before the next one (it may have
    /// been stored after all).
    stale: bool,
    /// Set once the log has a key to sign checkpoints with.
    signing: Option<Signing>,
    metrics: Option<crate::core::metrics::AuditMetrics>,
    durable: Arc<watch::Sender<u64>>,
    commits: Arc<AtomicU64>,
    failing: Arc<Mutex<Option<String>>>,
}

/// The writer's checkpoint schedule.
struct Signing {
    signer: Signer,
    every: Duration,
    /// When the next checkpoint is due.
    next: Instant,
    /// The latest stored checkpoint (`None`: not read yet, or unknown
    /// after a failed store).
    last: Option<Option<Checkpoint>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut events: Vec<(u64, NewEvent)> = Vec::new();
        let mut barriers = Vec::new();
        let mut checkpoint_waiters = Vec::new();
        // When the oldest uncommitted event was queued.
        let mut oldest: Option<Instant> = None;
        // Why the last commit failed, while its events are still queued.
        let mut failing: Option<String> = None;
        loop {
            // Idle: block for the next message. Holding events nobody waits
            // for yet: block at most until the oldest is LINGER old (or, when
            // storing fails, until the next retry).
            let wait = if failing.is_some() { RETRY } else { LINGER };
            let deadline = [
                oldest.map(|since| since + wait),
                self.signing.as_ref().map(|s| s.next),
            ]
            .into_iter()
            .flatten()
            .min();
            let msg = match deadline {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            let closed = match msg {
                Ok(first) => {
                    // Take whatever else is already queued: under load
                    // batches grow by themselves.
                    let mut next = Some(first);
                    while let Some(msg) = next {
                        match msg {
                            Msg::Event { time_ms, event } => {
                                oldest.get_or_insert_with(Instant::now);
                                events.push((time_ms, event));
                            }
                            Msg::Barrier(done) => barriers.push(done),
                            Msg::Checkpoint(done) => checkpoint_waiters.push(done),
                            Msg::Metrics(metrics) => self.metrics = Some(metrics),
                            Msg::Sign { signer, every } => {
                                self.signing = Some(Signing {
                                    signer,
                                    every,
                                    next: Instant::now() + every,
                                    last: None,
                                });
                            }
                        }
                        next = if events.len() < MAX_BATCH {
                            rx.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let checkpoint_due = closed
                || !checkpoint_waiters.is_empty()
                || self
                    .signing
                    .as_ref()
                    .is_some_and(|s| Instant::now() >= s.next);
            let due = checkpoint_due
                || !barriers.is_empty()
                || events.len() >= MAX_BATCH
                || oldest.is_some_and(|since| since.elapsed() >= wait);
            if !due {
                continue;
            }
            failing = self.commit_all(&mut events).err();
            lock(&self.failing).clone_from(&failing);
            if let Some(why) = &failing {
                if events.len() > MAX_PENDING {
                    let dropped = events.len() - MAX_PENDING;
                    events.drain(..dropped);
                    tracing::error!(dropped, "audit events dropped: storing has failed too long");
                }
                tracing::error!(error = %why, held = events.len(), "audit commit failed; retrying");
                // Wait RETRY from now before trying again unasked.
                oldest = Some(Instant::now());
            } else {
                oldest = None;
            }
            if !barriers.is_empty() {
                let outcome = failing.clone().map_or(Ok(()), Err);
                for done in barriers.drain(..) {
                    let _ = done.send(outcome.clone());
                }
            }
            if checkpoint_due {
                let outcome = match &failing {
                    Some(why) => Err(why.clone()),
                    None => self.checkpoint().map_err(|e| e.to_string()),
                };
                if let Some(signing) = &mut self.signing {
                    let after = if outcome.is_ok() {
                        signing.every
                    } else {
                        RETRY
                    };
                    signing.next = Instant::now() + after;
                }
                if let Err(why) = &outcome
                    && self.signing.is_some()
                {
                    tracing::error!(error = %why, "audit checkpoint failed; retrying");
                }
                for done in checkpoint_waiters.drain(..) {
                    let _ = done.send(outcome.clone());
                }
            }
            if closed {
                if !events.is_empty() {
                    tracing::error!(
                        lost = events.len(),
                        "audit log closed with events it could not store"
                    );
                }
                return;
            }
        }
    }

    /// Commits `events` in batches of at most [`MAX_BATCH`], removing each
    /// batch once stored; stops at the first failure.
    fn commit_all(&mut self, events: &mut Vec<(u64, NewEvent)>) -> Result<(), String> {
        while !events.is_empty() {
            let n = events.len().min(MAX_BATCH);
            self.commit(&events[..n]).map_err(|e| e.to_string())?;
            events.drain(..n);
        }
        Ok(())
    }

    /// Signs and stores a checkpoint of the events committed since the
    /// last one; `None` when there are none, or no key to sign with.
    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        if self.signing.is_none() {
            return Err(AuditError::Commit(
                "this audit log has no key to sign checkpoints with".into(),
            ));
        }
        if self.stale {
            self.head = self.storage.head()?;
            self.stale = false;
        }
        let signing = self.signing.as_mut().expect("checked above");
        let last = match &signing.last {
            Some(last) => last.clone(),
            None => self.storage.last_checkpoint()?,
        };
        signing.last = Some(last.clone());
        let covered = last.as_ref().map_or(0, |c| c.to_seq);
        if self.head.seq <= covered {
            return Ok(None);
        }
        let checkpoint = Checkpoint::sign(
            &signing.signer,
            &self.host,
            last.as_ref(),
            self.head.seq,
            &self.head.hash,
            crate::base::clock::unix_millis(),
        );
        if let Err(e) = self.storage.insert_checkpoint(&checkpoint) {
            // It may have been stored after all: read it back next time.
            signing.last = None;
            return Err(e);
        }
        signing.last = Some(Some(checkpoint.clone()));
        Ok(Some(checkpoint))
    }

    fn commit(&mut self, batch: &[(u64, NewEvent)]) -> Result<(), AuditError> {
        if self.stale {
            self.head = self.storage.head()?;
            self.stale = false;
        }
        let mut head = self.head;
        let rows: Vec<Event> = batch
            .iter()
            .map(|(time_ms, new)| {
                let mut event = Event {
                    host: self.host.clone(),
                    seq: head.seq + 1,
                    time_ms: (*time_ms).max(head.time_ms),
                    service: new.service.clone(),
                    level: new.level,
                    message: new.message.clone(),
                    trace_id: new.trace_id.clone(),
                    hash: String::new(),
                };
                let hash = chain_hash(&head.hash, &event);
                event.hash = hex::encode(hash);
                head = Head {
                    seq: event.seq,
                    time_ms: event.time_ms,
                    hash,
                };
                event
            })
            .collect();
        let started = Instant::now();
        if let Err(e) = self.storage.insert(&rows) {
            self.stale = true;
            return Err(e);
        }
        if let Some(m) = &self.metrics {
            m.commit_seconds.observe(started.elapsed().as_secs_f64());
            m.commit_events.observe(rows.len() as f64);
        }
        // Only advance once durable: a failed batch leaves no gap in seq.
        self.head = head;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.durable.send_replace(head.seq);
        Ok(())
    }
}

/// The chain hash of `event` after `prev`. See the module docs for the
/// encoding (the host is not part of it: a chain is one host's).
fn chain_hash(prev: &[u8; 32], event: &Event) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(event.seq.to_be_bytes());
    h.update(event.time_ms.to_be_bytes());
    for field in [
        event.service.as_str(),
        event.level.as_str(),
        event.message.as_str(),
        event.trace_id.as_str(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::{Backend, TempDir, fresh_pool, on_every_backend};
    use std::collections::HashSet;

    // One conformance suite, run against every backend: each test below
    // runs once on SQLite and once on the tests' PostgreSQL.

    /// Where one test keeps its log: a fresh directory, or a fresh cluster
    /// database (with rows for the hosts whose chains it writes).
    enum Fixture {
        Sqlite(TempDir),
        Postgres(deadpool_postgres::Pool),
    }

    impl Fixture {
        async fn new(kind: Backend) -> Fixture {
            match kind {
                Backend::Sqlite => {
                    let dir = TempDir::new("audit");
                    std::fs::create_dir_all(dir.path()).unwrap();
                    Fixture::Sqlite(dir)
                }
                Backend::Postgres => {
                    let pool = fresh_pool("audit").await;
                    for host in ["h1", "h2"] {
                        pool.get()
                            .await
                            .unwrap()
                            .execute(
                                "INSERT INTO hosts (host_id, url, instance, lease_until)
                                 VALUES ($1, 'http://127.0.0.1:1', 'test', now())",
                                &[&host],
                            )
                            .await
                            .unwrap();
                    }
                    Fixture::Postgres(pool)
                }
            }
        }

        /// Host `host`'s log (again: a reopen).
        async fn log_of(&self, host: &str) -> AuditLog {
            match self {
                Fixture::Sqlite(dir) => AuditLog::open(&dir.path().join("audit.db"), host).unwrap(),
                Fixture::Postgres(pool) => {
                    AuditLog::open_cluster(pool.clone(), host).await.unwrap()
                }
            }
        }

        async fn log(&self) -> AuditLog {
            self.log_of("h1").await
        }

        /// Runs `sql` on the stored events, `{events}` naming their table.
        async fn tamper(&self, sql: &str) {
            match self {
                Fixture::Sqlite(dir) => {
                    let raw = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
                    raw.execute_batch(&sql.replace("{events}", "events"))
                        .unwrap();
                }
                Fixture::Postgres(pool) => {
                    let client = pool.get().await.unwrap();
                    client
                        .batch_execute(&sql.replace("{events}", "audit_events"))
                        .await
                        .unwrap();
                }
            }
        }

        /// Makes every insert into the events fail (`refuse`), or work again.
        async fn refuse_inserts(&self, refuse: bool) {
            let sql = match (self, refuse) {
                (Fixture::Sqlite(_), true) => {
                    "CREATE TRIGGER refuse BEFORE INSERT ON events
                     BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;"
                }
                (Fixture::Sqlite(_), false) => "DROP TRIGGER refuse;",
                (Fixture::Postgres(_), true) => {
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
                       $$BEGIN RAISE EXCEPTION 'disk full (test)'; END$$;
                     CREATE TRIGGER refuse BEFORE INSERT ON audit_events
                       FOR EACH STATEMENT EXECUTE FUNCTION refuse();"
                }
                (Fixture::Postgres(_), false) => {
                    "DROP TRIGGER refuse ON audit_events; DROP FUNCTION refuse();"
                }
            };
            self.tamper(sql).await;
        }
    }

    fn event(service: &str, level: Level, message: &str, trace_id: &str) -> NewEvent {
        NewEvent {
            service: service.into(),
            level,
            message: message.into(),
            trace_id: trace_id.into(),
        }
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    fn after(seq: u64) -> Cursor {
        Cursor::at("h1", seq)
    }

    on_every_backend!(
        append_flush_query,
        query_filters,
        reopen_continues_sequence_and_chain,
        close_commits_unflushed_events,
        verify_chain_detects_tampering,
        concurrent_appends_arrive_exactly_once,
        one_flush_commits_everything_queued_before_it_at_once,
        unflushed_events_are_committed_within_the_linger,
        flush_with_nothing_appended,
        a_failed_commit_fails_its_flushes_and_is_retried_without_a_gap,
        chains_of_two_hosts_are_read_together_and_the_cursor_misses_nothing,
        checkpoints_cover_each_commit_once_and_chain_across_reopens,
        checkpoints_are_signed_on_schedule_and_at_close,
        an_export_of_every_chain_verifies_and_a_rewritten_chain_does_not,
    );

    fn signer() -> Signer {
        Signer {
            kid: "test-key".into(),
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    fn jwks_of(signers: &[&Signer]) -> bundle::Keys {
        let jwks = crate::core::auth::Jwks {
            keys: signers
                .iter()
                .map(|s| crate::core::auth::tokens::jwk(&s.kid, &s.key.verifying_key().to_bytes()))
                .collect(),
        };
        bundle::Keys::from_jwks(&jwks).unwrap()
    }

    /// The bundle of `range` as lines.
    async fn export_lines(log: &AuditLog, range: bundle::Range) -> Vec<String> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, AuditError>>(16);
        let reader = tokio::spawn(async move {
            let mut text = Vec::new();
            while let Some(chunk) = rx.recv().await {
                text.extend_from_slice(&chunk.unwrap());
            }
            String::from_utf8(text).unwrap()
        });
        bundle::export(log, &range, tx).await.unwrap();
        reader.await.unwrap().lines().map(str::to_owned).collect()
    }

    fn verify(
        keys: &bundle::Keys,
        lines: &[String],
    ) -> Result<Vec<bundle::ChainSummary>, bundle::Problem> {
        let mut v = bundle::Verifier::new(keys.clone());
        for line in lines {
            v.line(line)?;
        }
        Ok(v.finish())
    }

    async fn checkpoints_cover_each_commit_once_and_chain_across_reopens(kind: Backend) {
        let place = Fixture::new(kind).await;
        let key = signer();
        let log = place.log().await;
        assert!(log.checkpoint().await.is_err(), "no key yet");
        log.sign_checkpoints(key.clone(), Duration::from_secs(3600));
        assert_eq!(log.checkpoint().await.unwrap(), None, "nothing to cover");
        for i in 0..3 {
            log.append(event("orders", Level::Info, &format!("e{i}"), ""));
        }
        let first = log.checkpoint().await.unwrap().expect("covers 1..3");
        assert_eq!(
            (first.from_seq, first.to_seq, first.host.as_str()),
            (1, 3, "h1")
        );
        assert_eq!(first.prev_hash, checkpoint::ZERO_HASH);
        let third = log
            .query(&Query {
                cursor: after(2),
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(first.head_hash, third[0].hash);
        first.verify(&key.key.verifying_key()).unwrap();
        assert_eq!(log.checkpoint().await.unwrap(), None, "already covered");
        log.append(event("orders", Level::Info, "e3", ""));
        let second = log.checkpoint().await.unwrap().unwrap();
        assert_eq!((second.from_seq, second.to_seq), (4, 4));
        assert_eq!(second.prev_hash, first.hash);
        drop(log);

        // A reopened log continues from the stored checkpoints.
        let log = place.log().await;
        log.sign_checkpoints(key.clone(), Duration::from_secs(3600));
        log.append(event("orders", Level::Info, "e4", ""));
        let third = log.checkpoint().await.unwrap().unwrap();
        assert_eq!((third.from_seq, third.to_seq), (5, 5));
        assert_eq!(third.prev_hash, second.hash);
        let stored = log
            .checkpoints(CheckpointRange {
                host: "h1".into(),
                after: 0,
                until: u64::MAX,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(stored, [first, second, third]);
    }

    async fn checkpoints_are_signed_on_schedule_and_at_close(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        log.sign_checkpoints(signer(), Duration::from_millis(100));
        log.append(event("orders", Level::Info, "a", ""));
        log.flush().await.unwrap();
        let range = || CheckpointRange {
            host: "h1".into(),
            after: 0,
            until: u64::MAX,
            limit: 100,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.checkpoints(range()).await.unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no checkpoint within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Idle intervals add nothing.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(log.checkpoints(range()).await.unwrap().len(), 1);
        // Closing covers what came since.
        log.append(event("orders", Level::Info, "b", ""));
        let reader = place.log_of("h2").await;
        log.close();
        let all = match kind {
            Backend::Sqlite => place.log().await.checkpoints(range()).await.unwrap(),
            Backend::Postgres => reader.checkpoints(range()).await.unwrap(),
        };
        assert_eq!(all.iter().map(|c| c.to_seq).collect::<Vec<_>>(), [1, 2]);
    }

    async fn an_export_of_every_chain_verifies_and_a_rewritten_chain_does_not(kind: Backend) {
        let place = Fixture::new(kind).await;
        let hosts: &[&str] = match kind {
            Backend::Sqlite => &["h1"],
            Backend::Postgres => &["h1", "h2"],
        };
        let keys: Vec<Signer> = hosts
            .iter()
            .map(|h| Signer {
                kid: format!("key-{h}"),
                ..signer()
            })
            .collect();
        let mut logs = Vec::new();
        for (host, key) in hosts.iter().zip(&keys) {
            let log = place.log_of(host).await;
            log.sign_checkpoints(key.clone(), Duration::from_secs(3600));
            logs.push(log);
        }
        for round in 0..3 {
            for log in &logs {
                for i in 0..4 {
                    log.append(event("orders", Level::Info, &format!("r{round} e{i}"), "t"));
                }
                log.checkpoint().await.unwrap().unwrap();
            }
        }
        logs[0].append(event("orders", Level::Info, "tail", ""));
        logs[0].flush().await.unwrap();
        let all_keys = jwks_of(&keys.iter().collect::<Vec<_>>());
        let lines = export_lines(&logs[0], bundle::Range::default()).await;
        assert_eq!(lines.len(), hosts.len() * (12 + 3) + 1, "{lines:#?}");
        let summary = verify(&all_keys, &lines).unwrap();
        assert_eq!(summary.len(), hosts.len());
        assert_eq!(
            (
                summary[0].events,
                summary[0].checkpoints,
                summary[0].uncovered
            ),
            (13, 3, 1)
        );
        // A part of one chain verifies by itself.
        let part = export_lines(
            &logs[0],
            bundle::Range {
                host: Some("h1".into()),
                from_seq: Some(3),
                to_seq: Some(9),
            },
        )
        .await;
        let summary = verify(&all_keys, &part).unwrap();
        assert_eq!(
            (
                summary[0].first_seq,
                summary[0].last_seq,
                summary[0].checkpoints,
                summary[0].uncovered
            ),
            (3, 9, 2, 1)
        );
        // Without the other host's key its checkpoints do not verify.
        if hosts.len() > 1 {
            let problem = verify(&jwks_of(&[&keys[0]]), &lines).unwrap_err();
            assert!(problem.why.contains("key-h2"), "{problem}");
        }

        // Someone with the database rewrites event 6 and every hash after
        // it: the chain holds, the checkpoint of 5..8 does not.
        place
            .tamper("UPDATE {events} SET message = 'forged' WHERE seq = 6 AND message = 'r1 e1'")
            .await;
        drop(logs);
        let log = place.log().await;
        let mut prev = [0u8; 32];
        let mut rewritten = Vec::new();
        for mut e in log
            .query(&Query {
                host: Some("h1".into()),
                limit: Some(100),
                ..Query::default()
            })
            .await
            .unwrap()
        {
            let h = chain_hash(&prev, &e);
            e.hash = hex::encode(h);
            prev = h;
            rewritten.push(e);
        }
        for e in &rewritten {
            let host = if kind == Backend::Sqlite {
                ""
            } else {
                " AND host_id = 'h1'"
            };
            place
                .tamper(&format!(
                    "UPDATE {{events}} SET hash = '{}' WHERE seq = {}{host}",
                    e.hash, e.seq
                ))
                .await;
        }
        assert_eq!(
            log.verify_chain().await.unwrap(),
            None,
            "the chain itself holds"
        );
        let lines = export_lines(&log, bundle::Range::default()).await;
        let problem = verify(&all_keys, &lines).unwrap_err();
        assert_eq!((problem.host.as_str(), problem.seq), ("h1", 5), "{problem}");
        assert!(problem.why.contains("rewritten"), "{problem}");
    }

    async fn append_flush_query(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        let before = crate::base::clock::unix_millis();
        log.append(event("orders", Level::Info, "created", "t1"));
        log.append(event("billing", Level::Warn, "slow", "t1"));
        log.append(event("orders", Level::Error, "failed", "t2"));
        log.flush().await.unwrap();
        assert_eq!(log.last_seq(), 3);
        assert_eq!(*log.subscribe().borrow(), 3);

        let all = log.query(&Query::default()).await.unwrap();
        assert_eq!(seqs(&all), [1, 2, 3]);
        let e = &all[1];
        assert_eq!(
            (e.host.as_str(), e.service.as_str(), e.level),
            ("h1", "billing", Level::Warn)
        );
        assert_eq!((e.message.as_str(), e.trace_id.as_str()), ("slow", "t1"));
        assert!(e.time_ms >= before && e.time_ms <= crate::base::clock::unix_millis());
        assert_eq!(e.hash.len(), 64);
        assert_eq!(log.verify_chain().await.unwrap(), None);
    }

    async fn query_filters(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        let levels = [Level::Debug, Level::Info, Level::Warn, Level::Error];
        for i in 0..20 {
            let service = if i % 2 == 0 { "orders" } else { "billing" };
            log.append(event(
                service,
                levels[i % 4],
                &format!("m{i}"),
                &format!("t{}", i / 5),
            ));
        }
        log.flush().await.unwrap();
        let q = async |q: Query| seqs(&log.query(&q).await.unwrap());

        let orders = q(Query {
            service: Some("orders".into()),
            ..Query::default()
        })
        .await;
        assert_eq!(orders, (1..=20).step_by(2).collect::<Vec<u64>>());
        let trace = Query {
            trace: Some("t1".into()),
            ..Query::default()
        };
        assert_eq!(q(trace).await, [6, 7, 8, 9, 10]);
        let errors = Query {
            level: Some(Level::Error),
            ..Query::default()
        };
        assert_eq!(q(errors).await, [4, 8, 12, 16, 20]);
        let warn_after_10 = Query {
            level: Some(Level::Warn),
            cursor: after(10),
            ..Query::default()
        };
        assert_eq!(q(warn_after_10).await, [11, 12, 15, 16, 19, 20]);
        let after_17 = Query {
            cursor: after(17),
            ..Query::default()
        };
        assert_eq!(q(after_17).await, [18, 19, 20]);
        let page = Query {
            limit: Some(3),
            cursor: after(5),
            ..Query::default()
        };
        assert_eq!(q(page).await, [6, 7, 8]);
        let combined = Query {
            service: Some("billing".into()),
            trace: Some("t2".into()),
            level: Some(Level::Info),
            ..Query::default()
        };
        assert_eq!(q(combined).await, [12, 14]);
        let nobody = Query {
            service: Some("nobody".into()),
            ..Query::default()
        };
        assert!(q(nobody).await.is_empty());
        let other_host = Query {
            host: Some("h2".into()),
            ..Query::default()
        };
        assert!(q(other_host).await.is_empty());

        for _ in 0..1100 {
            log.append(event("bulk", Level::Debug, "x", ""));
        }
        log.flush().await.unwrap();
        assert_eq!(q(Query::default()).await.len(), 100);
        let capped = Query {
            limit: Some(5000),
            ..Query::default()
        };
        assert_eq!(q(capped).await.len(), 1000);
    }

    async fn reopen_continues_sequence_and_chain(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        for i in 0..3 {
            log.append(event("orders", Level::Info, &format!("first {i}"), ""));
        }
        log.flush().await.unwrap();
        log.close();

        let log = place.log().await;
        assert_eq!(log.last_seq(), 3);
        log.append(event("orders", Level::Info, "second", ""));
        log.append(event("orders", Level::Info, "third", ""));
        log.flush().await.unwrap();
        let all = log.query(&Query::default()).await.unwrap();
        assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
        assert!(all.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
        assert_eq!(log.verify_chain().await.unwrap(), None);
    }

    async fn close_commits_unflushed_events(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        let clone = log.clone();
        for i in 0..50 {
            clone.append(event("orders", Level::Info, &format!("m{i}"), ""));
        }
        drop(clone);
        log.close();
        let log = place.log().await;
        assert_eq!(log.last_seq(), 50);
        assert_eq!(log.verify_chain().await.unwrap(), None);
    }

    async fn verify_chain_detects_tampering(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        for i in 0..6 {
            log.append(event("orders", Level::Info, &format!("m{i}"), ""));
        }
        log.flush().await.unwrap();
        assert_eq!(log.verify_chain().await.unwrap(), None);

        place
            .tamper("UPDATE {events} SET message = 'edited' WHERE seq = 3")
            .await;
        assert_eq!(log.verify_chain().await.unwrap(), Some(3));
        place
            .tamper("UPDATE {events} SET message = 'm2' WHERE seq = 3")
            .await;
        assert_eq!(log.verify_chain().await.unwrap(), None);

        place
            .tamper("UPDATE {events} SET level = 9 WHERE seq = 2")
            .await;
        assert_eq!(log.verify_chain().await.unwrap(), Some(2));
        place
            .tamper("UPDATE {events} SET level = 1 WHERE seq = 2")
            .await;

        place
            .tamper("UPDATE {events} SET time_ms = time_ms + 1 WHERE seq = 5")
            .await;
        assert_eq!(log.verify_chain().await.unwrap(), Some(5));
        place
            .tamper("UPDATE {events} SET time_ms = time_ms - 1 WHERE seq = 5")
            .await;

        place.tamper("DELETE FROM {events} WHERE seq = 6").await;
        assert_eq!(log.verify_chain().await.unwrap(), Some(6));
        place.tamper("DELETE FROM {events} WHERE seq = 4").await;
        assert_eq!(log.verify_chain().await.unwrap(), Some(4));
    }

    async fn concurrent_appends_arrive_exactly_once(kind: Backend) {
        const TASKS: usize = 8;
        const PER_TASK: usize = 500;
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        let mut tail = log.subscribe();
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    log.append(event(
                        &format!("svc{t}"),
                        Level::Info,
                        &format!("{t}/{i}"),
                        "",
                    ));
                    if i % 25 == 24 {
                        log.flush().await?;
                    }
                }
                log.flush().await
            }));
        }
        for handle in handles {
            handle.await.unwrap().unwrap();
        }
        let total = (TASKS * PER_TASK) as u64;
        assert_eq!(log.last_seq(), total);
        assert!(tail.has_changed().unwrap());
        assert_eq!(*tail.borrow_and_update(), total);

        let mut messages = HashSet::new();
        let mut cursor = Cursor::default();
        loop {
            let page = log
                .query(&Query {
                    cursor: cursor.clone(),
                    limit: Some(1000),
                    ..Query::default()
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            cursor.advance(&page);
            for e in &page {
                assert!(
                    messages.insert(e.message.clone()),
                    "duplicate {}",
                    e.message
                );
            }
        }
        assert_eq!(messages.len() as u64, total);
        assert_eq!(cursor.seen("h1"), total);
        // Each task's own events keep their order.
        let svc3 = log
            .query(&Query {
                service: Some("svc3".into()),
                limit: Some(1000),
                ..Query::default()
            })
            .await
            .unwrap();
        let order: Vec<String> = svc3.iter().map(|e| e.message.clone()).collect();
        assert_eq!(
            order,
            (0..PER_TASK).map(|i| format!("3/{i}")).collect::<Vec<_>>()
        );
        assert_eq!(log.verify_chain().await.unwrap(), None);
    }

    async fn one_flush_commits_everything_queued_before_it_at_once(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        // Events of one request from two services, then its response's flush.
        log.append(event("identity-service", Level::Info, "verified", "t1"));
        log.append(event("report-service", Level::Info, "reported", "t1"));
        log.flush().await.unwrap();
        assert_eq!((log.last_seq(), log.commits()), (2, 1));
    }

    async fn unflushed_events_are_committed_within_the_linger(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        let mut tail = log.subscribe();
        log.append(event("deployments", Level::Info, "swapped", ""));
        // Nobody flushes: the writer commits on its own.
        tokio::time::timeout(Duration::from_secs(5), tail.wait_for(|seq| *seq == 1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(log.query(&Query::default()).await.unwrap().len(), 1);
        assert_eq!(log.commits(), 1);
    }

    async fn flush_with_nothing_appended(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        log.flush().await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(log.last_seq(), 0);
        assert!(log.query(&Query::default()).await.unwrap().is_empty());
        assert_eq!(log.verify_chain().await.unwrap(), None);
    }

    async fn a_failed_commit_fails_its_flushes_and_is_retried_without_a_gap(kind: Backend) {
        let place = Fixture::new(kind).await;
        let log = place.log().await;
        log.append(event("orders", Level::Info, "before", ""));
        log.flush().await.unwrap();

        place.refuse_inserts(true).await;
        log.append(event("orders", Level::Info, "while failing", ""));
        let e = log.flush().await.unwrap_err().to_string();
        assert!(e.contains("disk full (test)"), "{e}");
        log.append(event("orders", Level::Info, "also while failing", ""));
        assert!(log.flush().await.is_err());
        assert_eq!(log.last_seq(), 1);
        assert!(log.failing().unwrap().contains("disk full (test)"));

        place.refuse_inserts(false).await;
        // Held, and stored by the retry the writer makes by itself.
        let mut tail = log.subscribe();
        tokio::time::timeout(Duration::from_secs(5), tail.wait_for(|seq| *seq == 3))
            .await
            .unwrap()
            .unwrap();
        log.flush().await.unwrap();
        assert_eq!(log.failing(), None);
        let messages: Vec<String> = log
            .query(&Query::default())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(messages, ["before", "while failing", "also while failing"]);
        assert_eq!(log.verify_chain().await.unwrap(), None);
    }

    async fn chains_of_two_hosts_are_read_together_and_the_cursor_misses_nothing(kind: Backend) {
        if kind == Backend::Sqlite {
            // A SQLite log is one host's alone.
            return;
        }
        let place = Fixture::new(kind).await;
        let (h1, h2) = (place.log_of("h1").await, place.log_of("h2").await);
        for i in 0..10 {
            let (log, other) = if i % 3 == 0 { (&h2, "h2") } else { (&h1, "h1") };
            log.append(event(
                "report-service",
                Level::Info,
                &format!("{other} {i}"),
                "trace-a",
            ));
            log.flush().await.unwrap();
            // Distinct times, so the merged order is the order written.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        h1.append(event(
            "identity-service",
            Level::Info,
            "elsewhere",
            "trace-b",
        ));
        h1.flush().await.unwrap();

        // One trace served by both hosts comes back together, in time order.
        for reader in [&h1, &h2] {
            let trace = reader
                .query(&Query {
                    trace: Some("trace-a".into()),
                    ..Query::default()
                })
                .await
                .unwrap();
            let messages: Vec<&str> = trace.iter().map(|e| e.message.as_str()).collect();
            let expected: Vec<String> = (0..10)
                .map(|i| format!("{} {i}", if i % 3 == 0 { "h2" } else { "h1" }))
                .collect();
            assert_eq!(messages, expected);
        }

        // Paging with the cursor over both chains: each event once, even one
        // committed on the slower chain after the reader has moved past its
        // time.
        let mut cursor = Cursor::default();
        let mut seen = Vec::new();
        loop {
            let page = h1
                .query(&Query {
                    cursor: cursor.clone(),
                    limit: Some(3),
                    ..Query::default()
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            cursor.advance(&page);
            seen.extend(page.into_iter().map(|e| (e.host, e.seq)));
        }
        assert_eq!(seen.len(), 11);
        h2.append(event("report-service", Level::Info, "late", ""));
        h2.flush().await.unwrap();
        let late = h1
            .query(&Query {
                cursor: cursor.clone(),
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(
            late.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["late"]
        );
        assert_eq!(cursor.to_string(), "h1:7,h2:4");
        assert_eq!(h1.verify_chain().await.unwrap(), None);
        assert_eq!(h2.verify_chain().await.unwrap(), None);
    }

    #[test]
    fn cursors_are_written_host_colon_seq_and_checked() {
        let mut c: Cursor = "h1:7,h2:4".parse().unwrap();
        assert_eq!((c.seen("h1"), c.seen("h2"), c.seen("h3")), (7, 4, 0));
        c.advance(&[Event {
            host: "h3".into(),
            seq: 2,
            time_ms: 0,
            service: String::new(),
            level: Level::Info,
            message: String::new(),
            trace_id: String::new(),
            hash: String::new(),
        }]);
        assert_eq!(c.to_string(), "h1:7,h2:4,h3:2");
        assert_eq!("".parse::<Cursor>().unwrap(), Cursor::default());
        for bad in ["7", "h1:x", "H1:3", "h1:-1", ":3"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn levels_parse_and_serialize() {
        assert_eq!("WARNING".parse::<Level>().unwrap(), Level::Warn);
        assert_eq!("error".parse::<Level>().unwrap(), Level::Error);
        assert!("fatal".parse::<Level>().is_err());
        assert_eq!(serde_json::to_string(&Level::Debug).unwrap(), "\"debug\"");
        assert!(Level::Debug < Level::Error);
        assert_eq!(Level::from_number(Level::Warn.number()), Some(Level::Warn));
        assert_eq!(Level::from_number(9), None);
    }
}
