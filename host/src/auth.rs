//! Core authentication: API keys, signed tokens and the admin credential.
//!
//! * **API keys** (`hms_<id>_<secret>`) are created per service and stored in
//!   `data_dir/keys.db` as a keyed hash (HMAC-SHA256 with a random pepper), so
//!   a copy of the database alone does not reveal usable keys.
//! * An API key is exchanged for a short-lived **EdDSA (Ed25519) JWT** with
//!   [`Auth::authenticate`]; deployed components get their own identity token
//!   from [`Auth::workload_token`] without any secret. [`Auth::verify`] checks
//!   tokens on the request path and caches the result, and [`Auth::jwks`]
//!   publishes the public keys so that others can verify too.
//! * The **admin credential** (`hmsadmin_…`) lives in `data_dir/admin.token`
//!   and guards the management API; see [`Auth::check_admin`].
//! * **Failed API key attempts** are throttled per [`Presenter`] (client
//!   address or calling service) with [`Auth::authenticate_from`]; only
//!   failures count, so a valid key is never slowed down.
//!
//! Secrets (API keys, tokens, the admin credential) never appear in an error
//! message or a log line of this module: errors name the reason only.
//!
//! Everything the hot paths need (key index, signing keys, caches) is held in
//! memory; SQLite is only touched when keys are created, revoked or listed.
//! Only this process is expected to write `keys.db` while it runs: keys
//! created or revoked by another process are seen after the next open.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use rand::rngs::OsRng;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ratelimit::{KeyedLimiter, Limits};

type HmacSha256 = Hmac<Sha256>;

/// The `key_id` of tokens issued by [`Auth::workload_token`].
pub const WORKLOAD_KEY_ID: &str = "workload";

const API_KEY_PREFIX: &str = "hms_";
const ADMIN_PREFIX: &str = "hmsadmin_";
const AUDIENCE: &str = "hms";
/// Tolerance for `nbf` only. Expiry is strict: this host issues and checks
/// its own tokens with the same clock, so there is no skew to absorb there.
const NBF_LEEWAY_SECS: u64 = 5;
/// Upper bound on remembered verified tokens (each entry is ~150 bytes).
const VERIFIED_CACHE_MAX: usize = 10_000;
const KEY_ID_BYTES: usize = 6; // 12 hex characters
/// Failed API key attempts a presenter may make in a row, then one more per
/// second; at most this many presenters are tracked (each entry is ~64 bytes).
const FAILED_ATTEMPTS: Limits = Limits {
    burst: 10,
    refill_per_sec: 1.0,
    max_keys: 10_000,
};
const SECRET_BYTES: usize = 32;

const SCHEMA: &str = "
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
);
-- Several signing keys may exist (rotation): the newest one not retired signs,
-- all of them verify and are published in the JWKS.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BLOB NOT NULL, -- PKCS#8 DER
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);";

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
#[derive(Clone, Debug, Serialize)]
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

/// What a verified token says about its bearer.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Claims {
    /// The service the token was issued to.
    pub subject: String,
    /// The API key the token came from, or [`WORKLOAD_KEY_ID`].
    pub key_id: String,
    /// Issue time, seconds since the Unix epoch.
    pub issued_at: u64,
    /// Expiry time, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// A signed token and when it expires.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Expiry time, seconds since the Unix epoch.
    pub expires_at: u64,
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
    /// The key database failed.
    #[error("key store: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A file could not be read or written, or stored data is corrupt
    /// (`io::ErrorKind::InvalidData`).
    #[error("key store I/O: {0}")]
    Io(#[from] io::Error),
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

/// The JWT payload as it travels.
#[derive(Serialize, Deserialize)]
struct TokenClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    /// API key id, or [`WORKLOAD_KEY_ID`]; lets revocation reach issued tokens.
    key_id: String,
}

/// In-memory view of one API key, so `authenticate` never touches SQLite.
struct KeyEntry {
    service: String,
    secret_hash: Vec<u8>,
    revoked: bool,
}

struct CachedWorkload {
    token: IssuedToken,
    /// Re-issue from this time on, when a third of the lifetime is left.
    refresh_at: u64,
}

