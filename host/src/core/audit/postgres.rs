//! The cluster's audit log: every host's chain in the `audit_events` table
//! of the cluster database (see `host/migrations/V4__audit.sql`), keyed by
//! `(host_id, seq)`. A host appends only to its own chain, so no lock is
//! taken across hosts; a group commit is one `INSERT … SELECT FROM unnest`
//! statement, one round trip and one durable commit for the whole batch.
//!
//! Reads see every chain. One chain comes back in `seq` order; all of them
//! are merged by `(time_ms, host_id, seq)`, each host's part read after the
//! cursor's `seq` for it, so a reader paging with the cursor misses nothing
//! a slower host commits later. The hosts are the `hosts` table's rows
//! (never deleted), so a chain is found as long as its host ever joined.
//!
//! The writer thread is not a tokio thread: it reaches the database
//! through the runtime's handle, each operation bounded by
//! [`OP_TIMEOUT`](crate::base::postgres::OP_TIMEOUT).

use super::checkpoint::Checkpoint;
use super::{
    AuditError, BoxFuture, CheckpointRange, Event, Head, Level, Query, Storage, parse_hash,
};
use crate::base::postgres::{OP_TIMEOUT, bounded, describe, error_text};
use deadpool_postgres::Pool;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;

const COLUMNS: &str = "host_id, seq, time_ms, service, level, message, trace_id, hash";
const CHECKPOINT_COLUMNS: &str =
    "host_id, from_seq, to_seq, head_hash, prev_hash, time_ms, kid, hash, signature";

/// One host's chain, and every chain's reader, in the cluster database.
pub(super) struct PgLog {
    pool: Pool,
    host: String,
    runtime: Handle,
}

fn unavailable(e: tokio_postgres::Error) -> AuditError {
    AuditError::Unavailable(describe(&e))
}

fn timed_out() -> AuditError {
    AuditError::Unavailable(format!("no answer within {OP_TIMEOUT:?}"))
}

