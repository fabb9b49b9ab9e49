//! Core authentication: API keys ([`keys`]), signed tokens ([`tokens`]) and
//! the admin credential ([`admin`]), behind one [`Auth`].
//!
//! * An API key is exchanged for a short-lived **EdDSA (Ed25519) JWT** with
//!   [`Auth::authenticate`]; deployed components get their own identity token
//!   from [`Auth::workload_token`] without any secret. [`Auth::verify`] checks
//!   tokens on the request path and caches the result, and [`Auth::jwks`]
//!   publishes the public keys so that others can verify too.
//! * **Failed API key attempts** are throttled per [`Presenter`] (client
//!   address or calling service) with [`Auth::authenticate_from`]; only
//!   failures count, so a valid key is never slowed down.
//!
//! Secrets (API keys, tokens, the admin credential) never appear in an error
//! message or a log line of this module: errors name the reason only.
//!
//! Everything the hot paths need (key index, signing keys, caches) is held in
//! memory; SQLite (`data_dir/keys.db`) is only touched when keys are created,
//! revoked or listed.

pub mod admin;
pub mod keys;
pub mod tokens;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use rusqlite::TransactionBehavior;
use sha2::Sha256;

use crate::base::sqlite::{self, OpenError};
use crate::core::ratelimit::{KeyedLimiter, Limits};
use admin::AdminCredential;
use keys::ApiKeys;
pub use keys::{CreatedKey, KeyInfo};
use tokens::Tokens;
pub use tokens::{Claims, HostCall, IssuedToken, Jwk, Jwks};

type HmacSha256 = Hmac<Sha256>;

/// The `key_id` of tokens issued by [`Auth::workload_token`].
pub const WORKLOAD_KEY_ID: &str = "workload";

/// The `key_id` of host call credentials ([`Auth::host_call_credential`]).
pub const HOST_CALL_KEY_ID: &str = "host-call";

/// Failed API key attempts a presenter may make in a row, then one more per
/// second; at most this many presenters are tracked (each entry is ~64 bytes).
const FAILED_ATTEMPTS: Limits = Limits {
    burst: 10,
    refill_per_sec: 1.0,
    max_keys: 10_000,
};

/// How often a cluster host re-reads the cluster's API keys, revocations
/// and published signing keys.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// Settings for [`Auth::open`].
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Lifetime of issued tokens (default 15 minutes, at least one second).
    pub token_ttl: Duration,
    /// The `iss` claim written into and required from tokens.
    pub issuer: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl: Duration::from_secs(15 * 60),
            issuer: "hms-host".to_owned(),
        }
    }
}

/// Why an authentication operation failed.
#[derive(thiserror::Error, Debug)]
pub enum AuthError {
    /// The API key is unknown, malformed or has the wrong secret.
    #[error("invalid API key")]
    InvalidKey,
    /// The API key (or the key a token came from) has been revoked.
    #[error("API key revoked")]
    Revoked,
    /// The token's lifetime is over.
    #[error("token expired")]
    Expired,
    /// The token is malformed, wrongly signed or not issued by this host.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// No API key has this id.
    #[error("unknown API key id {0:?}")]
    UnknownKeyId(String),
    /// Too many failed attempts from this presenter: no attempt is made
    /// until `retry_after` has passed.
    #[error("too many failed attempts")]
    Throttled { retry_after: Duration },
    /// The service name breaks the naming rule (the message says how).
    #[error("{0}")]
    InvalidService(String),
    /// In a cluster: this host's copy of the keys and revocations is older
    /// than [`keys::MAX_STALENESS`] (the cluster database is unreachable),
    /// so API keys and their tokens are refused until it is current again.
    #[error(
        "this host cannot confirm that the API key is not revoked (the cluster database is unreachable)"
    )]
    Stale,
    /// The cluster database failed.
    #[error("cluster key store: {0}")]
    Unavailable(String),
    /// Keys cannot be moved into a cluster that keys them differently.
    #[error("{0}")]
    Incompatible(String),
    /// The key database failed.
    #[error("key store: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A file could not be read or written, or stored data is corrupt
    /// (`io::ErrorKind::InvalidData`).
    #[error("key store I/O: {0}")]
    Io(#[from] io::Error),
}

impl From<OpenError> for AuthError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Io(e) => AuthError::Io(e),
            OpenError::Sqlite(e) => AuthError::Storage(e),
        }
    }
}

/// Who presents an API key, for throttling failed attempts: each presenter
/// has its own budget, so an attacker cannot lock out anybody else.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Presenter {
    /// A client of the token endpoint, by address (see [`Presenter::address`]).
    Address(IpAddr),
    /// A deployed component calling `auth.authenticate`.
    Service(String),
}