/// API keys, token issuing/verification and the admin credential.
///
/// All methods take `&self` and are thread-safe; share it behind an `Arc`.
pub struct Auth {
    config: AuthConfig,
    validation: Validation,
    /// Seconds since the Unix epoch; a plain field so tests can move time.
    clock: fn() -> u64,
    conn: Mutex<Connection>,
    /// HMAC keyed with the pepper, cloned per use to avoid re-keying.
    pepper_mac: HmacSha256,
    keys: RwLock<HashMap<String, KeyEntry>>,
    signing_kid: String,
    signing_key: EncodingKey,
    verifying_keys: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    admin_token: String,
    /// The admin token is compared as HMACs under a random per-process key,
    /// which makes the comparison constant-time and length-independent.
    admin_mac: HmacSha256,
    admin_digest: Vec<u8>,
    workload: RwLock<HashMap<String, CachedWorkload>>,
    /// SHA-256 of a verified token → its claims, until it expires.
    verified: RwLock<HashMap<[u8; 32], Claims>>,
    /// Budget of failed API key attempts per presenter.
    failed_attempts: KeyedLimiter<Presenter>,
}

impl Auth {
    /// Opens (creating on first use) the key store in `data_dir`: `keys.db`
    /// with the pepper, signing key and API keys, and `admin.token`.
    pub fn open(data_dir: &Path, config: AuthConfig) -> Result<Auth, AuthError> {
        create_private_dir(data_dir)?;
        let db_path = data_dir.join("keys.db");
        prepare_private_file(&db_path)?;
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "keys.db is not in WAL mode");
        }
        // Key changes are rare and revocations must survive a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;

        // IMMEDIATE: two processes opening a fresh directory must agree on
        // one pepper and one signing key.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let pepper: Option<Vec<u8>> = tx
            .query_row("SELECT value FROM meta WHERE name = 'pepper'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let pepper = match pepper {
            Some(p) if p.len() == 32 => p,
            Some(_) => return Err(corrupt("pepper in keys.db has the wrong length")),
            None => {
                let p = random_bytes(32);
                tx.execute("INSERT INTO meta (name, value) VALUES ('pepper', ?1)", [&p])?;
                p
            }
        };
        let mut signing: Vec<(String, Vec<u8>, bool)> = tx
            .prepare(
                "SELECT kid, private_key, retired_at IS NOT NULL FROM signing_keys
                 ORDER BY created_at, kid",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        if !signing.iter().any(|(_, _, retired)| !retired) {
            let key = SigningKey::generate(&mut OsRng);
            let der = key
                .to_pkcs8_der()
                .map_err(|e| corrupt(&format!("encode key: {e}")))?;
            let kid = thumbprint(&key.verifying_key().to_bytes());
            tx.execute(
                "INSERT INTO signing_keys (kid, private_key, created_at) VALUES (?1, ?2, ?3)",
                params![kid, der.as_bytes(), crate::clock::unix_secs() as i64],
            )?;
            tracing::info!(%kid, "generated a new token signing key");
            signing.push((kid, der.as_bytes().to_vec(), false));
        }
        let keys: HashMap<String, KeyEntry> = tx
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
        tx.commit()?;

        let mut verifying_keys = HashMap::new();
        let mut jwks = Vec::new();
        let mut active = None;
        for (kid, der, retired) in signing {
            let key = SigningKey::from_pkcs8_der(&der)
                .map_err(|e| corrupt(&format!("signing key {kid}: {e}")))?;
            let public = key.verifying_key().to_bytes();
            // jsonwebtoken wants the raw 32-byte public key for Ed25519
            // verification and the PKCS#8 DER document for signing.
            verifying_keys.insert(kid.clone(), DecodingKey::from_ed_der(&public));
            jwks.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public),
                "kid": kid, "alg": "EdDSA", "use": "sig",
            }));
            if !retired {
                active = Some((kid, EncodingKey::from_ed_der(&der)));
            }
        }
        let (signing_kid, signing_key) = active.expect("an active signing key was ensured above");

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Time is checked by `verify` itself against `self.clock`, so that the
        // cache and the checks agree and tests can move time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;

        let admin_token = load_or_create_admin_token(data_dir)?;
        let admin_mac = HmacSha256::new_from_slice(&random_bytes(32)).expect("any key length");
        let admin_digest = mac_bytes(&admin_mac, admin_token.as_bytes());

        let auth = Auth {
            config,
            validation,
            clock: crate::clock::unix_secs,
            conn: Mutex::new(conn),
            pepper_mac: HmacSha256::new_from_slice(&pepper).expect("any key length"),
            keys: RwLock::new(keys),
            signing_kid,
            signing_key,
            verifying_keys,
            jwks: serde_json::json!({ "keys": jwks }),
            admin_token,
            admin_mac,
            admin_digest,
            workload: RwLock::new(HashMap::new()),
            verified: RwLock::new(HashMap::new()),
            failed_attempts: KeyedLimiter::new(FAILED_ATTEMPTS),
        };
        // Prove once that the stored key signs, so issuing can be infallible.
        auth.sign(
            &auth.signing_kid,
            &auth.signing_key,
            "probe",
            WORKLOAD_KEY_ID,
            crate::clock::unix_secs(),
        )
        .map_err(|e| corrupt(&format!("signing key unusable: {e}")))?;
        Ok(auth)
    }

    /// Creates an API key for `service` (1-64 characters of `[a-z0-9-]`).
    pub fn create_key(&self, service: &str) -> Result<CreatedKey, AuthError> {
        crate::registry::validate_service_name(service)
            .map_err(|e| AuthError::InvalidService(e.to_string()))?;
        // The connection lock also serialises creators, so the id check holds.
        let conn = lock(&self.conn);
        let id = loop {
            let id = hex::encode(random_bytes(KEY_ID_BYTES));
            if !read(&self.keys).contains_key(&id) {
                break id;
            }
        };
        let secret = random_bytes(SECRET_BYTES);
        let secret_hash = mac_bytes(&self.pepper_mac, &secret);
        conn.execute(
            "INSERT INTO api_keys (id, service, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, service, secret_hash, crate::clock::unix_secs() as i64],
        )?;
        let entry = KeyEntry {
            service: service.to_owned(),
            secret_hash,
            revoked: false,
        };
        write(&self.keys).insert(id.clone(), entry);
        let secret = format!("{API_KEY_PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(&secret));
        Ok(CreatedKey {
            id,
            service: service.to_owned(),
            secret,
        })
    }

    /// Lists all API keys, oldest first, including revoked ones.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare_cached(
            "SELECT id, service, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )?;
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

    /// Revokes an API key: it can no longer authenticate, and tokens already
    /// issued from it fail verification with [`AuthError::Revoked`].
    /// Revoking an already revoked key succeeds and keeps the first time.
    pub fn revoke_key(&self, id: &str) -> Result<(), AuthError> {
        let conn = lock(&self.conn);
        let changed = conn.execute(
            "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![crate::clock::unix_secs() as i64, id],
        )?;
        match write(&self.keys).get_mut(id) {
            Some(entry) => entry.revoked = true,
            None if changed == 0 => return Err(AuthError::UnknownKeyId(id.to_owned())),
            None => {}
        }
        drop(conn);
        // `verify` re-checks revocation on every cache hit; this only frees memory.
        write(&self.verified).retain(|_, claims| claims.key_id != id);
        Ok(())
    }

    /// Exchanges an API key for a token whose subject is the key's service.
    /// Not throttled: callers that face clients use [`Auth::authenticate_from`].
    pub fn authenticate(&self, api_key: &str) -> Result<IssuedToken, AuthError> {
        let (id, secret) = parse_api_key(api_key).ok_or(AuthError::InvalidKey)?;
        // The keyed hash is computed before the lookup, so that an unknown
        // id costs the same as a wrong secret; the comparison is constant-time.
        let mut mac = self.pepper_mac.clone();
        mac.update(&secret);
        let keys = read(&self.keys);
        let entry = keys.get(id).ok_or(AuthError::InvalidKey)?;
        mac.verify_slice(&entry.secret_hash)
            .map_err(|_| AuthError::InvalidKey)?;
        // Only holders of the secret learn that the key was revoked.
        if entry.revoked {
            return Err(AuthError::Revoked);
        }
        let service = entry.service.clone();
        drop(keys);
        Ok(self.issue(&service, id, (self.clock)()))
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
        let now = (self.clock)();
        if let Some(cached) = read(&self.workload).get(service)
            && now < cached.refresh_at
        {
            return cached.token.clone();
        }
        let token = self.issue(service, WORKLOAD_KEY_ID, now);
        let ttl = self.ttl_secs();
        let refresh_at = now + ttl - ttl / 3;
        let cached = CachedWorkload {
            token: token.clone(),
            refresh_at,
        };
        write(&self.workload).insert(service.to_owned(), cached);
        token
    }

    /// Checks a token's algorithm, key, signature, issuer, audience, lifetime
    /// and the revocation state of its API key, and returns its claims.
    ///
    /// Successful verifications are cached under the token's SHA-256 until
    /// it expires; revocation is still checked on every call.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let now = (self.clock)();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = read(&self.verified).get(&digest).cloned();
        if let Some(claims) = cached {
            if now >= claims.expires_at {
                write(&self.verified).remove(&digest);
                return Err(AuthError::Expired);
            }
            self.check_key(&claims.key_id, &claims.subject)?;
            return Ok(claims);
        }

        let claims = self.verify_uncached(token, now)?;
        let mut cache = write(&self.verified);
        if cache.len() >= VERIFIED_CACHE_MAX {
            cache.retain(|_, c| now < c.expires_at);
            if cache.len() >= VERIFIED_CACHE_MAX {
                // Still full of live tokens: drop an arbitrary half (HashMap
                // order is randomised) rather than track recency on hits.
                let mut n = 0usize;
                cache.retain(|_, _| {
                    n += 1;
                    n.is_multiple_of(2)
                });
            }
        }
        cache.insert(digest, claims.clone());
        Ok(claims)
    }

    /// The public signing keys as a JSON Web Key Set.
    pub fn jwks(&self) -> serde_json::Value {
        self.jwks.clone()
    }

    /// Whether `presented` is the admin token (constant-time comparison).
    pub fn check_admin(&self, presented: &str) -> bool {
        let mut mac = self.admin_mac.clone();
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.admin_digest).is_ok()
    }

    /// The admin token. Other processes (the CLI) read it from
    /// [`Auth::admin_token_path`] instead.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Where the admin token is stored: `data_dir/admin.token`.
    pub fn admin_token_path(data_dir: &Path) -> PathBuf {
        data_dir.join("admin.token")
    }

    fn ttl_secs(&self) -> u64 {
        self.config.token_ttl.as_secs().max(1)
    }

    fn issue(&self, subject: &str, key_id: &str, now: u64) -> IssuedToken {
        self.sign(&self.signing_kid, &self.signing_key, subject, key_id, now)
            .expect("the signing key was proven usable in Auth::open")
    }

    fn sign(
        &self,
        kid: &str,
        key: &EncodingKey,
        subject: &str,
        key_id: &str,
        now: u64,
    ) -> jsonwebtoken::errors::Result<IssuedToken> {
        let exp = now + self.ttl_secs();
        let claims = TokenClaims {
            iss: self.config.issuer.clone(),
            sub: subject.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            nbf: now,
            exp,
            jti: URL_SAFE_NO_PAD.encode(random_bytes(16)),
            key_id: key_id.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key)?;
        Ok(IssuedToken {
            token,
            expires_at: exp,
        })
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let invalid = |msg: &str| AuthError::InvalidToken(msg.to_owned());
        // Select the key by `kid` ourselves and accept EdDSA only, so no
        // token can pick an algorithm or key we did not intend.
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("algorithm not accepted"));
        }
        let kid = header.kid.ok_or_else(|| invalid("missing kid"))?;
        let key = self
            .verifying_keys
            .get(&kid)
            .ok_or_else(|| invalid("unknown signing key"))?;
        let data = jsonwebtoken::decode::<TokenClaims>(token, key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => invalid("bad signature"),
                ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                ErrorKind::InvalidAudience => invalid("wrong audience"),
                ErrorKind::MissingRequiredClaim(claim) => {
                    AuthError::InvalidToken(format!("missing claim {claim}"))
                }
                // Not `e.to_string()`: a JSON error quotes the token's own
                // content, which must not end up in errors or logs.
                _ => invalid("malformed token"),
            },
        )?;
        let c = data.claims;
        if c.nbf > now + NBF_LEEWAY_SECS {
            return Err(invalid("not yet valid"));
        }
        if now >= c.exp {
            return Err(AuthError::Expired);
        }
        self.check_key(&c.key_id, &c.sub)?;
        Ok(Claims {
            subject: c.sub,
            key_id: c.key_id,
            issued_at: c.iat,
            expires_at: c.exp,
        })
    }

    /// Whether the API key behind a token may still be used.
    fn check_key(&self, key_id: &str, subject: &str) -> Result<(), AuthError> {
        if key_id == WORKLOAD_KEY_ID {
            return Ok(());
        }
        match read(&self.keys).get(key_id) {
            None => Err(AuthError::InvalidToken("unknown API key".to_owned())),
            Some(entry) if entry.revoked => Err(AuthError::Revoked),
            Some(entry) if entry.service != subject => Err(AuthError::InvalidToken(
                "subject does not match its API key".to_owned(),
            )),
            Some(_) => Ok(()),
        }
    }
}

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