impl PgLog {
    pub(super) fn new(pool: Pool, host: &str, runtime: Handle) -> PgLog {
        PgLog {
            pool,
            host: host.to_string(),
            runtime,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, AuditError> {
        self.pool
            .get()
            .await
            .map_err(|e| AuditError::Unavailable(error_text(&e)))
    }

    /// The last stored event of this host's chain.
    pub(super) async fn fetch_head(&self) -> Result<Head, AuditError> {
        bounded(
            async {
                let row = self
                    .client()
                    .await?
                    .query_opt(
                        "SELECT seq, time_ms, hash FROM audit_events
                         WHERE host_id = $1 ORDER BY seq DESC LIMIT 1",
                        &[&self.host],
                    )
                    .await
                    .map_err(unavailable)?;
                let Some(row) = row else {
                    return Ok(Head::default());
                };
                let (seq, hash): (i64, String) = (row.get(0), row.get(2));
                Ok(Head {
                    seq: seq as u64,
                    time_ms: row.get::<_, i64>(1) as u64,
                    hash: parse_hash(&hash).ok_or_else(|| {
                        AuditError::Corrupt(format!("event {seq} has hash {hash:?}"))
                    })?,
                })
            },
            timed_out,
        )
        .await
    }

    /// Makes sure the chain's host is one the readers list (a host that
    /// never ran in the cluster gets a row whose lease has run out).
    pub(super) async fn claim_chain(&self) -> Result<(), AuditError> {
        bounded(
            async {
                self.client()
                    .await?
                    .execute(
                        "INSERT INTO hosts (host_id, url, instance, lease_until)
                         VALUES ($1, '', 'imported', now()) ON CONFLICT (host_id) DO NOTHING",
                        &[&self.host],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(())
            },
            timed_out,
        )
        .await
    }

    /// Whether this chain holds `event` exactly (same seq and hash).
    pub(super) async fn has_event(&self, event: Option<&Event>) -> Result<bool, AuditError> {
        let Some(event) = event else {
            return Ok(false);
        };
        bounded(
            async {
                let row = self
                    .client()
                    .await?
                    .query_opt(
                        "SELECT 1 FROM audit_events WHERE host_id = $1 AND seq = $2 AND hash = $3",
                        &[&self.host, &(event.seq as i64), &event.hash],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(row.is_some())
            },
            timed_out,
        )
        .await
    }

    pub(super) async fn store(&self, events: &[Event]) -> Result<(), AuditError> {
        let column = |f: fn(&Event) -> String| events.iter().map(f).collect::<Vec<String>>();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq as i64).collect();
        let times: Vec<i64> = events.iter().map(|e| e.time_ms as i64).collect();
        let levels: Vec<i16> = events.iter().map(|e| e.level.number() as i16).collect();
        let services = column(|e| e.service.clone());
        let messages = column(|e| e.message.clone());
        let traces = column(|e| e.trace_id.clone());
        let hashes = column(|e| e.hash.clone());
        bounded(
            async {
                let client = self.client().await?;
                let insert = client
                    .prepare_cached(&format!(
                        "INSERT INTO audit_events ({COLUMNS})
                         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[],
                                                  $5::smallint[], $6::text[], $7::text[], $8::text[])"
                    ))
                    .await
                    .map_err(unavailable)?;
                client
                    .execute(
                        &insert,
                        &[
                            &self.host, &seqs, &times, &services, &levels, &messages, &traces,
                            &hashes,
                        ],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(())
            },
            timed_out,
        )
        .await
    }

    /// Checkpoints of one chain in `to_seq` order.
    pub(super) async fn select_checkpoints(
        &self,
        range: &CheckpointRange,
    ) -> Result<Vec<Checkpoint>, AuditError> {
        bounded(
            async {
                let rows = self
                    .client()
                    .await?
                    .query(
                        &format!(
                            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints
                             WHERE host_id = $1 AND to_seq > $2 AND to_seq <= $3
                             ORDER BY to_seq LIMIT $4"
                        ),
                        &[
                            &range.host,
                            &(range.after.min(i64::MAX as u64) as i64),
                            &(range.until.min(i64::MAX as u64) as i64),
                            &(range.limit as i64),
                        ],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(rows.iter().map(checkpoint_from_row).collect())
            },
            timed_out,
        )
        .await
    }

    /// Stores checkpoints of this chain as they are (an import copies them).
    pub(super) async fn store_checkpoints(&self, all: &[Checkpoint]) -> Result<(), AuditError> {
        bounded(
            async {
                let client = self.client().await?;
                let insert = client
                    .prepare_cached(&format!(
                        "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    ))
                    .await
                    .map_err(unavailable)?;
                for c in all {
                    client
                        .execute(
                            &insert,
                            &[
                                &self.host,
                                &(c.from_seq as i64),
                                &(c.to_seq as i64),
                                &c.head_hash,
                                &c.prev_hash,
                                &(c.time_ms as i64),
                                &c.kid,
                                &c.hash,
                                &c.signature,
                            ],
                        )
                        .await
                        .map_err(unavailable)?;
                }
                Ok(())
            },
            timed_out,
        )
        .await
    }

    async fn select(&self, q: &Query) -> Result<Vec<Event>, AuditError> {
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            format!("${}", args.len())
        };
        let mut filters = String::new();
        if let Some(service) = &q.service {
            filters.push_str(&format!(
                " AND e.service = {}",
                arg(Box::new(service.clone()))
            ));
        }
        if let Some(trace) = &q.trace {
            filters.push_str(&format!(
                " AND e.trace_id = {}",
                arg(Box::new(trace.clone()))
            ));
        }
        if let Some(level) = q.level {
            filters.push_str(&format!(
                " AND e.level >= {}",
                arg(Box::new(level.number() as i16))
            ));
        }
        let limit = arg(Box::new(q.limit() as i64));
        let sql = if let Some(host) = &q.host {
            // One chain, in order.
            let after = q.cursor.seen(host) as i64;
            let (host, after) = (arg(Box::new(host.clone())), arg(Box::new(after)));
            format!(
                "SELECT {COLUMNS} FROM audit_events e
                 WHERE e.host_id = {host} AND e.seq > {after}{filters}
                 ORDER BY e.seq LIMIT {limit}"
            )
        } else {
            let (hosts, seqs): (Vec<String>, Vec<i64>) = q
                .cursor
                .chains()
                .map(|(h, s)| (h.to_string(), s as i64))
                .unzip();
            let (hosts, seqs) = (arg(Box::new(hosts)), arg(Box::new(seqs)));
            let after = format!(
                "COALESCE((SELECT c.seq FROM unnest({hosts}::text[], {seqs}::bigint[]) AS c(host, seq)
                           WHERE c.host = e.host_id), 0)"
            );
            if q.trace.is_some() {
                // A trace has few events: its index finds them all at once.
                format!(
                    "SELECT {COLUMNS} FROM audit_events e
                     WHERE e.seq > {after}{filters}
                     ORDER BY e.time_ms, e.host_id, e.seq LIMIT {limit}"
                )
            } else {
                // Each host's chain from its cursor on, merged by time.
                format!(
                    "SELECT x.* FROM hosts h CROSS JOIN LATERAL (
                        SELECT {COLUMNS} FROM audit_events e
                        WHERE e.host_id = h.host_id AND e.seq > {after}{filters}
                        ORDER BY e.seq LIMIT {limit}) x
                     ORDER BY x.time_ms, x.host_id, x.seq LIMIT {limit}"
                )
            }
        };
        bounded(
            async {
                let client = self.client().await?;
                let stmt = client.prepare_cached(&sql).await.map_err(unavailable)?;
                let params: Vec<&(dyn ToSql + Sync)> = args
                    .iter()
                    .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let rows = client.query(&stmt, &params).await.map_err(unavailable)?;
                rows.iter().map(event_from_row).collect()
            },
            timed_out,
        )
        .await
    }
}

impl Storage for PgLog {
    fn head(&self) -> Result<Head, AuditError> {
        self.runtime.block_on(self.fetch_head())
    }

    fn insert(&self, events: &[Event]) -> Result<(), AuditError> {
        self.runtime.block_on(self.store(events))
    }

    fn query(self: Arc<Self>, q: Query) -> BoxFuture<Result<Vec<Event>, AuditError>> {
        Box::pin(async move { self.select(&q).await })
    }

    fn last_checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        self.runtime.block_on(bounded(
            async {
                let row = self
                    .client()
                    .await?
                    .query_opt(
                        &format!(
                            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints
                             WHERE host_id = $1 ORDER BY to_seq DESC LIMIT 1"
                        ),
                        &[&self.host],
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(row.as_ref().map(checkpoint_from_row))
            },
            timed_out,
        ))
    }

    fn insert_checkpoint(&self, c: &Checkpoint) -> Result<(), AuditError> {
        self.runtime
            .block_on(self.store_checkpoints(std::slice::from_ref(c)))
    }

    fn checkpoints(
        self: Arc<Self>,
        range: CheckpointRange,
    ) -> BoxFuture<Result<Vec<Checkpoint>, AuditError>> {
        Box::pin(async move { self.select_checkpoints(&range).await })
    }

    fn chains(self: Arc<Self>) -> BoxFuture<Result<Vec<String>, AuditError>> {
        Box::pin(async move {
            bounded(
                async {
                    let rows = self
                        .client()
                        .await?
                        .query(
                            "SELECT h.host_id FROM hosts h WHERE EXISTS
                             (SELECT 1 FROM audit_events e WHERE e.host_id = h.host_id)
                             ORDER BY h.host_id",
                            &[],
                        )
                        .await
                        .map_err(unavailable)?;
                    Ok(rows.iter().map(|r| r.get(0)).collect())
                },
                timed_out,
            )
            .await
        })
    }
}

fn checkpoint_from_row(row: &tokio_postgres::Row) -> Checkpoint {
    Checkpoint {
        host: row.get(0),
        from_seq: row.get::<_, i64>(1) as u64,
        to_seq: row.get::<_, i64>(2) as u64,
        head_hash: row.get(3),
        prev_hash: row.get(4),
        time_ms: row.get::<_, i64>(5) as u64,
        kid: row.get(6),
        hash: row.get(7),
        signature: row.get(8),
    }
}

fn event_from_row(row: &tokio_postgres::Row) -> Result<Event, AuditError> {
    let seq = row.get::<_, i64>(1) as u64;
    let level: i16 = row.get(4);
    Ok(Event {
        host: row.get(0),
        seq,
        time_ms: row.get::<_, i64>(2) as u64,
        service: row.get(3),
        level: Level::from_number(i64::from(level)).ok_or(AuditError::BadRow {
            seq,
            why: format!("level {level}"),
        })?,
        message: row.get(5),
        trace_id: row.get(6),
        hash: row.get(7),
    })
}
