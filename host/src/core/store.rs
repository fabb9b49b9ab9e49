//! Core's private store: one durable key-value database per service (the
//! seed's "each service owns its own database, no shared tables").
//!
//! Each service's data is its own SQLite file, `<data-dir>/stores/<name>.db`
//! (WAL, `synchronous=FULL`), opened on first use. The service name comes
//! from the caller identity the host stamped on the component instance,
//! never from an argument, so nothing a component passes can reach another
//! service's file.
//!
//! Writes go through one writer thread per database, which takes every write
//! queued at that moment into one transaction (group commit: one fsync for
//! the batch) and answers each only once that transaction is on disk. Reads
//! use a separate connection and see every write already answered.
//!
//! Quotas: the writer keeps the bytes in use (keys plus values) and refuses
//! a write that would pass the service's quota; key and value sizes are
//! checked before anything is queued.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use crate::base::sqlite::{self, OpenError};
use crate::base::sync::lock;
use tokio::sync::oneshot;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Most keys on one page of `list_keys`.
pub const MAX_PAGE: u32 = 1000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;";

/// Why a store operation failed (mirrors the WIT `store-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("value over the limit of {0} bytes")]
    ValueTooLarge(u64),
    #[error("the store's quota of {0} bytes would be exceeded")]
    QuotaExceeded(u64),
    #[error("the value is not a decimal integer, or the sum overflows")]
    NotANumber,
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

/// A line of an export (and of an import): the value as a UTF-8 string when
/// it is one, else base64.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value_base64: Option<String>,
}

impl Record {
    fn new(key: String, value: Vec<u8>) -> Record {
        match String::from_utf8(value) {
            Ok(text) => Record {
                key,
                value: Some(text),
                value_base64: None,
            },
            Err(e) => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                Record {
                    key,
                    value: None,
                    value_base64: Some(b64),
                }
            }
        }
    }

    fn into_bytes(self) -> Result<(String, Vec<u8>), String> {
        use base64::Engine;
        match (self.value, self.value_base64) {
            (Some(text), None) => Ok((self.key, text.into_bytes())),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|v| (self.key, v))
                .map_err(|e| format!("value_base64: {e}")),
            _ => Err("exactly one of `value` and `value_base64` is needed".into()),
        }
    }
}

/// The size limits of one service's store, from the run's configuration.
pub type QuotaOf = Box<dyn Fn(&str) -> Quota + Send + Sync>;

/// Every service's store; opens each on first use.
pub struct Stores {
    dir: PathBuf,
    quota_of: QuotaOf,
    open: Mutex<HashMap<String, Arc<Db>>>,
}

impl Stores {
    /// Stores under `dir`; `quota_of` gives each service's limits.
    pub fn new(dir: &Path, quota_of: QuotaOf) -> Stores {
        Stores {
            dir: dir.to_path_buf(),
            quota_of,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The database of `service` (a validated service name).
    pub fn of(&self, service: &str) -> Result<Arc<Db>, StoreError> {
        crate::core::names::validate_service_name(service)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut open = lock(&self.open);
        if let Some(db) = open.get(service) {
            return Ok(db.clone());
        }
        let quota = (self.quota_of)(service);
        let db = Arc::new(Db::open(&self.dir.join(format!("{service}.db")), quota)?);
        open.insert(service.to_string(), db.clone());
        Ok(db)
    }
}

/// Size limits of one service's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Bytes of keys plus values.
    pub total: u64,
    /// Longest key.
    pub key: usize,
    /// Largest value.
    pub value: u64,
}

/// One service's database.
pub struct Db {
    tx: Mutex<mpsc::Sender<Job>>,
    reader: Mutex<Connection>,
    quota: Quota,
}

enum Write {
    Set(String, Vec<u8>),
    Delete(String),
    Cas(String, Option<Vec<u8>>, Vec<u8>),
    Increment(String, i64),
    /// All or nothing.
    Import(Vec<(String, Vec<u8>)>),
}

/// What a write answers.
#[derive(Debug, PartialEq, Eq)]
enum Done {
    Unit,
    Bool(bool),
    Int(i64),
    Count(usize),
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

impl Db {
    fn open(path: &Path, quota: Quota) -> Result<Db, StoreError> {
        // Full: a write is on disk before it is answered.
        let conn = sqlite::open_writer(path, sqlite::Sync::Full)?;
        conn.execute_batch(SCHEMA)?;
        let used: i64 = conn.query_row(
            "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0) FROM kv",
            [],
            |r| r.get(0),
        )?;
        let reader = sqlite::open_reader(path)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            used: used as u64,
            quota,
        };
        let name = format!(
            "store-{}",
            path.file_stem().unwrap_or_default().to_string_lossy()
        );
        std::thread::Builder::new()
            .name(name)
            .spawn(move || writer.run(rx))?;
        Ok(Db {
            tx: Mutex::new(tx),
            reader: Mutex::new(reader),
            quota,
        })
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::InvalidKey("empty".into()));
        }
        if key.len() > self.quota.key {
            return Err(StoreError::InvalidKey(format!(
                "{} bytes; at most {} are allowed",
                key.len(),
                self.quota.key
            )));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), StoreError> {
        if value.len() as u64 > self.quota.value {
            return Err(StoreError::ValueTooLarge(self.quota.value));
        }
        Ok(())
    }