/// RFC 7638 JWK thumbprint of an Ed25519 public key, used as its `kid`.
fn thumbprint(public: &[u8; 32]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn load_or_create_admin_token(data_dir: &Path) -> io::Result<String> {
    let path = Auth::admin_token_path(data_dir);
    match fs::read_to_string(&path) {
        Ok(text) => return parse_admin_token(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = format!("{ADMIN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes(32)));
    // Write a private temporary file and hard-link it into place: the link
    // fails if another process got there first, and no reader ever sees a
    // half-written token.
    let tmp = data_dir.join(format!(".admin.token.{}", hex::encode(random_bytes(6))));
    let written = write_private_file(&tmp, format!("{token}\n").as_bytes())
        .and_then(|()| fs::hard_link(&tmp, &path));
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            parse_admin_token(&fs::read_to_string(&path)?)
        }
        Err(e) => Err(e),
    }
}

fn parse_admin_token(text: &str) -> io::Result<String> {
    let token = text.trim();
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "admin.token is empty",
        ));
    }
    Ok(token.to_owned())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `path` if missing and makes it owner-only before SQLite opens it
/// (SQLite gives its `-wal`/`-shm` files the same permissions).
fn prepare_private_file(path: &Path) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    drop(file);
    Ok(())
}

fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
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

