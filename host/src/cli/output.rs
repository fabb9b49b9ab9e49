//! Printing command output. Every line goes through [`line`], whose errors
//! carry up to `main`: output into a closed pipe (`hms-host logs | head`)
//! ends the command quietly instead of panicking.

use serde::Serialize;
use std::io::{self, Write};

/// Writes one line to standard output.
pub fn line(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Writes `bytes` to standard output as they are.
pub fn raw(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Writes `value` as one line of JSON.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    line(format_args!("{}", serde_json::to_string(value)?))?;
    Ok(())
}

/// Flushes standard output (a follow loop shows each batch at once).
pub fn flush() -> io::Result<()> {
    io::stdout().flush()
}

/// Whether `error` is a write into a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `sha256:` and the first 12 hex digits of a version.
pub fn short_version(v: &str) -> &str {
    match v.strip_prefix("sha256:") {
        Some(hex) => &v[..("sha256:".len() + hex.len().min(12))],
        None => v,
    }
}

/// Prints a line, returning the write error to the caller.
#[macro_export]
#[doc(hidden)]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
