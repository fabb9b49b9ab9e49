//! The standalone audit log: this host's chain in `<data>/audit.db` (WAL;
//! `synchronous=FULL` by default, see [`Durability`]), written by the
//! writer thread's connection and read on separate connections that never
//! wait for it.

use super::checkpoint::Checkpoint;
use super::{
    AuditError, BoxFuture, CheckpointRange, Durability, Event, Head, Level, Query, Storage,
    parse_hash,
};
use crate::base::sqlite;
use crate::base::sync::lock;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
CREATE INDEX IF NOT EXISTS events_trace_id ON events (trace_id);
CREATE TABLE IF NOT EXISTS checkpoints (
    to_seq    INTEGER PRIMARY KEY,
    from_seq  INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    time_ms   INTEGER NOT NULL,
    kid       TEXT NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT NOT NULL
);";

const INSERT: &str = "INSERT INTO events (seq, time_ms, service, level, message, trace_id, hash)
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const COLUMNS: &str = "seq, time_ms, service, level, message, trace_id, hash";
const CHECKPOINT_COLUMNS: &str =
    "from_seq, to_seq, head_hash, prev_hash, time_ms, kid, hash, signature";

/// One host's chain in a SQLite file.
pub(super) struct SqliteLog {
    host: String,
    path: PathBuf,
    /// Used by the writer thread only; a mutex so the storage is `Sync`.
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteLog {
    /// Opens (creating if needed) the log at `path` as `host`'s chain.
    pub(super) fn open(
        path: &Path,
        host: &str,
        durability: Durability,
    ) -> Result<SqliteLog, AuditError> {
        // Full: a commit is on disk before `flush` resolves. Process: it is
        // in the OS's hands, which a process crash cannot undo.
        let sync = match durability {
            Durability::Full => sqlite::Sync::Full,
            Durability::Process => sqlite::Sync::Normal,
        };
        let conn = sqlite::open_writer(path, sync)?;
        conn.execute_batch(SCHEMA)?;
        let reader = sqlite::open_reader(path)?;
        Ok(SqliteLog {
            host: host.to_string(),
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(vec![reader]),
        })
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, AuditError> {
        let idle = lock(&self.readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => sqlite::open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        Ok(result?)
    }

    fn query_now(&self, q: &Query) -> Result<Vec<Event>, AuditError> {
        if q.host.as_ref().is_some_and(|h| *h != self.host) {
            return Ok(Vec::new());
        }
        let mut sql = format!("SELECT {COLUMNS} FROM events WHERE seq > ?");
        let after = q.cursor.seen(&self.host).min(i64::MAX as u64) as i64;
        let mut args: Vec<Value> = vec![Value::Integer(after)];
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
            args.push(Value::Integer(level.number()));
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        args.push(Value::Integer(q.limit() as i64));
        let rows = self.with_reader(|conn| {
            // At most eight distinct statements, so the cache keeps them all.
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |row| {
                event_from_row(&self.host, row)
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(event, level)| {
                Ok(Event {
                    level: Level::from_number(level).ok_or(AuditError::BadRow {
                        seq: event.seq,
                        why: format!("level {level}"),
                    })?,
                    ..event
                })
            })
            .collect()
    }
    fn checkpoints_now(&self, range: &CheckpointRange) -> Result<Vec<Checkpoint>, AuditError> {
        if range.host != self.host {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints
             WHERE to_seq > ?1 AND to_seq <= ?2 ORDER BY to_seq LIMIT ?3"
        );
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    range.after.min(i64::MAX as u64) as i64,
                    range.until.min(i64::MAX as u64) as i64,
                    range.limit as i64
                ],
                |row| checkpoint_from_row(&self.host, row),
            )?;
            rows.collect()
        })
    }
}

impl Storage for SqliteLog {
    fn last_checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let conn = lock(&self.writer);
        let sql =
            format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY to_seq DESC LIMIT 1");
        Ok(conn
            .query_row(&sql, [], |row| checkpoint_from_row(&self.host, row))
            .optional()?)
    }

    fn insert_checkpoint(&self, c: &Checkpoint) -> Result<(), AuditError> {
        let conn = lock(&self.writer);
        conn.prepare_cached(&format!(
            "INSERT INTO checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?
        .execute(params![
            c.from_seq as i64,
            c.to_seq as i64,
            c.head_hash,
            c.prev_hash,
            c.time_ms as i64,
            c.kid,
            c.hash,
            c.signature,
        ])?;
        Ok(())
    }

    fn checkpoints(
        self: Arc<Self>,
        range: CheckpointRange,
    ) -> BoxFuture<Result<Vec<Checkpoint>, AuditError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || self.checkpoints_now(&range))
                .await
                .map_err(|e| AuditError::Io(std::io::Error::other(e)))?
        })
    }

    fn chains(self: Arc<Self>) -> BoxFuture<Result<Vec<String>, AuditError>> {
        Box::pin(async move { Ok(vec![self.host.clone()]) })
    }

    fn head(&self) -> Result<Head, AuditError> {
        let conn = lock(&self.writer);
        let last: Option<(i64, i64, String)> = conn
            .query_row(
                "SELECT seq, time_ms, hash FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        match last {
            None => Ok(Head::default()),
            Some((seq, time_ms, hash)) => Ok(Head {
                seq: seq as u64,
                time_ms: time_ms as u64,
                hash: parse_hash(&hash)
                    .ok_or_else(|| AuditError::Corrupt(format!("event {seq} has hash {hash:?}")))?,
            }),
        }
    }

    fn insert(&self, events: &[Event]) -> Result<(), AuditError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for e in events {
                stmt.execute(params![
                    e.seq as i64,
                    e.time_ms as i64,
                    e.service,
                    e.level.number(),
                    e.message,
                    e.trace_id,
                    e.hash,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn query(self: Arc<Self>, q: Query) -> BoxFuture<Result<Vec<Event>, AuditError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || self.query_now(&q))
                .await
                .map_err(|e| AuditError::Io(std::io::Error::other(e)))?
        })
    }
}

/// A row as an event, and its stored level (checked by the caller, which
/// can name the bad row).
fn event_from_row(host: &str, row: &Row<'_>) -> rusqlite::Result<(Event, i64)> {
    let event = Event {
        host: host.to_string(),
        seq: row.get::<_, i64>(0)? as u64,
        time_ms: row.get::<_, i64>(1)? as u64,
        service: row.get(2)?,
        level: Level::Debug,
        message: row.get(4)?,
        trace_id: row.get(5)?,
        hash: row.get(6)?,
    };
    Ok((event, row.get(3)?))
}

fn checkpoint_from_row(host: &str, row: &Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        host: host.to_string(),
        from_seq: row.get::<_, i64>(0)? as u64,
        to_seq: row.get::<_, i64>(1)? as u64,
        head_hash: row.get(2)?,
        prev_hash: row.get(3)?,
        time_ms: row.get::<_, i64>(4)? as u64,
        kid: row.get(5)?,
        hash: row.get(6)?,
        signature: row.get(7)?,
    })
}