// Poisoning is ignored: no critical section here can leave its data
// half-updated, so the data stays valid after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testdir::TempDir;

    fn open(dir: &TempDir) -> Auth {
        Auth::open(dir.path(), AuthConfig::default()).expect("open auth")
    }

    /// The message of an `InvalidToken` error, panicking on anything else.
    fn rejection(result: Result<Claims, AuthError>) -> String {
        match result {
            Err(AuthError::InvalidToken(msg)) => msg,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    fn b64json(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn create_authenticate_verify_round_trip() -> anyhow::Result<()> {
        let dir = TempDir::new("roundtrip");
        let auth = open(&dir);
        let key = auth.create_key("orders")?;
        assert!(key.secret.starts_with(&format!("hms_{}_", key.id)));
        assert_eq!(key.id.len(), 12);

        let issued = auth.authenticate(&key.secret)?;
        let claims = auth.verify(&issued.token)?;
        assert_eq!(claims.subject, "orders");
        assert_eq!(claims.key_id, key.id);
        assert_eq!(claims.expires_at, issued.expires_at);
        assert_eq!(claims.expires_at - claims.issued_at, 15 * 60);
        // Second verification is served from the cache and agrees.
        assert_eq!(auth.verify(&issued.token)?, claims);

        let listed = auth.list_keys()?;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].revoked_at),
            (key.id.as_str(), None)
        );
        Ok(())
    }

    #[test]
    fn wrong_or_malformed_keys_are_invalid() -> anyhow::Result<()> {
        let dir = TempDir::new("malformed");
        let auth = open(&dir);
        let key = auth.create_key("orders")?;
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
                matches!(auth.create_key(bad), Err(AuthError::InvalidService(_))),
                "{bad:?}"
            );
        }
        assert!(auth.create_key(&"a".repeat(64)).is_ok());
        Ok(())
    }

    #[test]
    fn revocation_blocks_keys_and_issued_tokens() -> anyhow::Result<()> {
        let dir = TempDir::new("revoke");
        let auth = open(&dir);
        let key = auth.create_key("orders")?;
        let keep = auth.create_key("orders")?;
        let cached = auth.authenticate(&key.secret)?.token;
        let uncached = auth.authenticate(&key.secret)?.token;
        auth.verify(&cached)?;

        auth.revoke_key(&key.id)?;
        assert!(matches!(
            auth.authenticate(&key.secret),
            Err(AuthError::Revoked)
        ));
        assert!(matches!(auth.verify(&cached), Err(AuthError::Revoked)));
        assert!(matches!(auth.verify(&uncached), Err(AuthError::Revoked)));
        assert!(auth.authenticate(&keep.secret).is_ok());
        auth.revoke_key(&key.id)?; // idempotent
        assert!(matches!(
            auth.revoke_key("nope"),
            Err(AuthError::UnknownKeyId(_))
        ));

        let listed = auth.list_keys()?;
        let revoked = listed.iter().find(|k| k.id == key.id).unwrap();
        assert!(revoked.revoked_at.is_some());
        // Revocation survives a reopen.
        drop(auth);
        let auth = open(&dir);
        assert!(matches!(
            auth.authenticate(&key.secret),
            Err(AuthError::Revoked)
        ));
        assert!(matches!(auth.verify(&uncached), Err(AuthError::Revoked)));
        Ok(())
    }

    #[test]
    fn expired_and_premature_tokens() -> anyhow::Result<()> {
        let dir = TempDir::new("expiry");
        let mut auth = open(&dir);
        let key = auth.create_key("orders")?;
        let cached = auth.authenticate(&key.secret)?.token;
        auth.verify(&cached)?;
        let fresh = auth.authenticate(&key.secret)?.token;

        auth.clock = || crate::clock::unix_secs() + 15 * 60;
        assert!(matches!(auth.verify(&cached), Err(AuthError::Expired)));
        assert!(matches!(auth.verify(&fresh), Err(AuthError::Expired)));

        auth.clock = || crate::clock::unix_secs() - 60;
        let premature = auth.authenticate(&key.secret)?.token;
        auth.clock = || crate::clock::unix_secs() - 120;
        assert_eq!(rejection(auth.verify(&premature)), "not yet valid");
        auth.clock = || crate::clock::unix_secs() - 62; // within the nbf leeway
        assert!(auth.verify(&premature).is_ok());
        Ok(())
    }

    #[test]
    fn foreign_and_tampered_tokens_are_rejected() -> anyhow::Result<()> {
        let (dir_a, dir_b) = (TempDir::new("a"), TempDir::new("b"));
        let (auth, other) = (open(&dir_a), open(&dir_b));
        let key = auth.create_key("orders")?;
        let token = auth.authenticate(&key.secret)?.token;

        // Another host's token: its kid is unknown here.
        let foreign = other.workload_token("orders").token;
        assert_eq!(rejection(auth.verify(&foreign)), "unknown signing key");
        // Another host's key posing under our kid: bad signature.
        let forged = other.sign(
            &auth.signing_kid,
            &other.signing_key,
            "orders",
            "workload",
            crate::clock::unix_secs(),
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
        let none_header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": auth.signing_kid});
        let none = format!("{}.{}.", b64json(&none_header), parts[1]);
        assert_eq!(rejection(auth.verify(&none)), "malformed token");

        // HS256 keyed with the public key (algorithm confusion).
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(auth.signing_kid.clone());
        let public = auth.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
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

    #[test]
    fn failed_attempts_are_throttled_per_presenter() -> anyhow::Result<()> {
        let dir = TempDir::new("throttle");
        let auth = open(&dir);
        let key = auth.create_key("orders")?;
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
        let revoked = auth.create_key("orders")?;
        auth.revoke_key(&revoked.id)?;
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

    #[test]
    fn presenters_group_ipv6_by_prefix() {
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

    #[test]
    fn rejections_never_quote_the_token() -> anyhow::Result<()> {
        let dir = TempDir::new("quote");
        let auth = open(&dir);
        let der = {
            let conn = lock(&auth.conn);
            conn.query_row("SELECT private_key FROM signing_keys", [], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
        };
        let key = EncodingKey::from_ed_der(&der);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(auth.signing_kid.clone());
        let now = crate::clock::unix_secs();
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

    #[test]
    fn wrong_issuer_is_rejected() -> anyhow::Result<()> {
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

    #[test]
    fn reopen_keeps_keys_signing_key_and_admin_token() -> anyhow::Result<()> {
        let dir = TempDir::new("reopen");
        let auth = open(&dir);
        let key = auth.create_key("orders")?;
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

    #[test]
    fn workload_tokens_are_cached_and_verify() -> anyhow::Result<()> {
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
        auth.clock = || crate::clock::unix_secs() + 10 * 60 + 1;
        let renewed = auth.workload_token("orders");
        assert_ne!(renewed.token, first.token);
        assert!(renewed.expires_at > first.expires_at);
        Ok(())
    }

    #[test]
    fn jwks_lists_the_signing_key() {
        let dir = TempDir::new("jwks");
        let auth = open(&dir);
        let jwks = auth.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
        assert_eq!(key["kid"], auth.signing_kid.as_str());
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
        assert!(jsonwebtoken::decode::<TokenClaims>(&token, &decoding, &auth.validation).is_ok());
    }

    #[test]
    fn admin_check() {
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
