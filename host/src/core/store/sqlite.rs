//! The embedded store backend: one SQLite file per service (WAL,
//! `synchronous=FULL`). One writer thread per database takes every write
//! queued at that moment into one transaction (group commit: one fsync for
//! the batch) and answers each only once that transaction is on disk; the
//! bytes in use are accounted there, so quotas are exact. Reads use a
//! separate connection and see every write already answered.

use super::plan::{Plan, plan};
use super::{Backend, BoxFuture, Done, Entry, Job, Quota, StoreError, Write, answered};
use crate::base::sqlite;
use crate::base::sync::lock;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, mpsc};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// One service's SQLite database.
pub struct SqliteStore {
    tx: Mutex<mpsc::Sender<Job>>,
    reader: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating) the database at `path` and starts its writer.
    pub fn open(path: &Path, quota: Quota) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore {
            tx: Mutex::new(tx),
            reader: Mutex::new(reader),
        })
    }
}

impl Backend for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let found = (|| {
            Ok(lock(&self.reader)
                .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })();
        Box::pin(std::future::ready(found))
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Done, StoreError>> {
        let (job, answer) = Job::new(write);
        answered(lock(&self.tx).send(job).is_ok(), answer)
    }

    fn keys_from<'a>(
        &'a self,
        start: &'a str,
        after: bool,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let found = (|| {
            let reader = lock(&self.reader);
            let mut stmt = if after {
                reader.prepare_cached("SELECT key FROM kv WHERE key > ?1 ORDER BY key LIMIT ?2")?
            } else {
                reader.prepare_cached("SELECT key FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2")?
            };
            let rows = stmt.query_map(params![start, limit], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })();
        Box::pin(std::future::ready(found))
    }

    fn records(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        let found = (|| {
            let reader = lock(&self.reader);
            let mut stmt = reader.prepare("SELECT key, value FROM kv ORDER BY key")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })();
        Box::pin(std::future::ready(found))
    }
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
        let quota = self.quota;
        let used = self.used;
        let planned = (|| -> rusqlite::Result<Plan> {
            let txn = self.conn.transaction()?;
            let mut values = BTreeMap::new();
            for key in batch.iter().flat_map(|job| job.write.keys()) {
                if !values.contains_key(key) {
                    let value = txn
                        .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                        .query_row([key], |r| r.get(0))
                        .optional()?;
                    values.insert(key.to_string(), value);
                }
            }
            let plan = plan(batch.iter().map(|job| &job.write), values, used, quota);
            for (key, value) in &plan.changes {
                match value {
                    Some(value) => txn
                        .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?
                        .execute(params![key, value])?,
                    None => txn
                        .prepare_cached("DELETE FROM kv WHERE key = ?1")?
                        .execute([key])?,
                };
            }
            txn.commit()?;
            Ok(plan)
        })();
        match planned {
            Ok(plan) => {
                self.used = plan.used;
                for (job, outcome) in batch.into_iter().zip(plan.outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!("store commit failed: {e}");
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
}
