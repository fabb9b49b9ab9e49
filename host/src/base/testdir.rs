//! Test support: a unique scratch directory path, removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh path under the system temp dir. Not created: code under test
/// often must create it itself (with its own permissions).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = crate::base::clock::unix_millis();
        TempDir(std::env::temp_dir().join(format!("hms-{tag}-{}-{nanos}-{n}", std::process::id())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The storage backends a conformance suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The URL of a new, empty database on the tests' PostgreSQL server
/// (`HMS_TEST_PG`, which `scripts/test.sh` starts).
pub async fn fresh_database_url(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let server = std::env::var("HMS_TEST_PG").expect(
        "the PostgreSQL backend tests need HMS_TEST_PG: run scripts/test.sh, or \
         `source scripts/pg.sh; pg_start` first",
    );
    let name = format!(
        "u_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    crate::base::postgres::create_database(&server, &name)
        .await
        .expect("create a database on HMS_TEST_PG")
}

/// A pool on a new, migrated database on the tests' PostgreSQL server.
pub async fn fresh_pool(tag: &str) -> deadpool_postgres::Pool {
    let url = fresh_database_url(tag).await;
    let target = crate::base::postgres::Target::parse(&url).unwrap();
    let pool = crate::base::postgres::connect(&target).await.unwrap();
    crate::base::postgres::migrate(&pool, &target)
        .await
        .unwrap();
    pool
}

/// Declares each listed test (an `async fn(Backend)` in the enclosing
/// module) once per backend: `on_sqlite::NAME` and `on_postgres::NAME`.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test($crate::base::testdir::Backend::Sqlite).await
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test($crate::base::testdir::Backend::Postgres).await
            })*
        }
    };
}
pub(crate) use on_every_backend;
