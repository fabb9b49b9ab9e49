//! Files the host keeps in its data directory: owner-only directories and
//! files for secrets and databases, and whole-file writes that a crash never
//! tears.

use rand::RngCore;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `path` if missing and makes it owner-only, e.g. before SQLite
/// opens it (SQLite gives its `-wal`/`-shm` files the same permissions).
pub fn prepare_private_file(path: &Path) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// A temporary name beside `path` that no other writer, in this process or
/// another, uses at the same time.
pub fn temporary_name(path: &Path) -> PathBuf {
    let mut nonce = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.tmp", hex::encode(nonce)))
}

/// Writes `bytes` to a new owner-only file at `path`, which must not exist,
/// and syncs it.
pub fn write_new_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` with `bytes` atomically: written under a unique temporary
/// name, synced, renamed over `path`, and the directory synced. A crash
/// leaves the old content or the new, never a torn file, and two writers of
/// the same path never share a temporary file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temporary_name(path);
    let written = write_new_private_file(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable only once the directory is.
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TempDir;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = TempDir::new("files");
        create_private_dir(dir.path()).unwrap();
        let path = dir.path().join("record.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        assert_ne!(temporary_name(&path), temporary_name(&path));
    }

    #[test]
    fn concurrent_writers_of_one_path_never_tear_it() {
        let dir = TempDir::new("files-race");
        create_private_dir(dir.path()).unwrap();
        let path = dir.path().join("artifact");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 256 << 10]).collect();
        std::thread::scope(|s| {
            for c in &contents {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..4 {
                        write_atomically(path, c).unwrap();
                    }
                });
            }
        });
        let got = fs::read(&path).unwrap();
        assert!(
            contents.contains(&got),
            "the file is one writer's whole content"
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("files-private");
        create_private_dir(dir.path()).unwrap();
        let path = dir.path().join("secret");
        write_atomically(&path, b"x").unwrap();
        let db = dir.path().join("db");
        prepare_private_file(&db).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&db), 0o600);
    }
}
