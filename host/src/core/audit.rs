//! Durable, tamper-evident audit log with group commit.
//!
//! Events go to a SQLite database (WAL; `synchronous=FULL` by default, see
//! [`Durability`]) through one
//! writer thread. [`AuditLog::append`] only queues an event; the writer takes
//! everything queued at once, inserts it in a single transaction (one fsync
//! for the whole batch) and only then answers the [`AuditLog::flush`] calls
//! that were queued with it. Many concurrent requests therefore share one
//! disk sync instead of paying one each.
//!
//! The writer commits when somebody waits: a [`AuditLog::flush`] is queued,
//! [`MAX_BATCH`] events are, or the oldest queued event is [`LINGER`] old.
//! Events nobody flushes (a deploy, a line logged while a response streams)
//! are therefore durable within [`LINGER`], and a request whose services log
//! several events (report and identity in the seed flow) pays one commit for
//! all of them when its response flushes, not one per event.
//!
//! Every event carries `hash = SHA-256(prev_hash ‖ seq ‖ time_ms ‖ service ‖
//! level ‖ message ‖ trace_id)` (integers as 8-byte big-endian, strings
//! prefixed by their 8-byte big-endian length, first `prev_hash` = 32 zero
//! bytes), so editing or deleting a stored row is detected by
//! [`AuditLog::verify_chain`].
//!
//! Shutdown: the writer thread stops when the last [`AuditLog`] clone is
//! dropped; that drop commits whatever is still queued and waits for the
//! thread. [`AuditLog::close`] is the explicit spelling of the same thing.
//! Open each database file with only one `AuditLog` at a time.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};

use crate::base::sqlite::{self, OpenError};
use crate::base::sync::lock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};

/// Most events written in one transaction; bounds the time a flush waits
/// behind a burst.
const MAX_BATCH: usize = 4096;
/// Longest an event waits for a commit when nobody flushes it.
const LINGER: Duration = Duration::from_millis(20);
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Idle read connections kept for reuse (opening one re-reads the schema).
const MAX_IDLE_READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY,
    time_ms  INTEGER NOT NULL,
    service  TEXT NOT NULL,
    level    INTEGER NOT NULL, -- 0 debug, 1 info, 2 warn, 3 error
    message  TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    hash     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_service_seq ON events (service, seq);
CREATE INDEX IF NOT EXISTS events_trace_id ON events (trace_id);";

const INSERT: &str = "INSERT INTO events (seq, time_ms, service, level, message, trace_id, hash)
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const COLUMNS: &str = "seq, time_ms, service, level, message, trace_id, hash";

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

// Stored as an integer so that "at least this level" is a plain `>=`.
impl ToSql for Level {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(Value::Integer(*self as i64)))
    }
}