impl Presenter {
    /// The presenter for a client address. IPv4-mapped IPv6 addresses count
    /// as the IPv4 address, and IPv6 addresses by their /64 prefix, which is
    /// what a single site or host is normally given.
    pub fn address(ip: IpAddr) -> Presenter {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
            v4 => v4,
        };
        Presenter::Address(ip)
    }
}

/// API keys, token issuing/verification and the admin credential.
///
/// All methods take `&self` and are thread-safe; share it behind an `Arc`.
pub struct Auth {
    keys: ApiKeys,
    tokens: Tokens,
    admin: AdminCredential,
    /// Budget of failed API key attempts per presenter.
    failed_attempts: KeyedLimiter<Presenter>,
}

impl Auth {
    /// Opens (creating on first use) the key store in `data_dir`: `keys.db`
    /// with the pepper, signing keys and API keys, and `admin.token`.
    pub fn open(data_dir: &Path, config: AuthConfig) -> Result<Auth, AuthError> {
        crate::base::files::create_private_dir(data_dir)?;
        // Key changes are rare and revocations must survive a crash.
        let mut conn = sqlite::open_writer(&data_dir.join("keys.db"), sqlite::Sync::Full)?;
        conn.execute_batch(keys::SCHEMA)?;
        conn.execute_batch(tokens::SCHEMA)?;
        // IMMEDIATE: two processes opening a fresh directory must agree on
        // one pepper and one signing key.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (pepper_mac, loaded) = ApiKeys::load(&tx)?;
        let signing = Tokens::load_keys(&tx)?;
        tx.commit()?;
        Ok(Auth {
            keys: ApiKeys::new(conn, pepper_mac, loaded),
            tokens: Tokens::new(config, signing)?,
            admin: AdminCredential::load_or_create(data_dir)?,
            failed_attempts: KeyedLimiter::new(FAILED_ATTEMPTS),
        })
    }

