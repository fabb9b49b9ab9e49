//! Core's private store: one durable key-value database per service (the
//! seed's "each service owns its own database, no shared tables").
//!
//! The service name comes from the caller identity the host stamped on the
//! component instance, never from an argument, so nothing a component
//! passes can reach another service's data. Each service's records sit
//! behind a [`Backend`]; the embedded one ([`sqlite`]) keeps a SQLite file
//! per service, `<data-dir>/stores/<name>.db`, opened on first use.
//!
//! Every write is answered only once it is durable. Quotas: the backend
//! keeps the bytes in use (keys plus values) and refuses a write that would
//! pass the service's quota; key and value sizes are checked here, before
//! anything reaches the backend.

mod plan;
pub mod postgres;
pub mod sqlite;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

use crate::base::sqlite::OpenError;
use crate::base::sync::lock;

/// Most keys on one page of `list_keys`.
pub const MAX_PAGE: u32 = 1000;

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
    place: Place,
    quota_of: QuotaOf,
    open: Mutex<HashMap<String, Arc<Db>>>,
}

/// Where the stores are kept.
enum Place {
    /// A SQLite file per service in this directory (standalone).
    Sqlite(PathBuf),
    /// The cluster database, shared by every host.
    Postgres(deadpool_postgres::Pool),
}