    async fn write(&self, write: Write) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        lock(&self.tx)
            .send(Job { write, reply })
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_key(key)?;
        Ok(lock(&self.reader)
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Sets `key`; durable when this returns.
    pub async fn set(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        self.check_key(&key)?;
        self.check_value(&value)?;
        self.write(Write::Set(key, value)).await.map(|_| ())
    }

    /// Removes `key`; whether it existed.
    pub async fn delete(&self, key: String) -> Result<bool, StoreError> {
        self.check_key(&key)?;
        match self.write(Write::Delete(key)).await? {
            Done::Bool(b) => Ok(b),
            other => unreachable!("delete answered {other:?}"),
        }
    }

    /// Sets `key` to `value` if it holds `expected` (`None`: is absent).
    pub async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.check_key(&key)?;
        self.check_value(&value)?;
        match self.write(Write::Cas(key, expected, value)).await? {
            Done::Bool(b) => Ok(b),
            other => unreachable!("cas answered {other:?}"),
        }
    }

    /// Adds `delta` to the integer at `key` (absent: 0); the sum.
    pub async fn increment(&self, key: String, delta: i64) -> Result<i64, StoreError> {
        self.check_key(&key)?;
        match self.write(Write::Increment(key, delta)).await? {
            Done::Int(n) => Ok(n),
            other => unreachable!("increment answered {other:?}"),
        }
    }

    /// Up to `limit` keys starting with `prefix`, after `cursor`.
    pub fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, StoreError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(StoreError::InvalidKey(format!(
                "limit {limit}: pages hold 1 to {MAX_PAGE} keys"
            )));
        }
        // Keys sharing a prefix are contiguous in byte order: scan from the
        // later of prefix and cursor, stop at the first key without it.
        let after = cursor.filter(|c| *c >= prefix);
        let reader = lock(&self.reader);
        let mut stmt =
            match after {
                Some(_) => reader
                    .prepare_cached("SELECT key FROM kv WHERE key > ?1 ORDER BY key LIMIT ?2")?,
                None => reader
                    .prepare_cached("SELECT key FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2")?,
            };
        let start = after.unwrap_or(prefix);
        let mut keys = Vec::new();
        let mut more = false;
        let rows = stmt.query_map(params![start, limit + 1], |r| r.get::<_, String>(0))?;
        for key in rows {
            let key = key?;
            if !key.starts_with(prefix) {
                break;
            }
            if keys.len() == limit as usize {
                more = true;
                break;
            }
            keys.push(key);
        }
        let next = if more { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, next })
    }

    /// Every record, in key order, as JSON lines.
    pub fn export(&self) -> Result<Vec<u8>, StoreError> {
        let reader = lock(&self.reader);
        let mut stmt = reader.prepare("SELECT key, value FROM kv ORDER BY key")?;
        let mut out = Vec::new();
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (key, value) = row?;
            serde_json::to_writer(&mut out, &Record::new(key, value))
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            out.push(b'\n');
        }
        Ok(out)
    }

    /// Sets every record of `lines` (JSON lines, as [`Db::export`] writes
    /// them), all or none; the number set. A bad line is named by number.
    pub async fn import(&self, lines: &[u8]) -> Result<usize, ImportError> {
        let mut records = Vec::new();
        for (i, line) in lines.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let bad = |why: String| ImportError::Line(i + 1, why);
            let record: Record = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
            let (key, value) = record.into_bytes().map_err(bad)?;
            self.check_key(&key).map_err(|e| bad(e.to_string()))?;
            self.check_value(&value).map_err(|e| bad(e.to_string()))?;
            records.push((key, value));
        }
        match self.write(Write::Import(records)).await? {
            Done::Count(n) => Ok(n),
            other => unreachable!("import answered {other:?}"),
        }
    }
}