    /// Opens auth for a host of `cluster`: this host's signing keys stay in
    /// `data_dir/keys.db` and their public halves are published in the
    /// cluster database; API keys, the pepper, revocations and the admin
    /// credential are the cluster's (see [`Auth::spawn_sync`]).
    pub async fn open_cluster(
        data_dir: &Path,
        config: AuthConfig,
        cluster: &crate::core::cluster::Cluster,
    ) -> Result<Auth, AuthError> {
        crate::base::files::create_private_dir(data_dir)?;
        let mut conn = sqlite::open_writer(&data_dir.join("keys.db"), sqlite::Sync::Full)?;
        conn.execute_batch(tokens::SCHEMA)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let signing = Tokens::load_keys(&tx)?;
        tx.commit()?;
        drop(conn);
        let tokens = Tokens::new(config, signing)?;
        let pool = cluster.pool();
        let keys = ApiKeys::cluster(pool.clone()).await?;
        let unavailable = |e: tokio_postgres::Error| AuthError::Unavailable(e.to_string());
        let client = pool
            .get()
            .await
            .map_err(|e| AuthError::Unavailable(crate::base::postgres::error_text(&e)))?;
        let now = crate::base::clock::unix_secs() as i64;
        for key in tokens.own_keys() {
            let public =
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &key.x)
                    .map_err(|e| corrupt(&format!("own public key: {e}")))?;
            client
                .execute(
                    "INSERT INTO signing_keys (kid, host_id, public_key, created_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO NOTHING",
                    &[&key.kid, &cluster.host_id(), &public, &now],
                )
                .await
                .map_err(unavailable)?;
        }
        // The first host's credential becomes the cluster's.
        let local = AdminCredential::load_or_create(data_dir)?;
        client
            .execute(
                "INSERT INTO cluster_meta (name, value) VALUES ('admin_token', $1)
                 ON CONFLICT DO NOTHING",
                &[&local.token().as_bytes()],
            )
            .await
            .map_err(unavailable)?;
        let token: Vec<u8> = client
            .query_one(
                "SELECT value FROM cluster_meta WHERE name = 'admin_token'",
                &[],
            )
            .await
            .map_err(unavailable)?
            .get(0);
        let token = String::from_utf8(token).map_err(|_| corrupt("the cluster admin token"))?;
        drop(client);
        let auth = Auth {
            keys,
            tokens,
            admin: AdminCredential::adopt(data_dir, token)?,
            failed_attempts: KeyedLimiter::new(FAILED_ATTEMPTS),
        };
        auth.sync().await?;
        Ok(auth)
    }

    /// `hms-host cluster import`: moves the API keys (with their revocations)
    /// of the standalone data directory `data_dir` into the cluster database
    /// behind `pool`, and makes its admin credential the cluster's if the
    /// cluster has none yet. Keys are kept as hashes keyed by a pepper, so
    /// they move only into a cluster that has no pepper yet (it takes this
    /// one) or has this one. Keys the cluster has already are kept. Returns
    /// how many keys were added.
    pub async fn import_into_cluster(
        data_dir: &Path,
        pool: &deadpool_postgres::Pool,
    ) -> Result<usize, AuthError> {
        let conn = sqlite::open_reader(&data_dir.join("keys.db"))?;
        let (pepper, keys) = keys::ApiKeys::read_all(&conn)?;
        drop(conn);
        let admin = std::fs::read_to_string(admin::path(data_dir)).ok();
        let unavailable =
            |e: tokio_postgres::Error| AuthError::Unavailable(crate::base::postgres::describe(&e));
        let mut client = pool
            .get()
            .await
            .map_err(|e| AuthError::Unavailable(crate::base::postgres::error_text(&e)))?;
        let txn = client.transaction().await.map_err(unavailable)?;
        if let Some(pepper) = &pepper {
            txn.execute(
                "INSERT INTO cluster_meta (name, value) VALUES ('pepper', $1) ON CONFLICT DO NOTHING",
                &[pepper],
            )
            .await
            .map_err(unavailable)?;
            let theirs: Vec<u8> = txn
                .query_one("SELECT value FROM cluster_meta WHERE name = 'pepper'", &[])
                .await
                .map_err(unavailable)?
                .get(0);
            if theirs != *pepper && !keys.is_empty() {
                return Err(AuthError::Incompatible(format!(
                    "the cluster already keys its API keys with another pepper, so the {} API keys of {} cannot move \
                     (only hashes of them are kept): import into the cluster before any host has run in it, or \
                     issue new keys there",
                    keys.len(),
                    data_dir.display()
                )));
            }
        }
        let mut added = 0;
        for key in &keys {
            added += txn
                .execute(
                    "INSERT INTO api_keys (id, service, secret_hash, created_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    &[
                        &key.id,
                        &key.service,
                        &key.secret_hash,
                        &key.created_at,
                        &key.revoked_at,
                    ],
                )
                .await
                .map_err(unavailable)? as usize;
        }
        if let Some(token) = admin.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            txn.execute(
                "INSERT INTO cluster_meta (name, value) VALUES ('admin_token', $1) ON CONFLICT DO NOTHING",
                &[&token.as_bytes()],
            )
            .await
            .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)?;
        Ok(added)
    }

    /// In a cluster: re-reads the API keys and revocations, and the signing
    /// keys every host published (retired ones excluded).
    pub async fn sync(&self) -> Result<(), AuthError> {
        crate::base::postgres::bounded(self.sync_unbounded(), timed_out).await
    }

    async fn sync_unbounded(&self) -> Result<(), AuthError> {
        let keys::KeyStore::Cluster(_) = &self.keys.store else {
            return Ok(());
        };
        self.keys.sync().await?;
        let pool = self.keys.pool().expect("a cluster key store has a pool");
        let rows = pool
            .get()
            .await
            .map_err(|e| AuthError::Unavailable(crate::base::postgres::error_text(&e)))?
            .query(
                "SELECT kid, public_key FROM signing_keys WHERE retired_at IS NULL",
                &[],
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let published = rows
            .iter()
            .filter_map(|r| {
                let kid: String = r.get(0);
                let public: Vec<u8> = r.get(1);
                Some(tokens::jwk(&kid, &public.try_into().ok()?))
            })
            .collect();
        self.tokens.trust(published);
        Ok(())
    }

    /// Whether this host's copy of the shared auth state is current (always
    /// standalone; in a cluster, read from the database within
    /// [`keys::MAX_STALENESS`]): the sign that the database is reachable.
    pub fn is_current(&self) -> bool {
        self.keys.check_current().is_ok()
    }

    /// Keeps a cluster host's copy of the shared auth state current: a
    /// [`Auth::sync`] every [`SYNC_INTERVAL`], until the handle is aborted.
    pub fn spawn_sync(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let auth = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match auth.sync().await {
                    Ok(()) if failing => {
                        tracing::info!("cluster auth state is current again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        tracing::warn!("reading the cluster's API keys failed (retrying): {e}");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    }

    /// Creates an API key for `service` (1-64 characters of `[a-z0-9-]`).
    pub async fn create_key(&self, service: &str) -> Result<CreatedKey, AuthError> {
        crate::core::names::validate_service_name(service)
            .map_err(|e| AuthError::InvalidService(e.to_string()))?;
        crate::base::postgres::bounded(self.keys.create(service), timed_out).await
    }

    /// Lists all API keys, oldest first, including revoked ones.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, AuthError> {
        crate::base::postgres::bounded(self.keys.list(), timed_out).await
    }

    /// Revokes an API key: it can no longer authenticate, and tokens already
    /// issued from it fail verification with [`AuthError::Revoked`].
    /// Revoking an already revoked key succeeds and keeps the first time.
    pub async fn revoke_key(&self, id: &str) -> Result<(), AuthError> {
        crate::base::postgres::bounded(self.keys.revoke(id), timed_out).await?;
        self.tokens.forget_key(id);
        Ok(())
    }

    /// Exchanges an API key for a token whose subject is the key's service.
    /// Not throttled: callers that face clients use [`Auth::authenticate_from`].
    pub fn authenticate(&self, api_key: &str) -> Result<IssuedToken, AuthError> {
        let (id, service) = self.keys.check_secret(api_key)?;
        Ok(self.tokens.issue_now(&service, id))
    }

    /// [`Auth::authenticate`], throttled per presenter: once `from` has spent
    /// its budget of failed attempts, every attempt from it is refused with
    /// [`AuthError::Throttled`] until the budget refills, whether or not the
    /// key is valid. Only invalid and revoked keys are charged.
    pub fn authenticate_from(
        &self,
        from: &Presenter,
        api_key: &str,
    ) -> Result<IssuedToken, AuthError> {
        self.admit(from)?;
        let result = self.authenticate(api_key);
        if let Err(AuthError::InvalidKey | AuthError::Revoked) = result {
            self.record_failure(from);
        }
        result
    }

    /// Whether `from` may attempt an authentication now.
    pub fn admit(&self, from: &Presenter) -> Result<(), AuthError> {
        self.failed_attempts
            .check(from)
            .map_err(|retry_after| AuthError::Throttled { retry_after })
    }

    /// Charges a failed attempt (e.g. an unreadable request) to `from`.
    pub fn record_failure(&self, from: &Presenter) {
        if self.failed_attempts.charge(from) {
            tracing::warn!(presenter = ?from, "too many failed API key attempts; throttling");
        }
    }

    /// A token for a deployed component's own identity (`key_id` is
    /// [`WORKLOAD_KEY_ID`]). Tokens are cached per service and re-issued once
    /// less than a third of their lifetime is left, so this is usually a map
    /// lookup and a clone.
    pub fn workload_token(&self, service: &str) -> IssuedToken {
        self.tokens.workload(service)
    }

    /// Checks a token's algorithm, key, signature, issuer, audience, lifetime
    /// and the revocation state of its API key, and returns its claims.
    ///
    /// Successful verifications are cached under the token's SHA-256 until
    /// it expires; revocation is still checked on every call.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.tokens.verify(token, |key_id, subject| {
            if key_id == WORKLOAD_KEY_ID {
                Ok(())
            } else {
                self.keys.check_issued(key_id, subject)
            }
        })
    }

    /// The credential with which this host forwards a call from `service`
    /// (at call depth `depth`) to host `to_host`: a short-lived JWT signed
    /// with this host's key, audience `to_host`. Cached; components never
    /// see it.
    pub fn host_call_credential(&self, service: &str, to_host: &str, depth: u32) -> String {
        self.tokens.host_call(service, to_host, depth)
    }

    /// Checks a host call credential presented to `this_host` (this host's
    /// id) against the keys of every host of the cluster: who is calling,
    /// at which depth. Tokens of any other kind, and credentials meant for
    /// another host, are refused.
    pub fn verify_host_call(
        &self,
        credential: &str,
        this_host: &str,
    ) -> Result<HostCall, AuthError> {
        self.tokens.verify_host_call(credential, this_host)
    }

    /// The key this host signs audit checkpoints with: its token signing
    /// key, so the JWKS that verifies its tokens verifies its checkpoints.
    pub fn checkpoint_signer(&self) -> crate::core::audit::Signer {
        self.tokens.checkpoints.clone()
    }

    /// The public signing keys as a JSON Web Key Set.
    pub fn jwks(&self) -> Jwks {
        self.tokens.jwks()
    }

    /// Whether `presented` is the admin token (constant-time comparison).
    pub fn check_admin(&self, presented: &str) -> bool {
        self.admin.check(presented)
    }

    /// The admin token. Other processes (the CLI) read it from
    /// [`Auth::admin_token_path`] instead.
    pub fn admin_token(&self) -> &str {
        self.admin.token()
    }

    /// Where the admin token is stored: `data_dir/admin.token`.
    pub fn admin_token_path(data_dir: &Path) -> PathBuf {
        admin::path(data_dir)
    }
}

