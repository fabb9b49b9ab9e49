//! API keys: `hms_<id>_<secret>`, created per service and kept as a keyed
//! hash (HMAC-SHA256 with a random pepper), so a copy of the database alone
//! does not reveal usable keys.
//!
//! The key index lives in memory, so checking a key never touches a
//! database; it is written only when keys are created or revoked.
//! Standalone, the keys are in `keys.db` and only this process writes it
//! while it runs. In a cluster they are in the cluster database, and every
//! host re-reads them every [`super::SYNC_INTERVAL`]: a revocation on one
//! host reaches the others within it. A host whose copy is older than
//! [`MAX_STALENESS`] refuses API keys and their tokens (fail closed).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{AuthError, HmacSha256, corrupt, mac_bytes, random_bytes};
use crate::base::postgres::error_text;
use crate::base::sync::{lock, read, write};
use deadpool_postgres::Pool;
use std::time::{Duration, Instant};

const API_KEY_PREFIX: &str = "hms_";
const KEY_ID_BYTES: usize = 6; // 12 hex characters
const SECRET_BYTES: usize = 32;
const PEPPER_BYTES: usize = 32;

/// The tables this module keeps in `keys.db`.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    service     TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);";

/// A freshly created API key. The secret is not stored and cannot be shown again.
#[derive(Clone)]
pub struct CreatedKey {
    /// The key's public identifier (12 lowercase hex characters).
    pub id: String,
    /// The service the key authenticates as.
    pub service: String,
    /// The complete API key, `hms_<id>_<secret>`, to hand to the client.
    pub secret: String,
}

/// An API key as listed for administrators (never includes the secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyInfo {
    /// The key's public identifier.
    pub id: String,
    /// The service the key authenticates as.
    pub service: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Revocation time, seconds since the Unix epoch, if revoked.
    pub revoked_at: Option<u64>,
}

/// In-memory view of one API key, so checking a key never touches SQLite.
struct KeyEntry {
    service: String,
    secret_hash: Vec<u8>,
    revoked: bool,
}

/// Where the keys are kept.
pub(super) enum KeyStore {
    /// `keys.db` in the data directory (standalone).
    Sqlite(Mutex<Connection>),
    /// The cluster database, shared by every host.
    Cluster(ClusterKeys),
}

/// The cluster's keys, and how current this host's copy of them is.
pub(super) struct ClusterKeys {
    pool: Pool,
    /// When the index was last read from the database.
    synced: Mutex<Option<Instant>>,
}

/// The API keys: the in-memory index and where they are stored.
pub(super) struct ApiKeys {
    pub(super) store: KeyStore,
    /// HMAC keyed with the pepper, cloned per use to avoid re-keying.
    pepper_mac: HmacSha256,
    index: RwLock<HashMap<String, KeyEntry>>,
}

/// How stale this host's copy of the cluster's keys and revocations may be
/// before it refuses API keys and the tokens issued from them (fail closed).
pub const MAX_STALENESS: Duration = Duration::from_secs(2);