impl FromSql for Level {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Level> {
        match value.as_i64()? {
            0 => Ok(Level::Debug),
            1 => Ok(Level::Info),
            2 => Ok(Level::Warn),
            3 => Ok(Level::Error),
            n => Err(FromSqlError::OutOfRange(n)),
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
    /// Position in the log, from 1 without gaps.
    pub seq: u64,
    /// When [`AuditLog::append`] was called, Unix milliseconds. Events from
    /// different threads may be a few ms out of order relative to `seq`.
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

/// Filters for [`AuditLog::query`]; all given filters must match.
#[derive(Default, Clone, Debug, Deserialize)]
pub struct Query {
    /// Only this service.
    pub service: Option<String>,
    /// Only this trace id.
    pub trace: Option<String>,
    /// Only events at least this severe.
    pub level: Option<Level>,
    /// Only events with `seq` greater than this.
    pub after: Option<u64>,
    /// At most this many events (default 100, capped at 1000).
    pub limit: Option<usize>,
}

/// Why an audit log operation failed.
#[derive(thiserror::Error, Debug)]
pub enum AuditError {
    /// The database failed.
    #[error("audit store: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A file or the writer thread could not be created.
    #[error("audit store I/O: {0}")]
    Io(#[from] io::Error),
    /// Stored data cannot be continued from (e.g. a malformed last hash).
    #[error("audit store corrupt: {0}")]
    Corrupt(String),
    /// A batch failed to commit; its events are lost.
    #[error("audit commit failed: {0}")]
    Commit(String),
    /// The writer thread is no longer running.
    #[error("audit writer has stopped")]
    WriterGone,
}

impl From<OpenError> for AuditError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Io(e) => AuditError::Io(e),
            OpenError::Sqlite(e) => AuditError::Storage(e),
        }
    }
}

enum Msg {
    Event { time_ms: u64, event: NewEvent },
    Barrier(oneshot::Sender<Result<(), String>>),
}

/// Handle to the audit log; clones share one writer thread.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Option` only so that `Drop` can close the channel before joining.
    tx: Option<mpsc::Sender<Msg>>,
    durable: Arc<watch::Sender<u64>>,
    /// Transactions committed since open.
    commits: Arc<AtomicU64>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
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
    /// Opens (creating if needed) the log at `path` with full durability.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(path, Durability::Full)
    }

    /// Opens (creating if needed) the log at `path`, continuing its sequence
    /// and hash chain, and starts the writer thread.
    pub fn open_with(path: &Path, durability: Durability) -> Result<AuditLog, AuditError> {
        // Full: a commit is on disk before `flush` resolves. Process: it is
        // in the OS's hands, which a process crash cannot undo.
        let sync = match durability {
            Durability::Full => sqlite::Sync::Full,
            Durability::Process => sqlite::Sync::Normal,
        };
        let conn = sqlite::open_writer(path, sync)?;
        conn.execute_batch(SCHEMA)?;
        let last: Option<(i64, String)> = conn
            .query_row(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (seq, prev_hash) = match last {
            None => (0, [0u8; 32]),
            Some((seq, hash)) => {
                let prev = parse_hash(&hash)
                    .ok_or_else(|| AuditError::Corrupt(format!("event {seq} has hash {hash:?}")))?;
                (seq as u64, prev)
            }
        };
        let reader = sqlite::open_reader(path)?;

        let durable = Arc::new(watch::Sender::new(seq));
        let commits = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            seq,
            prev_hash,
            durable: durable.clone(),
            commits: commits.clone(),
            unreported: None,
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run(rx))?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                tx: Some(tx),
                durable,
                commits,
                readers: Mutex::new(vec![reader]),
                path: path.to_owned(),
                writer: Some(handle),
                reported_dead: AtomicBool::new(false),
            }),
        })
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
    /// is durably committed. A failed commit is reported as
    /// [`AuditError::Commit`] to the flushes completing with or after it.
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

    /// Durable events matching `q`, in ascending `seq`. Runs on a separate
    /// read connection and never waits for the writer, but it is blocking
    /// I/O: call it from `spawn_blocking` in async code.
    pub fn query(&self, q: &Query) -> Result<Vec<Event>, AuditError> {
        let mut sql = format!("SELECT {COLUMNS} FROM events WHERE seq > ?");
        let mut args: Vec<Value> = vec![Value::Integer(
            q.after.unwrap_or(0).min(i64::MAX as u64) as i64
        )];
        if let Some(service) = &q.service {
            sql.push_str(" AND service = ?");
            args.push(Value::Text(service.clone()));
        }
        if let Some(trace) = &q.trace {
            sql.push_str(" AND trace_id = ?");
            args.push(Value::Text(trace.clone()));
        }
        if let Some(level) = q.level {
            sql.push_str(" AND level >= ?");
            args.push(Value::Integer(level as i64));
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        args.push(Value::Integer(
            q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as i64,
        ));
        self.with_reader(|conn| {
            // At most eight distinct statements, so the cache keeps them all.
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), event_from_row)?;
            rows.collect()
        })
    }

    /// Transactions (each one disk sync) committed since this log was
    /// opened; the events committed since then, divided by it, are the
    /// average group-commit size.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Watches the last durable `seq` (for live tail and long-polling).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.durable.subscribe()
    }

    /// Recomputes the hash chain over the whole log and returns the `seq` of
    /// the first event that does not match (edited, undecodable, or missing
    /// when rows were deleted), or `None` when the chain is intact. Reads the
    /// whole table: blocking and proportional to the log's size.
    pub fn verify_chain(&self) -> Result<Option<u64>, AuditError> {
        // Taken before the read snapshot starts, so every event counted here
        // is visible to it; fewer rows than this means the tail was deleted.
        let durable = self.last_seq();
        self.with_reader(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM events ORDER BY seq"))?;
            let mut rows = stmt.query([])?;
            let mut prev = [0u8; 32];
            let mut expected = 1u64;
            while let Some(row) = rows.next()? {
                let Ok(event) = event_from_row(row) else {
                    return Ok(Some(row.get::<_, i64>(0)? as u64));
                };
                if event.seq != expected {
                    return Ok(Some(expected));
                }
                let text = [
                    event.service.as_str(),
                    event.message.as_str(),
                    event.trace_id.as_str(),
                ];
                let hash = chain_hash(&prev, event.seq, event.time_ms, event.level, text);
                if hex::encode(hash) != event.hash {
                    return Ok(Some(event.seq));
                }
                prev = hash;
                expected += 1;
            }
            Ok((expected <= durable).then_some(expected))
        })
    }

    /// The last durably committed `seq` (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        *self.inner.durable.borrow()
    }

    /// Drops this handle. If it is the last one, commits everything still
    /// queued and waits for the writer thread to finish; dropping the last
    /// handle does the same.
    pub fn close(self) {
        drop(self);
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, AuditError> {
        let idle = lock(&self.inner.readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => sqlite::open_reader(&self.inner.path)?,
        };
        let result = f(&conn);
        let mut idle = lock(&self.inner.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        Ok(result?)
    }
}

/// State owned by the writer thread.
struct Writer {
    conn: Connection,
    seq: u64,
    prev_hash: [u8; 32],
    durable: Arc<watch::Sender<u64>>,
    commits: Arc<AtomicU64>,
    /// A commit failure no flush has been told about yet.
    unreported: Option<String>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut events = Vec::new();
        let mut barriers = Vec::new();
        // When the oldest uncommitted event was queued.
        let mut oldest: Option<Instant> = None;
        loop {
            // Idle: block for the next message. Holding events nobody waits
            // for yet: block at most until the oldest is LINGER old.
            let msg = match oldest {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => rx.recv_timeout(LINGER.saturating_sub(since.elapsed())),
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
            let due = closed
                || !barriers.is_empty()
                || events.len() >= MAX_BATCH
                || oldest.is_some_and(|since| since.elapsed() >= LINGER);
            if !due {
                continue;
            }
            if !events.is_empty() {
                if let Err(e) = self.commit(&events) {
                    tracing::error!(error = %e, lost = events.len(), "audit commit failed");
                    self.unreported = Some(format!("{} events lost: {e}", events.len()));
                }
                events.clear();
                oldest = None;
            }
            if !barriers.is_empty() {
                let outcome = self.unreported.take().map_or(Ok(()), Err);
                for done in barriers.drain(..) {
                    let _ = done.send(outcome.clone());
                }
            }
            if closed {
                // Every handle is gone and everything was committed.
                return;
            }
        }
    }

    fn commit(&mut self, events: &[(u64, NewEvent)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let (mut seq, mut prev) = (self.seq, self.prev_hash);
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for (time_ms, new) in events {
                seq += 1;
                let fields = [
                    new.service.as_str(),
                    new.message.as_str(),
                    new.trace_id.as_str(),
                ];
                prev = chain_hash(&prev, seq, *time_ms, new.level, fields);
                stmt.execute(params![
                    seq as i64,
                    *time_ms as i64,
                    new.service,
                    new.level,
                    new.message,
                    new.trace_id,
                    hex::encode(prev),
                ])?;
            }
        }
        tx.commit()?;
        // Only advance once durable: a failed batch leaves no gap in seq.
        (self.seq, self.prev_hash) = (seq, prev);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.durable.send_replace(seq);
        Ok(())
    }
}

/// The chain hash of one event after `prev`; `text` is `[service, message,
/// trace_id]`. See the module docs for the encoding.
fn chain_hash(prev: &[u8; 32], seq: u64, time_ms: u64, level: Level, text: [&str; 3]) -> [u8; 32] {
    let [service, message, trace_id] = text;
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(time_ms.to_be_bytes());
    for field in [service, level.as_str(), message, trace_id] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: row.get::<_, i64>(0)? as u64,
        time_ms: row.get::<_, i64>(1)? as u64,
        service: row.get(2)?,
        level: row.get(3)?,
        message: row.get(4)?,
        trace_id: row.get(5)?,
        hash: row.get(6)?,
    })
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use crate::base::testdir::TempDir;

    /// The log's database path inside `dir`, creating the directory.
    fn db(dir: &TempDir) -> PathBuf {
        std::fs::create_dir_all(dir.path()).unwrap();
        dir.path().join("audit.db")
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

    #[tokio::test]
    async fn append_flush_query() -> anyhow::Result<()> {
        let dir = TempDir::new("basic");
        let log = AuditLog::open(&db(&dir))?;
        let before = crate::base::clock::unix_millis();
        log.append(event("orders", Level::Info, "created", "t1"));
        log.append(event("billing", Level::Warn, "slow", "t1"));
        log.append(event("orders", Level::Error, "failed", "t2"));
        log.flush().await?;
        assert_eq!(log.last_seq(), 3);
        assert_eq!(*log.subscribe().borrow(), 3);

        let all = log.query(&Query::default())?;
        assert_eq!(seqs(&all), [1, 2, 3]);
        let e = &all[1];
        assert_eq!((e.service.as_str(), e.level), ("billing", Level::Warn));
        assert_eq!((e.message.as_str(), e.trace_id.as_str()), ("slow", "t1"));
        assert!(e.time_ms >= before && e.time_ms <= crate::base::clock::unix_millis());
        assert_eq!(e.hash.len(), 64);
        assert_eq!(log.verify_chain()?, None);
        Ok(())
    }

    #[tokio::test]
    async fn query_filters() -> anyhow::Result<()> {
        let dir = TempDir::new("filters");
        let log = AuditLog::open(&db(&dir))?;
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
        log.flush().await?;
        let q = |q: Query| log.query(&q).map(|events| seqs(&events));

        let orders = q(Query {
            service: Some("orders".into()),
            ..Query::default()
        })?;
        assert_eq!(orders, (1..=20).step_by(2).collect::<Vec<u64>>());
        assert_eq!(
            q(Query {
                trace: Some("t1".into()),
                ..Query::default()
            })?,
            [6, 7, 8, 9, 10]
        );
        assert_eq!(
            q(Query {
                level: Some(Level::Error),
                ..Query::default()
            })?,
            [4, 8, 12, 16, 20]
        );
        assert_eq!(
            q(Query {
                level: Some(Level::Warn),
                after: Some(10),
                ..Query::default()
            })?,
            [11, 12, 15, 16, 19, 20]
        );
        assert_eq!(
            q(Query {
                after: Some(17),
                ..Query::default()
            })?,
            [18, 19, 20]
        );
        assert_eq!(
            q(Query {
                limit: Some(3),
                after: Some(5),
                ..Query::default()
            })?,
            [6, 7, 8]
        );
        let combined = Query {
            service: Some("billing".into()),
            trace: Some("t2".into()),
            level: Some(Level::Info),
            ..Query::default()
        };
        assert_eq!(q(combined)?, [12, 14]);
        assert!(
            q(Query {
                service: Some("nobody".into()),
                ..Query::default()
            })?
            .is_empty()
        );

        for _ in 0..1100 {
            log.append(event("bulk", Level::Debug, "x", ""));
        }
        log.flush().await?;
        assert_eq!(q(Query::default())?.len(), 100);
        assert_eq!(
            q(Query {
                limit: Some(5000),
                ..Query::default()
            })?
            .len(),
            1000
        );
        Ok(())
    }

    #[tokio::test]
    async fn reopen_continues_sequence_and_chain() -> anyhow::Result<()> {
        let dir = TempDir::new("reopen");
        let log = AuditLog::open(&db(&dir))?;
        for i in 0..3 {
            log.append(event("orders", Level::Info, &format!("first {i}"), ""));
        }
        log.flush().await?;
        log.close();

        let log = AuditLog::open(&db(&dir))?;
        assert_eq!(log.last_seq(), 3);
        log.append(event("orders", Level::Info, "second", ""));
        log.append(event("orders", Level::Info, "third", ""));
        log.flush().await?;
        assert_eq!(seqs(&log.query(&Query::default())?), [1, 2, 3, 4, 5]);
        assert_eq!(log.verify_chain()?, None);
        Ok(())
    }

    #[test]
    fn close_commits_unflushed_events() -> anyhow::Result<()> {
        let dir = TempDir::new("close");
        let log = AuditLog::open(&db(&dir))?;
        let clone = log.clone();
        for i in 0..50 {
            clone.append(event("orders", Level::Info, &format!("m{i}"), ""));
        }
        drop(clone);
        log.close();
        let log = AuditLog::open(&db(&dir))?;
        assert_eq!(log.last_seq(), 50);
        assert_eq!(log.verify_chain()?, None);
        Ok(())
    }

    #[tokio::test]
    async fn verify_chain_detects_tampering() -> anyhow::Result<()> {
        let dir = TempDir::new("tamper");
        let log = AuditLog::open(&db(&dir))?;
        for i in 0..6 {
            log.append(event("orders", Level::Info, &format!("m{i}"), ""));
        }
        log.flush().await?;
        assert_eq!(log.verify_chain()?, None);

        let raw = Connection::open(db(&dir))?;
        raw.execute("UPDATE events SET message = 'edited' WHERE seq = 3", [])?;
        assert_eq!(log.verify_chain()?, Some(3));
        raw.execute("UPDATE events SET message = 'm2' WHERE seq = 3", [])?;
        assert_eq!(log.verify_chain()?, None);

        raw.execute("UPDATE events SET level = 9 WHERE seq = 2", [])?;
        assert_eq!(log.verify_chain()?, Some(2));
        raw.execute("UPDATE events SET level = 1 WHERE seq = 2", [])?;

        raw.execute("DELETE FROM events WHERE seq = 6", [])?;
        assert_eq!(log.verify_chain()?, Some(6));
        raw.execute("DELETE FROM events WHERE seq = 4", [])?;
        assert_eq!(log.verify_chain()?, Some(4));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn concurrent_appends_arrive_exactly_once() -> anyhow::Result<()> {
        const TASKS: usize = 8;
        const PER_TASK: usize = 500;
        let dir = TempDir::new("concurrent");
        let log = AuditLog::open(&db(&dir))?;
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
            handle.await??;
        }
        let total = (TASKS * PER_TASK) as u64;
        assert_eq!(log.last_seq(), total);
        assert!(tail.has_changed()?);
        assert_eq!(*tail.borrow_and_update(), total);

        let mut messages = HashSet::new();
        let mut after = 0;
        loop {
            let page = log.query(&Query {
                after: Some(after),
                limit: Some(1000),
                ..Query::default()
            })?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                assert!(
                    messages.insert(e.message.clone()),
                    "duplicate {}",
                    e.message
                );
            }
        }
        assert_eq!(messages.len() as u64, total);
        assert_eq!(after, total);
        // Each task's own events keep their order.
        let svc3 = log.query(&Query {
            service: Some("svc3".into()),
            limit: Some(1000),
            ..Query::default()
        })?;
        let order: Vec<String> = svc3.iter().map(|e| e.message.clone()).collect();
        assert_eq!(
            order,
            (0..PER_TASK).map(|i| format!("3/{i}")).collect::<Vec<_>>()
        );
        assert_eq!(log.verify_chain()?, None);
        Ok(())
    }

    #[tokio::test]
    async fn one_flush_commits_everything_queued_before_it_at_once() -> anyhow::Result<()> {
        let dir = TempDir::new("group");
        let log = AuditLog::open(&db(&dir))?;
        // Events of one request from two services, then its response's flush.
        log.append(event("identity-service", Level::Info, "verified", "t1"));
        log.append(event("report-service", Level::Info, "reported", "t1"));
        log.flush().await?;
        assert_eq!((log.last_seq(), log.commits()), (2, 1));
        Ok(())
    }

    #[tokio::test]
    async fn unflushed_events_are_committed_within_the_linger() -> anyhow::Result<()> {
        let dir = TempDir::new("linger");
        let log = AuditLog::open(&db(&dir))?;
        let mut tail = log.subscribe();
        log.append(event("deployments", Level::Info, "swapped", ""));
        // Nobody flushes: the writer commits on its own.
        tokio::time::timeout(Duration::from_secs(5), tail.wait_for(|seq| *seq == 1)).await??;
        assert_eq!(log.query(&Query::default())?.len(), 1);
        assert_eq!(log.commits(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn flush_with_nothing_appended() -> anyhow::Result<()> {
        let dir = TempDir::new("empty");
        let log = AuditLog::open(&db(&dir))?;
        log.flush().await?;
        log.flush().await?;
        assert_eq!(log.last_seq(), 0);
        assert!(log.query(&Query::default())?.is_empty());
        assert_eq!(log.verify_chain()?, None);
        Ok(())
    }

    #[test]
    fn levels_parse_and_serialize() -> anyhow::Result<()> {
        assert_eq!("WARNING".parse::<Level>()?, Level::Warn);
        assert_eq!("error".parse::<Level>()?, Level::Error);
        assert!("fatal".parse::<Level>().is_err());
        assert_eq!(serde_json::to_string(&Level::Debug)?, "\"debug\"");
        let q: Query = serde_json::from_str(r#"{"level":"info","limit":5}"#)?;
        assert_eq!((q.level, q.limit), (Some(Level::Info), Some(5)));
        assert!(Level::Debug < Level::Error);
        Ok(())
    }
}