fn timed_out() -> AuthError {
    AuthError::Unavailable(format!(
        "no answer within {:?}",
        crate::base::postgres::OP_TIMEOUT
    ))
}

fn corrupt(msg: &str) -> AuthError {
    AuthError::Io(io::Error::new(io::ErrorKind::InvalidData, msg.to_owned()))
}

fn mac_bytes(keyed: &HmacSha256, data: &[u8]) -> Vec<u8> {
    let mut mac = keyed.clone();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    OsRng.fill_bytes(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
    use std::fs;

    use crate::base::testdir::TempDir;

    fn open(dir: &TempDir) -> Auth {
        Auth::open(dir.path(), AuthConfig::default()).expect("open auth")
    }

    // The key tests form a conformance suite run on both key stores: a
    // data directory's keys.db, and a cluster database (with this host's
    // signing key still in its data directory).
    use crate::base::testdir::{Backend, on_every_backend};

    enum Place {
        Sqlite(TempDir),
        Cluster(TempDir, Box<crate::core::cluster::Cluster>),
    }

    impl Place {
        async fn new(kind: Backend) -> Place {
            let dir = TempDir::new("auth");
            match kind {
                Backend::Sqlite => Place::Sqlite(dir),
                Backend::Postgres => {
                    let config = crate::core::cluster::ClusterConfig {
                        url: crate::base::testdir::fresh_database_url("auth").await,
                        host_id: None,
                        advertise_url: None,
                        heartbeat: std::time::Duration::from_secs(2),
                        lease: std::time::Duration::from_secs(10),
                    };
                    let cluster = crate::core::cluster::Cluster::join(
                        &config,
                        "h1".into(),
                        "http://127.0.0.1:1".into(),
                    )
                    .await
                    .unwrap();
                    Place::Cluster(dir, Box::new(cluster))
                }
            }
        }

        /// Auth on this place (again: a reopen).
        async fn open(&self) -> Auth {
            match self {
                Place::Sqlite(dir) => open(dir),
                Place::Cluster(dir, cluster) => {
                    Auth::open_cluster(dir.path(), AuthConfig::default(), cluster)
                        .await
                        .unwrap()
                }
            }
        }
    }

    on_every_backend!(
        create_authenticate_verify_round_trip,
        wrong_or_malformed_keys_are_invalid,
        revocation_blocks_keys_and_issued_tokens,
    );

    /// The message of an `InvalidToken` error, panicking on anything else.
    fn rejection<T: std::fmt::Debug>(result: Result<T, AuthError>) -> String {
        match result {
            Err(AuthError::InvalidToken(msg)) => msg,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    fn b64json(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    async fn create_authenticate_verify_round_trip(kind: Backend) {
        let place = Place::new(kind).await;
        let auth = place.open().await;
        let key = auth.create_key("orders").await.unwrap();
        assert!(key.secret.starts_with(&format!("hms_{}_", key.id)));
        assert_eq!(key.id.len(), 12);

        let issued = auth.authenticate(&key.secret).unwrap();
        let claims = auth.verify(&issued.token).unwrap();
        assert_eq!(claims.subject, "orders");
        assert_eq!(claims.key_id, key.id);
        assert_eq!(claims.expires_at, issued.expires_at);
        assert_eq!(claims.expires_at - claims.issued_at, 15 * 60);
        // Second verification is served from the cache and agrees.
        assert_eq!(auth.verify(&issued.token).unwrap(), claims);

        let listed = auth.list_keys().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].revoked_at),
            (key.id.as_str(), None)
        );
    }

    async fn wrong_or_malformed_keys_are_invalid(kind: Backend) {
        let place = Place::new(kind).await;
        let auth = place.open().await;
        let key = auth.create_key("orders").await.unwrap();
        let other_secret = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let wrong_secret = format!("hms_{}_{other_secret}", key.id);
        let unknown_id = format!("hms_0123456789ab_{other_secret}");
        let short = &key.secret[..key.secret.len() - 1];
        let upper = key.secret.replacen("hms_", "HMS_", 1);
        let padded = format!("{}=", key.secret);
        for bad in [
            "",
            "hms_",
            "hms__",
            &wrong_secret,
            &unknown_id,
            short,
            &upper,
            &padded,
        ] {
            assert!(
                matches!(auth.authenticate(bad), Err(AuthError::InvalidKey)),
                "{bad:?}"
            );
        }
        for bad in ["", "Orders", "a_b", &"a".repeat(65)] {
            assert!(
                matches!(
                    auth.create_key(bad).await,
                    Err(AuthError::InvalidService(_))
                ),
                "{bad:?}"
            );
        }
        assert!(auth.create_key(&"a".repeat(64)).await.is_ok());
    }

    async fn revocation_blocks_keys_and_issued_tokens(kind: Backend) {
        let place = Place::new(kind).await;
        let auth = place.open().await;
        let key = auth.create_key("orders").await.unwrap();
        let keep = auth.create_key("orders").await.unwrap();
        let cached = auth.authenticate(&key.secret).unwrap().token;
        let uncached = auth.authenticate(&key.secret).unwrap().token;
        auth.verify(&cached).unwrap();

        auth.revoke_key(&key.id).await.unwrap();
        assert!(matches!(
            auth.authenticate(&key.secret),
            Err(AuthError::Revoked)
        ));
        assert!(matches!(auth.verify(&cached), Err(AuthError::Revoked)));
        assert!(matches!(auth.verify(&uncached), Err(AuthError::Revoked)));
        assert!(auth.authenticate(&keep.secret).is_ok());
        auth.revoke_key(&key.id).await.unwrap(); // idempotent
        assert!(matches!(
            auth.revoke_key("nope").await,
            Err(AuthError::UnknownKeyId(_))
        ));

        let listed = auth.list_keys().await.unwrap();
        let revoked = listed.iter().find(|k| k.id == key.id).unwrap();
        assert!(revoked.revoked_at.is_some());
        // Revocation survives a reopen.
        drop(auth);
        let auth = place.open().await;
        assert!(matches!(
            auth.authenticate(&key.secret),
            Err(AuthError::Revoked)
        ));
        assert!(matches!(auth.verify(&uncached), Err(AuthError::Revoked)));
    }

    #[tokio::test]
    async fn expired_and_premature_tokens() -> anyhow::Result<()> {
        let dir = TempDir::new("expiry");
        let mut auth = open(&dir);
        let key = auth.create_key("orders").await?;
        let cached = auth.authenticate(&key.secret)?.token;
        auth.verify(&cached)?;
        let fresh = auth.authenticate(&key.secret)?.token;

        auth.tokens.clock = || crate::base::clock::unix_secs() + 15 * 60;
        assert!(matches!(auth.verify(&cached), Err(AuthError::Expired)));
        assert!(matches!(auth.verify(&fresh), Err(AuthError::Expired)));

        auth.tokens.clock = || crate::base::clock::unix_secs() - 60;
        let premature = auth.authenticate(&key.secret)?.token;
        auth.tokens.clock = || crate::base::clock::unix_secs() - 120;
        assert_eq!(rejection(auth.verify(&premature)), "not yet valid");
        auth.tokens.clock = || crate::base::clock::unix_secs() - 62; // within the nbf leeway
        assert!(auth.verify(&premature).is_ok());
        Ok(())
    }

    #[tokio::test]
    async fn foreign_and_tampered_tokens_are_rejected() -> anyhow::Result<()> {
        let (dir_a, dir_b) = (TempDir::new("a"), TempDir::new("b"));
        let (auth, other) = (open(&dir_a), open(&dir_b));
        let key = auth.create_key("orders").await?;
        let token = auth.authenticate(&key.secret)?.token;

        // Another host's token: its kid is unknown here.
        let foreign = other.workload_token("orders").token;
        assert_eq!(rejection(auth.verify(&foreign)), "unknown signing key");
        // Another host's key posing under our kid: bad signature.
        let forged = other.tokens.sign(
            &auth.tokens.signing_kid,
            &other.tokens.signing_key,
            "orders",
            "workload",
            crate::base::clock::unix_secs(),
        )?;
        assert_eq!(rejection(auth.verify(&forged.token)), "bad signature");

        // Tampered payload with the original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1])?)?;
        payload["sub"] = "admin".into();
        let tampered = format!("{}.{}.{}", parts[0], b64json(&payload), parts[2]);
        assert_eq!(rejection(auth.verify(&tampered)), "bad signature");

        // alg "none" with no signature.
        let none_header =
            serde_json::json!({"alg": "none", "typ": "JWT", "kid": auth.tokens.signing_kid});
        let none = format!("{}.{}.", b64json(&none_header), parts[1]);
        assert_eq!(rejection(auth.verify(&none)), "malformed token");

        // HS256 keyed with the public key (algorithm confusion).
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(auth.tokens.signing_kid.clone());
        let public = auth.jwks().keys[0].x.clone();
        let hs = jsonwebtoken::encode(
            &header,
            &payload,
            &EncodingKey::from_secret(public.as_bytes()),
        )?;
        assert_eq!(rejection(auth.verify(&hs)), "algorithm not accepted");

        for junk in ["", "a.b.c", "not a token", &parts[..2].join(".")] {
            assert_eq!(rejection(auth.verify(junk)), "malformed token", "{junk:?}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn failed_attempts_are_throttled_per_presenter() -> anyhow::Result<()> {
        let dir = TempDir::new("throttle");
        let auth = open(&dir);
        let key = auth.create_key("orders").await?;
        let wrong = format!("hms_{}_{}", key.id, URL_SAFE_NO_PAD.encode([7u8; 32]));
        let attacker = Presenter::address("192.0.2.1".parse()?);
        let neighbour = Presenter::address("192.0.2.2".parse()?);

        // Successes are free: far more than the burst, never throttled.
        for _ in 0..3 * FAILED_ATTEMPTS.burst {
            auth.authenticate_from(&attacker, &key.secret)?;
        }
        for _ in 0..FAILED_ATTEMPTS.burst {
            assert!(matches!(
                auth.authenticate_from(&attacker, &wrong),
                Err(AuthError::InvalidKey)
            ));
        }
        // Budget spent: even the valid key is refused from this address...
        match auth.authenticate_from(&attacker, &key.secret) {
            Err(AuthError::Throttled { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected Throttled, got {other:?}"),
        }
        // ...but not from anywhere else, nor for a calling service.
        auth.authenticate_from(&neighbour, &key.secret)?;
        auth.authenticate_from(&Presenter::Service("orders".into()), &key.secret)?;

        // Revoked keys and unreadable requests count as failures too.
        let revoked = auth.create_key("orders").await?;
        auth.revoke_key(&revoked.id).await?;
        let service = Presenter::Service("billing".into());
        for _ in 0..FAILED_ATTEMPTS.burst - 1 {
            assert!(matches!(
                auth.authenticate_from(&service, &revoked.secret),
                Err(AuthError::Revoked)
            ));
        }
        auth.record_failure(&service);
        assert!(matches!(
            auth.admit(&service),
            Err(AuthError::Throttled { .. })
        ));
        Ok(())
    }

    #[tokio::test]
    async fn presenters_group_ipv6_by_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            Presenter::address(ip("::ffff:192.0.2.7")),
            Presenter::address(ip("192.0.2.7"))
        );
        assert_eq!(
            Presenter::address(ip("2001:db8:1:2:aaaa::1")),
            Presenter::address(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            Presenter::address(ip("2001:db8:1:2::1")),
            Presenter::address(ip("2001:db8:1:3::1"))
        );
        assert_ne!(
            Presenter::address(ip("127.0.0.1")),
            Presenter::address(ip("127.0.0.2"))
        );
    }

    #[tokio::test]
    async fn rejections_never_quote_the_token() -> anyhow::Result<()> {
        let dir = TempDir::new("quote");
        let auth = open(&dir);
        let der = {
            let keys::KeyStore::Sqlite(conn) = &auth.keys.store else {
                unreachable!("a standalone host keeps its keys in SQLite")
            };
            let conn = crate::base::sync::lock(conn);
            conn.query_row("SELECT private_key FROM signing_keys", [], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
        };
        let key = EncodingKey::from_ed_der(&der);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(auth.tokens.signing_kid.clone());
        let now = crate::base::clock::unix_secs();
        // Correctly signed, but `iat` is a string: the JSON parser's
        // message would quote it.
        let claims = serde_json::json!({
            "iss": "hms-host", "sub": "orders", "aud": "hms", "iat": "SECRET-IN-CLAIM",
            "nbf": now, "exp": now + 60, "jti": "x", "key_id": "workload",
        });
        let token = jsonwebtoken::encode(&header, &claims, &key)?;
        let msg = rejection(auth.verify(&token));
        assert!(!msg.contains("SECRET"), "{msg}");
        assert_eq!(msg, "malformed token");
        Ok(())
    }

    #[tokio::test]
    async fn wrong_issuer_is_rejected() -> anyhow::Result<()> {
        let dir = TempDir::new("issuer");
        let auth = open(&dir);
        let token = auth.workload_token("orders").token;
        drop(auth);
        let config = AuthConfig {
            issuer: "someone-else".into(),
            ..AuthConfig::default()
        };
        let auth = Auth::open(dir.path(), config)?;
        assert_eq!(rejection(auth.verify(&token)), "wrong issuer");
        Ok(())
    }

    #[tokio::test]
    async fn reopen_keeps_keys_signing_key_and_admin_token() -> anyhow::Result<()> {
        let dir = TempDir::new("reopen");
        let auth = open(&dir);
        let key = auth.create_key("orders").await?;
        let token = auth.authenticate(&key.secret)?.token;
        let (jwks, admin) = (auth.jwks(), auth.admin_token().to_owned());
        drop(auth);

        let auth = open(&dir);
        assert_eq!(auth.jwks(), jwks);
        assert_eq!(auth.admin_token(), admin);
        assert_eq!(auth.verify(&token)?.key_id, key.id);
        assert_eq!(auth.authenticate(&key.secret).map(|_| ())?, ());
        assert_eq!(
            fs::read_to_string(Auth::admin_token_path(dir.path()))?.trim(),
            admin
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(dir.path()), 0o700);
            assert_eq!(mode(&dir.path().join("keys.db")), 0o600);
            assert_eq!(mode(&Auth::admin_token_path(dir.path())), 0o600);
        }
        Ok(())
    }

    #[tokio::test]
    async fn workload_tokens_are_cached_and_verify() -> anyhow::Result<()> {
        let dir = TempDir::new("workload");
        let mut auth = open(&dir);
        let first = auth.workload_token("orders");
        assert_eq!(auth.workload_token("orders").token, first.token);
        let claims = auth.verify(&first.token)?;
        assert_eq!(
            (claims.subject.as_str(), claims.key_id.as_str()),
            ("orders", WORKLOAD_KEY_ID)
        );
        assert_ne!(auth.workload_token("billing").token, first.token);

        // With a third of its life left, a new token is issued.
        auth.tokens.clock = || crate::base::clock::unix_secs() + 10 * 60 + 1;
        let renewed = auth.workload_token("orders");
        assert_ne!(renewed.token, first.token);
        assert!(renewed.expires_at > first.expires_at);
        Ok(())
    }

    #[tokio::test]
    async fn jwks_lists_the_signing_key() {
        let dir = TempDir::new("jwks");
        let auth = open(&dir);
        let jwks = serde_json::to_value(auth.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
        assert_eq!(key["kid"], auth.tokens.signing_kid.as_str());
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert_eq!(
            (key["alg"].as_str(), key["use"].as_str()),
            (Some("EdDSA"), Some("sig"))
        );
        // The published key verifies our tokens on its own.
        let token = auth.workload_token("orders").token;
        let decoding = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
        assert!(
            jsonwebtoken::decode::<tokens::TokenClaims>(&token, &decoding, &auth.tokens.validation)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn host_call_credentials_hold_only_for_the_host_they_name() -> anyhow::Result<()> {
        let (dir_1, dir_2) = (TempDir::new("h1"), TempDir::new("h2"));
        let (h1, h2) = (open(&dir_1), open(&dir_2));
        // h2 trusts h1's key, as a cluster host trusts every published key.
        h2.tokens.trust(h1.jwks().keys);
        let credential = h1.host_call_credential("report-service", "h2", 3);
        let call = h2.verify_host_call(&credential, "h2")?;
        assert_eq!((call.service.as_str(), call.depth), ("report-service", 3));
        assert_eq!(h2.verify_host_call(&credential, "h2")?, call, "cached");
        // Cached per caller, target and depth.
        assert_eq!(
            h1.host_call_credential("report-service", "h2", 3),
            credential
        );
        assert_ne!(
            h1.host_call_credential("report-service", "h3", 3),
            credential
        );
        assert_ne!(
            h1.host_call_credential("report-service", "h2", 4),
            credential
        );

        // Meant for another host: refused there, cached or not.
        assert_eq!(
            rejection(h2.verify_host_call(&credential, "h3")),
            "wrong audience"
        );
        assert_eq!(
            rejection(h1.verify_host_call(&credential, "h1")),
            "wrong audience"
        );
        // Neither kind stands in for the other, whatever the host is called.
        let hms = h1.host_call_credential("report-service", "hms", 0);
        assert_eq!(
            rejection(h1.verify(&hms)),
            "a host call credential is not a token"
        );
        // An ordinary token has no call depth (nor the host-call marker).
        let token = h1.workload_token("report-service").token;
        assert_eq!(
            rejection(h1.verify_host_call(&token, "hms")),
            "malformed token"
        );
        // A key no host published.
        let stranger = TempDir::new("stranger");
        let forged = open(&stranger).host_call_credential("report-service", "h2", 0);
        assert_eq!(
            rejection(h2.verify_host_call(&forged, "h2")),
            "unknown signing key"
        );
        assert_eq!(
            rejection(h2.verify_host_call("junk", "h2")),
            "malformed token"
        );

        // Expiry is checked on cache hits too.
        let mut h2 = h2;
        h2.tokens.clock = || crate::base::clock::unix_secs() + 61;
        assert!(matches!(
            h2.verify_host_call(&credential, "h2"),
            Err(AuthError::Expired)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn admin_check() {
        let dir = TempDir::new("admin");
        let auth = open(&dir);
        let admin = auth.admin_token().to_owned();
        assert!(admin.starts_with("hmsadmin_"));
        assert!(auth.check_admin(&admin));
        assert!(!auth.check_admin(""));
        assert!(!auth.check_admin(&admin[..admin.len() - 1]));
        assert!(!auth.check_admin(&format!("{admin}x")));
        assert!(!auth.check_admin(&admin.to_uppercase()));
    }
}