/// One stored API key, as `hms-host cluster import` moves it.
pub(super) struct StoredKey {
    pub id: String,
    pub service: String,
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKeys {
    /// The pepper (if one was made) and every key of a `keys.db`.
    pub(super) fn read_all(
        conn: &Connection,
    ) -> Result<(Option<Vec<u8>>, Vec<StoredKey>), AuthError> {
        let pepper: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE name = 'pepper'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let keys = conn
            .prepare(
                "SELECT id, service, secret_hash, created_at, revoked_at FROM api_keys ORDER BY id",
            )?
            .query_map([], |r| {
                Ok(StoredKey {
                    id: r.get(0)?,
                    service: r.get(1)?,
                    secret_hash: r.get(2)?,
                    created_at: r.get(3)?,
                    revoked_at: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((pepper, keys))
    }

    /// Loads the pepper (creating it on first use) and every key, inside
    /// the caller's transaction; `conn` is kept for later writes.
    pub(super) fn load(tx: &Transaction<'_>) -> Result<(HmacSha256, LoadedKeys), AuthError> {
        let pepper: Option<Vec<u8>> = tx
            .query_row("SELECT value FROM meta WHERE name = 'pepper'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let pepper = match pepper {
            Some(p) if p.len() == PEPPER_BYTES => p,
            Some(_) => return Err(corrupt("pepper in keys.db has the wrong length")),
            None => {
                let p = random_bytes(PEPPER_BYTES);
                tx.execute("INSERT INTO meta (name, value) VALUES ('pepper', ?1)", [&p])?;
                p
            }
        };
        let index: HashMap<String, KeyEntry> = tx
            .prepare("SELECT id, service, secret_hash, revoked_at IS NOT NULL FROM api_keys")?
            .query_map([], |r| {
                let entry = KeyEntry {
                    service: r.get(1)?,
                    secret_hash: r.get(2)?,
                    revoked: r.get(3)?,
                };
                Ok((r.get(0)?, entry))
            })?
            .collect::<Result<_, _>>()?;
        let mac = HmacSha256::new_from_slice(&pepper).expect("any key length");
        Ok((mac, LoadedKeys(index)))
    }

    pub(super) fn new(conn: Connection, pepper_mac: HmacSha256, loaded: LoadedKeys) -> ApiKeys {
        ApiKeys {
            store: KeyStore::Sqlite(Mutex::new(conn)),
            pepper_mac,
            index: RwLock::new(loaded.0),
        }
    }

    /// The cluster's keys in `pool`'s database, with the cluster's pepper
    /// (created by the first host); the index is empty until [`Self::sync`].
    pub(super) async fn cluster(pool: Pool) -> Result<ApiKeys, AuthError> {
        let client = pool.get().await.map_err(|e| unavailable(error_text(&e)))?;
        client
            .execute(
                "INSERT INTO cluster_meta (name, value) VALUES ('pepper', $1) ON CONFLICT DO NOTHING",
                &[&random_bytes(PEPPER_BYTES)],
            )
            .await
            .map_err(unavailable)?;
        let pepper: Vec<u8> = client
            .query_one("SELECT value FROM cluster_meta WHERE name = 'pepper'", &[])
            .await
            .map_err(unavailable)?
            .get(0);
        if pepper.len() != PEPPER_BYTES {
            return Err(corrupt("the cluster's pepper has the wrong length"));
        }
        drop(client);
        Ok(ApiKeys {
            store: KeyStore::Cluster(ClusterKeys {
                pool,
                synced: Mutex::new(None),
            }),
            pepper_mac: HmacSha256::new_from_slice(&pepper).expect("any key length"),
            index: RwLock::new(HashMap::new()),
        })
    }

    /// Reads every key of the cluster into the index (a no-op standalone,
    /// where this process writes every change itself).
    pub(super) async fn sync(&self) -> Result<(), AuthError> {
        let KeyStore::Cluster(cluster) = &self.store else {
            return Ok(());
        };
        let client = cluster.client().await?;
        let rows = client
            .query(
                "SELECT id, service, secret_hash, revoked_at IS NOT NULL FROM api_keys",
                &[],
            )
            .await
            .map_err(unavailable)?;
        let index = rows
            .iter()
            .map(|r| {
                let entry = KeyEntry {
                    service: r.get(1),
                    secret_hash: r.get(2),
                    revoked: r.get(3),
                };
                (r.get(0), entry)
            })
            .collect();
        *write(&self.index) = index;
        *lock(&cluster.synced) = Some(Instant::now());
        Ok(())
    }

    /// Refuses when this host's copy of the cluster's keys is stale.
    pub(super) fn check_current(&self) -> Result<(), AuthError> {
        match &self.store {
            KeyStore::Sqlite(_) => Ok(()),
            KeyStore::Cluster(cluster) => match *lock(&cluster.synced) {
                Some(at) if at.elapsed() <= MAX_STALENESS => Ok(()),
                _ => Err(AuthError::Stale),
            },
        }
    }

    /// Creates a key for `service` (whose name the caller has checked).
    pub(super) async fn create(&self, service: &str) -> Result<CreatedKey, AuthError> {
        let secret = random_bytes(SECRET_BYTES);
        let secret_hash = mac_bytes(&self.pepper_mac, &secret);
        let now = crate::base::clock::unix_secs() as i64;
        let id = match &self.store {
            KeyStore::Sqlite(conn) => {
                // The connection lock also serialises creators, so the id check holds.
                let conn = lock(conn);
                let id = self.unused_id();
                conn.execute(
                    "INSERT INTO api_keys (id, service, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, service, secret_hash, now],
                )?;
                id
            }
            KeyStore::Cluster(cluster) => {
                let client = cluster.client().await?;
                loop {
                    // The primary key decides between hosts picking one id.
                    let id = self.unused_id();
                    let inserted = client
                        .execute(
                            "INSERT INTO api_keys (id, service, secret_hash, created_at)
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                            &[&id, &service, &secret_hash, &now],
                        )
                        .await
                        .map_err(unavailable)?;
                    if inserted == 1 {
                        break id;
                    }
                }
            }
        };
        let entry = KeyEntry {
            service: service.to_owned(),
            secret_hash,
            revoked: false,
        };
        write(&self.index).insert(id.clone(), entry);
        let secret = format!("{API_KEY_PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(&secret));
        Ok(CreatedKey {
            id,
            service: service.to_owned(),
            secret,
        })
    }

    fn unused_id(&self) -> String {
        loop {
            let id = hex::encode(random_bytes(KEY_ID_BYTES));
            if !read(&self.index).contains_key(&id) {
                return id;
            }
        }
    }

    /// Every key, oldest first, revoked ones included.
    pub(super) async fn list(&self) -> Result<Vec<KeyInfo>, AuthError> {
        const LIST: &str =
            "SELECT id, service, created_at, revoked_at FROM api_keys ORDER BY created_at, id";
        match &self.store {
            KeyStore::Sqlite(conn) => {
                let conn = lock(conn);
                let mut stmt = conn.prepare_cached(LIST)?;
                let rows = stmt.query_map([], |r| {
                    Ok(KeyInfo {
                        id: r.get(0)?,
                        service: r.get(1)?,
                        created_at: r.get::<_, i64>(2)? as u64,
                        revoked_at: r.get::<_, Option<i64>>(3)?.map(|t| t as u64),
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            KeyStore::Cluster(cluster) => {
                let rows = cluster
                    .client()
                    .await?
                    .query(LIST, &[])
                    .await
                    .map_err(unavailable)?;
                Ok(rows
                    .iter()
                    .map(|r| KeyInfo {
                        id: r.get(0),
                        service: r.get(1),
                        created_at: r.get::<_, i64>(2) as u64,
                        revoked_at: r.get::<_, Option<i64>>(3).map(|t| t as u64),
                    })
                    .collect())
            }
        }
    }

    /// Marks key `id` revoked (keeping the first revocation time).
    pub(super) async fn revoke(&self, id: &str) -> Result<(), AuthError> {
        let now = crate::base::clock::unix_secs() as i64;
        let known = match &self.store {
            KeyStore::Sqlite(conn) => {
                let conn = lock(conn);
                conn.execute(
                    "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                    params![now, id],
                )?;
                conn.query_row("SELECT 1 FROM api_keys WHERE id = ?1", [id], |_| Ok(()))
                    .optional()?
                    .is_some()
            }
            KeyStore::Cluster(cluster) => {
                let client = cluster.client().await?;
                client
                    .execute(
                        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                        &[&now, &id],
                    )
                    .await
                    .map_err(unavailable)?;
                client
                    .query_opt("SELECT 1 FROM api_keys WHERE id = $1", &[&id])
                    .await
                    .map_err(unavailable)?
                    .is_some()
            }
        };
        if !known {
            return Err(AuthError::UnknownKeyId(id.to_owned()));
        }
        if let Some(entry) = write(&self.index).get_mut(id) {
            entry.revoked = true;
        }
        Ok(())
    }

    /// The key's id and service if `api_key` is a valid, unrevoked key.
    pub(super) fn check_secret<'k>(
        &self,
        api_key: &'k str,
    ) -> Result<(&'k str, String), AuthError> {
        let (id, secret) = parse_api_key(api_key).ok_or(AuthError::InvalidKey)?;
        // The keyed hash is computed before the lookup, so that an unknown
        // id costs the same as a wrong secret; the comparison is constant-time.
        let mut mac = self.pepper_mac.clone();
        mac.update(&secret);
        let index = read(&self.index);
        let entry = index.get(id).ok_or(AuthError::InvalidKey)?;
        mac.verify_slice(&entry.secret_hash)
            .map_err(|_| AuthError::InvalidKey)?;
        // Only holders of the secret learn that the key was revoked.
        if entry.revoked {
            return Err(AuthError::Revoked);
        }
        let service = entry.service.clone();
        drop(index);
        self.check_current()?;
        Ok((id, service))
    }

    /// Whether a token issued from key `key_id` to `subject` may still be used.
    pub(super) fn check_issued(&self, key_id: &str, subject: &str) -> Result<(), AuthError> {
        match read(&self.index).get(key_id) {
            None => Err(AuthError::InvalidToken("unknown API key".to_owned())),
            Some(entry) if entry.revoked => Err(AuthError::Revoked),
            Some(entry) if entry.service != subject => Err(AuthError::InvalidToken(
                "subject does not match its API key".to_owned(),
            )),
            Some(_) => self.check_current(),
        }
    }
}

impl ApiKeys {
    /// The cluster database, in a cluster.
    pub(super) fn pool(&self) -> Option<Pool> {
        match &self.store {
            KeyStore::Sqlite(_) => None,
            KeyStore::Cluster(c) => Some(c.pool.clone()),
        }
    }
}

impl ClusterKeys {
    async fn client(&self) -> Result<deadpool_postgres::Object, AuthError> {
        self.pool
            .get()
            .await
            .map_err(|e| unavailable(error_text(&e)))
    }
}

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

/// Keys read at open, before the connection is handed over.
pub(super) struct LoadedKeys(HashMap<String, KeyEntry>);

/// Splits `hms_<id>_<secret>` into the id and the decoded 32-byte secret.
fn parse_api_key(key: &str) -> Option<(&str, Vec<u8>)> {
    // The id is hex, so the first `_` ends it; the base64url secret may
    // itself contain `_`.
    let (id, secret) = key.strip_prefix(API_KEY_PREFIX)?.split_once('_')?;
    let id_ok = id.len() == 2 * KEY_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    // The engine rejects padding and non-canonical trailing bits, so every
    // secret has exactly one accepted spelling.
    let secret = URL_SAFE_NO_PAD.decode(secret).ok()?;
    (id_ok && secret.len() == SECRET_BYTES).then_some((id, secret))
}