impl Stores {
    /// Stores under `dir`, a SQLite file each; `quota_of` gives each
    /// service's limits.
    pub fn new(dir: &Path, quota_of: QuotaOf) -> Stores {
        Stores {
            place: Place::Sqlite(dir.to_path_buf()),
            quota_of,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Stores in the cluster database of `pool`.
    pub fn postgres(pool: deadpool_postgres::Pool, quota_of: QuotaOf) -> Stores {
        Stores {
            place: Place::Postgres(pool),
            quota_of,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The store of `service` (a validated service name). With the cluster
    /// backend, call it within the tokio runtime.
    pub fn of(&self, service: &str) -> Result<Arc<Db>, StoreError> {
        crate::core::names::validate_service_name(service)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut open = lock(&self.open);
        if let Some(db) = open.get(service) {
            return Ok(db.clone());
        }
        let quota = (self.quota_of)(service);
        let backend: Box<dyn Backend> = match &self.place {
            Place::Sqlite(dir) => Box::new(sqlite::SqliteStore::open(
                &dir.join(format!("{service}.db")),
                quota,
            )?),
            Place::Postgres(pool) => {
                Box::new(postgres::PgStore::open(pool.clone(), service, quota))
            }
        };
        let db = Arc::new(Db { backend, quota });
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

/// A key and its value.
pub type Entry = (String, Vec<u8>);

/// A future a backend answers with.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where one service's records are kept: the narrow interface every store
/// backend implements (SQLite in [`sqlite`]). What is the same for every
/// backend — key and value sizes, paging, the import and export format —
/// is checked and done by [`Db`] above it.
pub trait Backend: Send + Sync {
    /// The value at `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;
    /// Applies `write` atomically, within the quota the backend was opened
    /// with (exactly: the bytes in use are accounted in the same
    /// transaction); answered only once durable.
    fn write(&self, write: Write) -> BoxFuture<'_, Result<Done, StoreError>>;
    /// Up to `limit` keys in byte order, from `start` on (`after`: only
    /// keys greater than `start`).
    fn keys_from<'a>(
        &'a self,
        start: &'a str,
        after: bool,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
    /// Every record, in key order.
    fn records(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>>;
}

/// One service's store.
pub struct Db {
    backend: Box<dyn Backend>,
    quota: Quota,
}

/// A change to a store, applied atomically by a [`Backend`].
#[derive(Debug)]
pub enum Write {
    Set(String, Vec<u8>),
    Delete(String),
    Cas(String, Option<Vec<u8>>, Vec<u8>),
    Increment(String, i64),
    /// All or nothing.
    Import(Vec<(String, Vec<u8>)>),
}

/// A write queued for a backend's group-commit writer, and where its answer goes.
pub(crate) struct Job {
    pub write: Write,
    pub reply: oneshot::Sender<Result<Done, StoreError>>,
}

impl Job {
    /// A job for `write`, and the answer to wait for.
    pub(crate) fn new(write: Write) -> (Job, oneshot::Receiver<Result<Done, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        (Job { write, reply }, answer)
    }
}

/// The answer of a job handed (`sent`) to a writer: a writer that has
/// stopped answers `unavailable`.
pub(crate) fn answered<'a>(
    sent: bool,
    answer: oneshot::Receiver<Result<Done, StoreError>>,
) -> BoxFuture<'a, Result<Done, StoreError>> {
    Box::pin(async move {
        let gone = || StoreError::Unavailable("the store's writer has stopped".into());
        if !sent {
            return Err(gone());
        }
        answer.await.map_err(|_| gone())?
    })
}

/// What a write answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    Unit,
    Bool(bool),
    Int(i64),
    Count(usize),
}

impl Db {
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
        self.backend.write(write).await
    }

    /// The value at `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_key(key)?;
        self.backend.get(key).await
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
    pub async fn list_keys(
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
        let start = after.unwrap_or(prefix);
        let found = self
            .backend
            .keys_from(start, after.is_some(), limit + 1)
            .await?;
        let mut keys = Vec::new();
        let mut more = false;
        for key in found {
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
    pub async fn export(&self) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        for (key, value) in self.backend.records().await? {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TempDir;

    // One conformance suite, run against every backend: each test below
    // runs once on SQLite and once on the tests' PostgreSQL (`HMS_TEST_PG`,
    // which `scripts/test.sh` starts).

    use crate::base::testdir::{Backend as Kind, on_every_backend};

    /// Where one test keeps its stores: a fresh directory, or a fresh
    /// database on the tests' PostgreSQL server.
    enum Fixture {
        Sqlite(TempDir),
        Postgres(deadpool_postgres::Pool),
    }

    impl Fixture {
        async fn new(kind: Kind) -> Fixture {
            match kind {
                Kind::Sqlite => Fixture::Sqlite(TempDir::new("stores")),
                Kind::Postgres => {
                    Fixture::Postgres(crate::base::testdir::fresh_pool("store").await)
                }
            }
        }

        /// Stores on this fixture (again: a reopen).
        fn stores(&self, total: u64) -> Stores {
            let quota = Quota {
                total,
                key: 32,
                value: 64,
            };
            match self {
                Fixture::Sqlite(dir) => Stores::new(dir.path(), Box::new(move |_| quota)),
                Fixture::Postgres(pool) => Stores::postgres(pool.clone(), Box::new(move |_| quota)),
            }
        }
    }

    on_every_backend!(
        services_have_separate_databases,
        cas_and_increment_are_atomic_and_checked,
        concurrent_increments_all_count,
        sizes_and_quota_are_enforced_and_freed_space_reused,
        keys_are_listed_by_prefix_in_pages,
        keys_sort_by_bytes,
        export_and_import_round_trip_all_or_nothing,
    );

    async fn services_have_separate_databases(kind: Kind) {
        let place = Fixture::new(kind).await;
        let s = place.stores(1 << 20);
        let a = s.of("a-service").unwrap();
        let b = s.of("b-service").unwrap();
        a.set("k".into(), b"from a".to_vec()).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        b.set("k".into(), b"from b".to_vec()).await.unwrap();
        assert_eq!(a.get("k").await.unwrap().unwrap(), b"from a");
        if let Fixture::Sqlite(dir) = &place {
            assert!(dir.path().join("a-service.db").is_file());
        }
        assert!(s.of("../etc").is_err());
    }

    async fn cas_and_increment_are_atomic_and_checked(kind: Kind) {
        let place = Fixture::new(kind).await;
        let db = place.stores(1 << 20).of("svc").unwrap();
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

    async fn concurrent_increments_all_count(kind: Kind) {
        let place = Fixture::new(kind).await;
        let db = place.stores(1 << 20).of("svc").unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.increment("n".into(), 1).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(db.get("n").await.unwrap().unwrap(), b"32");
    }

    async fn sizes_and_quota_are_enforced_and_freed_space_reused(kind: Kind) {
        let place = Fixture::new(kind).await;
        let db = place.stores(100).of("svc").unwrap();
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
        let db = place.stores(100).of("svc").unwrap();
        assert_eq!(
            db.set("c".into(), vec![0; 60]).await,
            Err(StoreError::QuotaExceeded(100))
        );
    }

    async fn keys_are_listed_by_prefix_in_pages(kind: Kind) {
        let place = Fixture::new(kind).await;
        let db = place.stores(1 << 20).of("svc").unwrap();
        for k in ["a", "c/1", "c/2", "c/3", "c0", "d"] {
            db.set(k.into(), b"x".to_vec()).await.unwrap();
        }
        let p = db.list_keys("c/", None, 2).await.unwrap();
        assert_eq!(p.keys, ["c/1", "c/2"]);
        let p2 = db.list_keys("c/", p.next.as_deref(), 2).await.unwrap();
        assert_eq!(
            (p2.keys.as_slice(), p2.next),
            (["c/3".to_string()].as_slice(), None)
        );
        assert_eq!(db.list_keys("", None, 1000).await.unwrap().keys.len(), 6);
        assert_eq!(db.list_keys("zz", None, 10).await.unwrap().keys.len(), 0);
        // A cursor before the prefix cannot widen the listing.
        assert_eq!(
            db.list_keys("c/", Some("a"), 10).await.unwrap().keys.len(),
            3
        );
        assert!(db.list_keys("", None, 0).await.is_err());
    }

    async fn export_and_import_round_trip_all_or_nothing(kind: Kind) {
        let place = Fixture::new(kind).await;
        let s = place.stores(1 << 20);
        let a = s.of("a").unwrap();
        a.set("text".into(), b"{\"status\":\"active\"}".to_vec())
            .await
            .unwrap();
        a.set("bin".into(), vec![0xff, 0, 1]).await.unwrap();
        let lines = a.export().await.unwrap();
        let b = s.of("b").unwrap();
        assert_eq!(b.import(&lines).await.unwrap(), 2);
        assert_eq!(b.export().await.unwrap(), lines);
        assert_eq!(b.get("bin").await.unwrap().unwrap(), [0xff, 0, 1]);

        let bad = b"{\"key\":\"x\",\"value\":\"1\"}\n{\"key\":\"\",\"value\":\"2\"}\n";
        let err = s.of("c").unwrap().import(bad).await.unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        assert_eq!(s.of("c").unwrap().get("x").await.unwrap(), None);
    }

    /// Cursors and prefixes mean the same on every backend: byte order.
    async fn keys_sort_by_bytes(kind: Kind) {
        let place = Fixture::new(kind).await;
        let db = place.stores(1 << 20).of("svc").unwrap();
        for key in ["b", "B", "a", "é", "a-", "a_", "Z", "~"] {
            db.set(key.into(), b"1".to_vec()).await.unwrap();
        }
        let page = db.list_keys("", None, 100).await.unwrap();
        let mut by_bytes = page.keys.clone();
        by_bytes.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(page.keys, by_bytes);
        assert_eq!(page.keys, ["B", "Z", "a", "a-", "a_", "b", "~", "é"]);
    }
}