/// Why an import was refused (nothing of it was stored).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {0}: {1}")]
    Line(usize, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Owns the write connection; commits batches.
struct Writer {
    conn: Connection,
    /// Bytes of keys and values stored.
    used: u64,
    quota: Quota,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    /// Applies a batch in one transaction; answers each job after the commit,
    /// or every job with the error if the transaction fails.
    fn commit(&mut self, batch: Vec<Job>) {
        let used_before = self.used;
        let quota = self.quota;
        let outcomes = (|| -> rusqlite::Result<Vec<Result<Done, StoreError>>> {
            let txn = self.conn.transaction()?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for job in &batch {
                outcomes.push(apply(&txn, &mut self.used, quota, &job.write)?);
            }
            txn.commit()?;
            Ok(outcomes)
        })();
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                // Rolled back: so is the accounting.
                self.used = used_before;
                tracing::error!("store commit failed: {e}");
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
}

/// Applies one write inside `txn`. An outer `Err` is a database failure
/// (the batch fails); an inner one is this write's own refusal.
fn apply(
    txn: &rusqlite::Transaction<'_>,
    used: &mut u64,
    quota: Quota,
    write: &Write,
) -> rusqlite::Result<Result<Done, StoreError>> {
    let current = |key: &str| -> rusqlite::Result<Option<Vec<u8>>> {
        txn.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()
    };
    // The bytes in use after replacing `old` (if any) by `new` (if any).
    let after = |used: u64, key: &str, old: Option<&[u8]>, new: Option<&[u8]>| -> u64 {
        let size = |v: Option<&[u8]>| v.map_or(0, |v| (key.len() + v.len()) as u64);
        used - size(old) + size(new)
    };
    let put = |key: &str, value: &[u8]| -> rusqlite::Result<()> {
        txn.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value])
            .map(|_| ())
    };
    let mut store = |key: &str, old: Option<Vec<u8>>, new: &[u8]| -> rusqlite::Result<bool> {
        let next = after(*used, key, old.as_deref(), Some(new));
        if next > quota.total && next > *used {
            return Ok(false);
        }
        put(key, new)?;
        *used = next;
        Ok(true)
    };
    let over = Err(StoreError::QuotaExceeded(quota.total));
    Ok(match write {
        Write::Set(key, value) => {
            let old = current(key)?;
            if store(key, old, value)? {
                Ok(Done::Unit)
            } else {
                over
            }
        }
        Write::Delete(key) => {
            let old = current(key)?;
            if old.is_some() {
                txn.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                    .execute([key])?;
                *used = after(*used, key, old.as_deref(), None);
            }
            Ok(Done::Bool(old.is_some()))
        }
        Write::Cas(key, expected, value) => {
            let old = current(key)?;
            if old != *expected {
                Ok(Done::Bool(false))
            } else if store(key, old, value)? {
                Ok(Done::Bool(true))
            } else {
                over
            }
        }
        Write::Increment(key, delta) => {
            let old = current(key)?;
            let base = match &old {
                None => Some(0),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok()),
            };
            match base.and_then(|b| b.checked_add(*delta)) {
                None => Err(StoreError::NotANumber),
                Some(sum) => {
                    if store(key, old, sum.to_string().as_bytes())? {
                        Ok(Done::Int(sum))
                    } else {
                        over
                    }
                }
            }
        }
        Write::Import(records) => {
            // All or nothing: check the total first, then write.
            let mut next = *used;
            for (key, value) in records {
                next = after(next, key, current(key)?.as_deref(), Some(value));
            }
            if next > quota.total && next > *used {
                over
            } else {
                for (key, value) in records {
                    put(key, value)?;
                }
                *used = next;
                Ok(Done::Count(records.len()))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TempDir;

    fn stores(dir: &TempDir, total: u64) -> Stores {
        let quota = Quota {
            total,
            key: 32,
            value: 64,
        };
        Stores::new(dir.path(), Box::new(move |_| quota))
    }

    #[tokio::test]
    async fn services_have_separate_databases() {
        let dir = TempDir::new("stores");
        let s = stores(&dir, 1 << 20);
        let a = s.of("a-service").unwrap();
        let b = s.of("b-service").unwrap();
        a.set("k".into(), b"from a".to_vec()).await.unwrap();
        assert_eq!(b.get("k").unwrap(), None);
        b.set("k".into(), b"from b".to_vec()).await.unwrap();
        assert_eq!(a.get("k").unwrap().unwrap(), b"from a");
        assert!(dir.path().join("a-service.db").is_file());
        assert!(s.of("../etc").is_err());
    }

    #[tokio::test]
    async fn cas_and_increment_are_atomic_and_checked() {
        let dir = TempDir::new("stores");
        let db = stores(&dir, 1 << 20).of("svc").unwrap();
        assert!(
            db.compare_and_swap("k".into(), None, b"1".to_vec())
                .await
                .unwrap()
        );
        assert!(
            !db.compare_and_swap("k".into(), None, b"2".to_vec())
                .await
                .unwrap()
        );
        assert!(
            !db.compare_and_swap("k".into(), Some(b"9".to_vec()), b"2".to_vec())
                .await
                .unwrap()
        );
        assert!(
            db.compare_and_swap("k".into(), Some(b"1".to_vec()), b"2".to_vec())
                .await
                .unwrap()
        );
        assert_eq!(db.increment("k".into(), 40).await.unwrap(), 42);
        assert_eq!(db.increment("new".into(), -3).await.unwrap(), -3);
        db.set("text".into(), b"abc".to_vec()).await.unwrap();
        assert_eq!(
            db.increment("text".into(), 1).await,
            Err(StoreError::NotANumber)
        );
        db.set("max".into(), i64::MAX.to_string().into_bytes())
            .await
            .unwrap();
        assert_eq!(
            db.increment("max".into(), 1).await,
            Err(StoreError::NotANumber)
        );
        assert!(db.delete("k".into()).await.unwrap());
        assert!(!db.delete("k".into()).await.unwrap());
    }

    #[tokio::test]
    async fn concurrent_increments_all_count() {
        let dir = TempDir::new("stores");
        let db = stores(&dir, 1 << 20).of("svc").unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.increment("n".into(), 1).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(db.get("n").unwrap().unwrap(), b"32");
    }

    #[tokio::test]
    async fn sizes_and_quota_are_enforced_and_freed_space_reused() {
        let dir = TempDir::new("stores");
        let db = stores(&dir, 100).of("svc").unwrap();
        assert!(matches!(
            db.set(String::new(), vec![]).await,
            Err(StoreError::InvalidKey(_))
        ));
        assert!(matches!(
            db.set("k".repeat(33), vec![]).await,
            Err(StoreError::InvalidKey(_))
        ));
        assert_eq!(
            db.set("k".into(), vec![0; 65]).await,
            Err(StoreError::ValueTooLarge(64))
        );
        db.set("a".into(), vec![0; 60]).await.unwrap(); // 61 bytes
        assert_eq!(
            db.set("b".into(), vec![0; 60]).await,
            Err(StoreError::QuotaExceeded(100))
        );
        // Replacing a value counts only the difference.
        db.set("a".into(), vec![0; 64]).await.unwrap();
        assert!(db.delete("a".into()).await.unwrap());
        db.set("b".into(), vec![0; 60]).await.unwrap();
        // The accounting survives a reopen.
        drop(db);
        let db = stores(&dir, 100).of("svc").unwrap();
        assert_eq!(
            db.set("c".into(), vec![0; 60]).await,
            Err(StoreError::QuotaExceeded(100))
        );
    }

    #[tokio::test]
    async fn keys_are_listed_by_prefix_in_pages() {
        let dir = TempDir::new("stores");
        let db = stores(&dir, 1 << 20).of("svc").unwrap();
        for k in ["a", "c/1", "c/2", "c/3", "c0", "d"] {
            db.set(k.into(), b"x".to_vec()).await.unwrap();
        }
        let p = db.list_keys("c/", None, 2).unwrap();
        assert_eq!(p.keys, ["c/1", "c/2"]);
        let p2 = db.list_keys("c/", p.next.as_deref(), 2).unwrap();
        assert_eq!(
            (p2.keys.as_slice(), p2.next),
            (["c/3".to_string()].as_slice(), None)
        );
        assert_eq!(db.list_keys("", None, 1000).unwrap().keys.len(), 6);
        assert_eq!(db.list_keys("zz", None, 10).unwrap().keys.len(), 0);
        // A cursor before the prefix cannot widen the listing.
        assert_eq!(db.list_keys("c/", Some("a"), 10).unwrap().keys.len(), 3);
        assert!(db.list_keys("", None, 0).is_err());
    }

    #[tokio::test]
    async fn export_and_import_round_trip_all_or_nothing() {
        let dir = TempDir::new("stores");
        let s = stores(&dir, 1 << 20);
        let a = s.of("a").unwrap();
        a.set("text".into(), b"{\"status\":\"active\"}".to_vec())
            .await
            .unwrap();
        a.set("bin".into(), vec![0xff, 0, 1]).await.unwrap();
        let lines = a.export().unwrap();
        let b = s.of("b").unwrap();
        assert_eq!(b.import(&lines).await.unwrap(), 2);
        assert_eq!(b.export().unwrap(), lines);
        assert_eq!(b.get("bin").unwrap().unwrap(), [0xff, 0, 1]);

        let bad = b"{\"key\":\"x\",\"value\":\"1\"}\n{\"key\":\"\",\"value\":\"2\"}\n";
        let err = s.of("c").unwrap().import(bad).await.unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        assert_eq!(s.of("c").unwrap().get("x").unwrap(), None);
    }
}
