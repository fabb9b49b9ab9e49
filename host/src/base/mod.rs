//! Foundations every layer may use: wall-clock time ([`clock`]), private and
//! atomically written files ([`files`]), SQLite connections ([`sqlite`]), the
//! cluster's PostgreSQL ([`postgres`]) and
//! locks ([`sync`]).

pub mod clock;
pub mod files;
pub mod postgres;
pub mod sqlite;
pub mod sync;
#[cfg(test)]
pub(crate) mod testdir;
