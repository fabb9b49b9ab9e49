//! The cluster store backend: every service's records in PostgreSQL
//! (`store_records`, `store_usage`; see `host/migrations`), shared by all
//! hosts. Each host runs one writer task per service that takes every write
//! queued at that moment into one transaction (group commit), after locking
//! the service's usage row: one service's writes are serialised across
//! hosts, so compare-and-swap and increment are atomic and quotas exact,
//! and a write is answered only once its transaction has committed. A
//! connection lost during a commit leaves its outcome unknown: the writes
//! are answered `unavailable`, never as done.

use super::plan::plan;
use super::{Backend, BoxFuture, Done, Entry, Job, Quota, StoreError, Write, answered};
use crate::base::postgres::{bounded, describe, error_text};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// One service's records in the cluster database.
pub struct PgStore {
    service: String,
    pool: Pool,
    tx: mpsc::UnboundedSender<Job>,
}

impl PgStore {
    /// The store of `service` in `pool`'s database, and its writer task
    /// (which ends when the store is dropped). Must be called within the
    /// tokio runtime.
    pub fn open(pool: Pool, service: &str, quota: Quota) -> PgStore {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            pool: pool.clone(),
            service: service.to_string(),
            quota,
        };
        tokio::spawn(writer.run(rx));
        PgStore {
            service: service.to_string(),
            pool,
            tx,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| unavailable(error_text(&e)))
    }
}

fn timed_out() -> StoreError {
    unavailable(format!(
        "no answer within {:?}",
        crate::base::postgres::OP_TIMEOUT
    ))
}

fn unavailable(why: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cluster database: {why}"))
}

fn db_unavailable(e: tokio_postgres::Error) -> StoreError {
    unavailable(describe(&e))
}

impl Backend for PgStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(bounded(
            async move {
                let client = self.client().await?;
                // Prepared once per connection: one round trip per read.
                let stmt = client
                    .prepare_cached(
                        "SELECT value FROM store_records WHERE service = $1 AND key = $2",
                    )
                    .await
                    .map_err(db_unavailable)?;
                let row = client
                    .query_opt(&stmt, &[&self.service, &key])
                    .await
                    .map_err(db_unavailable)?;
                Ok(row.map(|r| r.get(0)))
            },
            timed_out,
        ))
    }

    fn write(&self, write: Write) -> BoxFuture<'_, Result<Done, StoreError>> {
        let (job, answer) = Job::new(write);
        answered(self.tx.send(job).is_ok(), answer)
    }

    fn keys_from<'a>(
        &'a self,
        start: &'a str,
        after: bool,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(bounded(
            async move {
                let client = self.client().await?;
                let sql = if after {
                    "SELECT key FROM store_records WHERE service = $1 AND key > $2 ORDER BY key LIMIT $3"
                } else {
                    "SELECT key FROM store_records WHERE service = $1 AND key >= $2 ORDER BY key LIMIT $3"
                };
                let stmt = client.prepare_cached(sql).await.map_err(db_unavailable)?;
                let rows = client
                    .query(&stmt, &[&self.service, &start, &i64::from(limit)])
                    .await
                    .map_err(db_unavailable)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            },
            timed_out,
        ))
    }

    fn records(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        Box::pin(bounded(
            async move {
                let client = self.client().await?;
                let rows = client
                    .query(
                        "SELECT key, value FROM store_records WHERE service = $1 ORDER BY key",
                        &[&self.service],
                    )
                    .await
                    .map_err(db_unavailable)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            },
            timed_out,
        ))
    }
}

/// Commits one service's writes, batch by batch.
struct Writer {
    pool: Pool,
    service: String,
    quota: Quota,
}

impl Writer {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            match bounded(self.commit(&batch), timed_out).await {
                Ok(outcomes) => {
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = job.reply.send(outcome);
                    }
                }
                Err(e) => {
                    tracing::warn!("store commit for {} failed: {e}", self.service);
                    for job in batch {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    async fn commit(&self, batch: &[Job]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| unavailable(error_text(&e)))?;
        let txn = client.transaction().await.map_err(db_unavailable)?;
        // One statement creates the usage row if needed and locks it: the
        // lock that serialises this service's writes across hosts.
        let lock = txn
            .prepare_cached(
                "INSERT INTO store_usage (service, used) VALUES ($1, 0)
                 ON CONFLICT (service) DO UPDATE SET used = store_usage.used
                 RETURNING used",
            )
            .await
            .map_err(db_unavailable)?;
        let used: i64 = txn
            .query_one(&lock, &[&self.service])
            .await
            .map_err(db_unavailable)?
            .get(0);
        let mut values: BTreeMap<String, Option<Vec<u8>>> = batch
            .iter()
            .flat_map(|job| job.write.keys())
            .map(|k| (k.to_string(), None))
            .collect();
        let keys: Vec<&str> = values.keys().map(String::as_str).collect();
        let current = txn
            .prepare_cached(
                "SELECT key, value FROM store_records WHERE service = $1 AND key = ANY($2)",
            )
            .await
            .map_err(db_unavailable)?;
        let rows = txn
            .query(&current, &[&self.service, &keys])
            .await
            .map_err(db_unavailable)?;
        for row in rows {
            values.insert(row.get(0), Some(row.get(1)));
        }
        let plan = plan(
            batch.iter().map(|job| &job.write),
            values,
            used as u64,
            self.quota,
        );
        let upsert = txn
            .prepare_cached(
                "INSERT INTO store_records (service, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (service, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .await
            .map_err(db_unavailable)?;
        let delete = txn
            .prepare_cached("DELETE FROM store_records WHERE service = $1 AND key = $2")
            .await
            .map_err(db_unavailable)?;
        for (key, value) in &plan.changes {
            match value {
                Some(value) => txn.execute(&upsert, &[&self.service, key, value]).await,
                None => txn.execute(&delete, &[&self.service, key]).await,
            }
            .map_err(db_unavailable)?;
        }
        if plan.used as i64 != used {
            let account = txn
                .prepare_cached("UPDATE store_usage SET used = $2 WHERE service = $1")
                .await
                .map_err(db_unavailable)?;
            txn.execute(&account, &[&self.service, &(plan.used as i64)])
                .await
                .map_err(db_unavailable)?;
        }
        txn.commit().await.map_err(db_unavailable)?;
        Ok(plan.outcomes)
    }
}
