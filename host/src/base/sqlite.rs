//! Opening the host's SQLite databases, all one way: an owner-only file in
//! WAL mode, a busy timeout, and the durability the caller asks for.

use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// When a commit is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// `synchronous=FULL`: on disk before the commit returns (power loss too).
    Full,
    /// `synchronous=NORMAL` in WAL mode: in the OS's hands when the commit
    /// returns, which a process crash cannot undo; an OS crash can.
    Normal,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens the database at `path` for writing, creating it (and its directory)
/// owner-only when missing, in WAL mode with `sync` durability.
pub fn open_writer(path: &Path, sync: Sync) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::files::create_private_dir(dir)?;
    }
    super::files::prepare_private_file(path)?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "{} is not in WAL mode", path.display());
    }
    let synchronous = match sync {
        Sync::Full => "FULL",
        Sync::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    Ok(conn)
}

/// Opens a read-only connection to a database a writer has opened: in WAL
/// mode readers never block the writer, and `query_only` guards against
/// accidental writes.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}
