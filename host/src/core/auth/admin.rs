//! The admin credential (`hmsadmin_…`): guards the management API. It lives
//! in `data_dir/admin.token`, created owner-only on first start; the CLI on
//! the same machine reads it from there.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;

use super::{HmacSha256, mac_bytes, random_bytes};
use crate::base::files::{temporary_name, write_new_private_file};

const ADMIN_PREFIX: &str = "hmsadmin_";

/// The admin token and what it is compared with.
pub(super) struct AdminCredential {
    token: String,
    /// The token is compared as HMACs under a random per-process key, which
    /// makes the comparison constant-time and length-independent.
    mac: HmacSha256,
    digest: Vec<u8>,
}

impl AdminCredential {
    /// Reads the credential of `data_dir`, creating it on first use.
    pub(super) fn load_or_create(data_dir: &Path) -> io::Result<AdminCredential> {
        Ok(Self::of(load_or_create_token(data_dir)?))
    }

    /// The cluster's credential `token` (created by the first host that
    /// joined), replacing this host's own in `data_dir`, so the CLI on any
    /// host's machine and `HMS_ADMIN_TOKEN` work against every host.
    pub(super) fn adopt(data_dir: &Path, token: String) -> io::Result<AdminCredential> {
        let path = path(data_dir);
        if fs::read_to_string(&path)
            .map(|t| t.trim() == token)
            .unwrap_or(false)
        {
            return Ok(Self::of(token));
        }
        crate::base::files::write_atomically(&path, format!("{token}\n").as_bytes())?;
        Ok(Self::of(token))
    }

    fn of(token: String) -> AdminCredential {
        let mac = HmacSha256::new_from_slice(&random_bytes(32)).expect("any key length");
        let digest = mac_bytes(&mac, token.as_bytes());
        AdminCredential { token, mac, digest }
    }

    /// Whether `presented` is the admin token (constant-time comparison).
    pub(super) fn check(&self, presented: &str) -> bool {
        let mut mac = self.mac.clone();
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.digest).is_ok()
    }

    pub(super) fn token(&self) -> &str {
        &self.token
    }
}

/// Where the admin token of a data directory is stored.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

fn load_or_create_token(data_dir: &Path) -> io::Result<String> {
    let path = path(data_dir);
    match fs::read_to_string(&path) {
        Ok(text) => return parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = format!("{ADMIN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes(32)));
    // Write a private temporary file and hard-link it into place: the link
    // fails if another process got there first, and no reader ever sees a
    // half-written token.
    let tmp = temporary_name(&path);
    let written = write_new_private_file(&tmp, format!("{token}\n").as_bytes())
        .and_then(|()| fs::hard_link(&tmp, &path));
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => parse(&fs::read_to_string(&path)?),
        Err(e) => Err(e),
    }
}

fn parse(text: &str) -> io::Result<String> {
    let token = text.trim();
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "admin.token is empty",
        ));
    }
    Ok(token.to_owned())
}
