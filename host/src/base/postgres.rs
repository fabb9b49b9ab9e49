//! Connecting to the cluster's PostgreSQL: a pool of connections that
//! replaces broken ones by itself (a database that comes back is used again
//! without restarting anything), and the schema migrations, applied at
//! start-up under an advisory lock so that hosts starting together apply
//! each migration once.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Connections per host: enough for heartbeats, reads and group commits
/// running at once, few enough for many hosts on one server.
const POOL_SIZE: usize = 16;
/// How long a new connection, or a wait for a free one, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one operation (a query, a transaction) may take. A database
/// that stops answering without closing the connection (a network
/// partition) would otherwise hold the caller forever; past this the
/// operation fails as unavailable. A write timed out in its commit has an
/// unknown outcome, and is answered as such, never as done.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Key of the advisory lock that serialises migrations across hosts.
const MIGRATION_LOCK: i64 = 0x686d_735f_7363_6865; // "hms_sche"

/// Why the cluster database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("--cluster {0}")]
    BadUrl(String),
    #[error("cannot reach the cluster database {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error(
        "the cluster database {target} has schema version {found}, newer than this hms-host knows ({known}); upgrade this host"
    )]
    SchemaTooNew {
        target: String,
        found: i64,
        known: i64,
    },
    #[error("cluster database {target}: {reason}")]
    Failed { target: String, reason: String },
}

/// A parsed `postgres://USER@HOST:PORT/DB` URL, and how to name it in
/// messages (never with its password).
#[derive(Clone, Debug)]
pub struct Target {
    config: tokio_postgres::Config,
    shown: String,
}

impl Target {
    /// Parses a PostgreSQL URL; the error names what is wrong.
    pub fn parse(url: &str) -> Result<Target, PgError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PgError::BadUrl(format!(
                "{:?}: expected postgres://USER@HOST:PORT/DB",
                redact(url)
            )));
        }
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| PgError::BadUrl(format!("{:?}: {e}", redact(url))))?;
        if config.get_hosts().is_empty() || config.get_dbname().is_none() {
            return Err(PgError::BadUrl(format!(
                "{:?}: expected postgres://USER@HOST:PORT/DB (a host and a database)",
                redact(url)
            )));
        }
        Ok(Target {
            shown: redact(url),
            config,
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) fn failed(&self, e: impl std::fmt::Display) -> PgError {
        PgError::Failed {
            target: self.shown.clone(),
            reason: e.to_string(),
        }
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Opens a pool on `target` and checks that the database answers.
pub async fn connect(target: &Target) -> Result<Pool, PgError> {
    let mut config = target.config.clone();
    config.connect_timeout(CONNECT_TIMEOUT);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(CONNECT_TIMEOUT),
            create: Some(CONNECT_TIMEOUT),
            recycle: Some(CONNECT_TIMEOUT),
        })
        .build()
        .map_err(|e| target.failed(e))?;
    let client = pool.get().await.map_err(|e| PgError::Unreachable {
        target: target.shown.clone(),
        reason: error_text(&e),
    })?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| target.failed(e))?;
    Ok(pool)
}

/// Brings the schema up to this build's version, one host at a time; a
/// schema newer than this build knows is refused, naming both versions.
pub async fn migrate(pool: &Pool, target: &Target) -> Result<i64, PgError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| target.failed(error_text(&e)))?;
    let known = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| target.failed(e))?;
    let result = async {
        let history = client
            .query_opt(
                "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| target.failed(e))?
            .is_some_and(|r| r.get::<_, bool>(0));
        if history {
            let found: Option<i32> = client
                .query_one("SELECT MAX(version) FROM refinery_schema_history", &[])
                .await
                .map_err(|e| target.failed(e))?
                .get(0);
            let found = i64::from(found.unwrap_or(0));
            if found > known {
                return Err(PgError::SchemaTooNew {
                    target: target.shown.clone(),
                    found,
                    known,
                });
            }
        }
        let client: &mut tokio_postgres::Client = &mut client;
        embedded::migrations::runner()
            .run_async(client)
            .await
            .map_err(|e| target.failed(e))?;
        Ok(known)
    }
    .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

/// Creates database `name` (letters, digits and `_`) on the server of
/// `server_url` and returns the URL of the new database: for tests and
/// tooling that need a fresh cluster database.
pub async fn create_database(server_url: &str, name: &str) -> Result<String, PgError> {
    let target = Target::parse(server_url)?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(target.failed(format!("{name:?} is not a plain database name")));
    }
    let (client, conn) = target
        .config
        .connect(NoTls)
        .await
        .map_err(|e| PgError::Unreachable {
            target: target.shown.clone(),
            reason: e.to_string(),
        })?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| target.failed(e))?;
    let base = server_url
        .rsplit_once('/')
        .map_or(server_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// `op`, failing with `timed_out()` once it has taken [`OP_TIMEOUT`].
pub async fn bounded<T, E>(
    op: impl std::future::Future<Output = Result<T, E>>,
    timed_out: impl FnOnce() -> E,
) -> Result<T, E> {
    tokio::time::timeout(OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// A database error with what the server said (tokio-postgres's own
/// text for it is only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// A pool error with its cause (deadpool's own text hides it).
pub fn error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        deadpool_postgres::PoolError::Timeout(_) => "timed out connecting".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_never_shown() {
        assert!(Target::parse("postgres://hms@127.0.0.1:5432/hms").is_ok());
        let t = Target::parse("postgres://hms:secret@db.example:5432/hms").unwrap();
        assert_eq!(t.shown(), "postgres://hms:***@db.example:5432/hms");
        for bad in [
            "",
            "mysql://x@y/z",
            "postgres://hms@127.0.0.1:notaport/hms",
            "postgres://hms@127.0.0.1:5432",
        ] {
            let e = Target::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--cluster "), "{bad}: {e}");
        }
        let e = Target::parse("postgres://u:hunter2@h:x/d")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
