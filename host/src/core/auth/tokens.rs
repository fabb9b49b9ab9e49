//! Signed tokens: short-lived EdDSA (Ed25519) JWTs, issued for API keys and
//! for deployed components' own identity, verified on the request path with
//! a cache, and the public keys published as a JWKS so others can verify.
//!
//! Signing keys live in `keys.db` (several may exist for rotation: the
//! newest one not retired signs, all of them verify and are published).
//!
//! **Host call credentials** are the same kind of JWT with another purpose:
//! a cluster host forwarding a component's call to another host signs one
//! whose subject is the calling service and whose audience is the target
//! host's id (`key_id` [`HOST_CALL_KEY_ID`], the call depth in `depth`).
//! Only [`Tokens::verify_host_call`] accepts them, and only for the host
//! named in the audience; [`Tokens::verify`] refuses them, and a host call
//! refuses every other token, so neither can stand in for the other.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::OsRng;
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuthConfig, AuthError, HOST_CALL_KEY_ID, WORKLOAD_KEY_ID, corrupt, random_bytes};
use crate::base::sync::{read, write};

const AUDIENCE: &str = "hms";
/// Tolerance for `nbf` only. Expiry is strict: this host issues and checks
/// its own tokens with the same clock, so there is no skew to absorb there.
const NBF_LEEWAY_SECS: u64 = 5;
/// Upper bound on remembered verified tokens (each entry is ~150 bytes).
const VERIFIED_CACHE_MAX: usize = 10_000;
/// Lifetime of a host call credential: short, as it crosses the network on
/// every forwarded call; re-issued when a third of it is left.
const HOST_CALL_TTL_SECS: u64 = 60;

/// The table this module keeps in `keys.db`.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BLOB NOT NULL, -- PKCS#8 DER
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);";

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

/// One public signing key (RFC 8037 OKP key, Ed25519).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// Key id: the RFC 7638 thumbprint; tokens name it in their header.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// The public keys that verify this host's tokens (a JSON Web Key Set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The JWT payload as it travels.
#[derive(Serialize, Deserialize)]
pub(super) struct TokenClaims {
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

/// A host call credential's payload as it travels.
#[derive(Serialize, Deserialize)]
struct HostCallClaims {
    iss: String,
    /// The calling service.
    sub: String,
    /// The id of the host the call is for.
    aud: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    /// Always [`HOST_CALL_KEY_ID`].
    key_id: String,
    /// Hops from the client's request to the calling service.
    depth: u32,
}

/// What a verified host call credential says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCall {
    /// The calling service, as the calling host stamped it.
    pub service: String,
    /// The calling service's call depth (0: it serves a client's request).
    pub depth: u32,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

struct CachedWorkload {
    token: IssuedToken,
    /// Re-issue from this time on, when a third of the lifetime is left.
    refresh_at: u64,
}

/// A signing key as stored: `(kid, PKCS#8 DER, retired)`.
pub(super) type StoredKey = (String, Vec<u8>, bool);

/// Issuing and verifying tokens.
pub(super) struct Tokens {
    config: AuthConfig,
    pub(super) validation: Validation,
    /// Seconds since the Unix epoch; a plain field so tests can move time.
    pub(super) clock: fn() -> u64,
    pub(super) signing_kid: String,
    pub(super) signing_key: EncodingKey,
    /// The same key, for signing audit checkpoints.
    pub(super) checkpoints: crate::core::audit::Signer,
    /// This host's own public keys: always published and trusted.
    own: Vec<Jwk>,
    /// Every key that verifies: this host's and, in a cluster, those the
    /// other hosts published (see [`Tokens::trust`]).
    verifying_keys: RwLock<HashMap<String, DecodingKey>>,
    jwks: RwLock<Jwks>,
    workload: RwLock<HashMap<String, CachedWorkload>>,
    /// SHA-256 of a verified token → its claims, until it expires.
    verified: RwLock<HashMap<[u8; 32], Claims>>,
    /// Host call credentials issued, per (calling service, target host, depth).
    host_calls: RwLock<HashMap<(String, String, u32), CachedWorkload>>,
    /// SHA-256 of a verified host call credential → what it says.
    verified_host_calls: RwLock<HashMap<[u8; 32], HostCall>>,
}

impl Tokens {
    /// Every stored signing key, generating one inside the caller's
    /// transaction when none is active.
    pub(super) fn load_keys(tx: &Transaction<'_>) -> Result<Vec<StoredKey>, AuthError> {
        let mut signing: Vec<StoredKey> = tx
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
                params![kid, der.as_bytes(), crate::base::clock::unix_secs() as i64],
            )?;
            tracing::info!(%kid, "generated a new token signing key");
            signing.push((kid, der.as_bytes().to_vec(), false));
        }
        Ok(signing)
    }

    /// Tokens signed with the active key of `signing`, verified with all.
    pub(super) fn new(config: AuthConfig, signing: Vec<StoredKey>) -> Result<Tokens, AuthError> {
        let mut own = Vec::new();
        let mut active = None;
        for (kid, der, retired) in signing {
            let key = SigningKey::from_pkcs8_der(&der)
                .map_err(|e| corrupt(&format!("signing key {kid}: {e}")))?;
            own.push(jwk(&kid, &key.verifying_key().to_bytes()));
            if !retired {
                active = Some((kid, EncodingKey::from_ed_der(&der), key));
            }
        }
        let (signing_kid, signing_key, checkpoint_key) =
            active.expect("an active signing key was ensured");

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Time is checked by `verify` itself against `self.clock`, so that the
        // cache and the checks agree and tests can move time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;

        let tokens = Tokens {
            config,
            validation,
            clock: crate::base::clock::unix_secs,
            checkpoints: crate::core::audit::Signer {
                kid: signing_kid.clone(),
                key: checkpoint_key,
            },
            signing_kid,
            signing_key,
            verifying_keys: RwLock::new(HashMap::new()),
            jwks: RwLock::new(Jwks { keys: Vec::new() }),
            own,
            workload: RwLock::new(HashMap::new()),
            verified: RwLock::new(HashMap::new()),
            host_calls: RwLock::new(HashMap::new()),
            verified_host_calls: RwLock::new(HashMap::new()),
        };
        tokens.trust(Vec::new());
        // Prove once that the stored key signs, so issuing can be infallible.
        tokens
            .sign(
                &tokens.signing_kid,
                &tokens.signing_key,
                "probe",
                WORKLOAD_KEY_ID,
                crate::base::clock::unix_secs(),
            )
            .map_err(|e| corrupt(&format!("signing key unusable: {e}")))?;
        Ok(tokens)
    }

    /// A token for `subject`, from API key `key_id` (or the workload).
    pub(super) fn issue_now(&self, subject: &str, key_id: &str) -> IssuedToken {
        self.issue(subject, key_id, (self.clock)())
    }

    /// A component's own identity token, cached per service and re-issued
    /// once less than a third of its lifetime is left.
    pub(super) fn workload(&self, service: &str) -> IssuedToken {
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

    /// Checks a token and returns its claims; `key_ok` decides whether the
    /// API key behind it may still be used, on every call (cache hits too).
    pub(super) fn verify(
        &self,
        token: &str,
        key_ok: impl Fn(&str, &str) -> Result<(), AuthError>,
    ) -> Result<Claims, AuthError> {
        let now = (self.clock)();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = read(&self.verified).get(&digest).cloned();
        if let Some(claims) = cached {
            if now >= claims.expires_at {
                write(&self.verified).remove(&digest);
                return Err(AuthError::Expired);
            }
            key_ok(&claims.key_id, &claims.subject)?;
            return Ok(claims);
        }

        let claims = self.verify_uncached(token, now)?;
        key_ok(&claims.key_id, &claims.subject)?;
        remember(&mut write(&self.verified), digest, claims.clone(), |c| {
            now < c.expires_at
        });
        Ok(claims)
    }

    /// A host call credential for a call from `service` (at call depth
    /// `depth`) to host `to_host`, cached per all three and re-issued once
    /// a third of its lifetime is left.
    pub(super) fn host_call(&self, service: &str, to_host: &str, depth: u32) -> String {
        let now = (self.clock)();
        let key = (service.to_owned(), to_host.to_owned(), depth);
        if let Some(cached) = read(&self.host_calls).get(&key)
            && now < cached.refresh_at
        {
            return cached.token.token.clone();
        }
        let claims = HostCallClaims {
            iss: self.config.issuer.clone(),
            sub: service.to_owned(),
            aud: to_host.to_owned(),
            iat: now,
            nbf: now,
            exp: now + HOST_CALL_TTL_SECS,
            jti: URL_SAFE_NO_PAD.encode(random_bytes(16)),
            key_id: HOST_CALL_KEY_ID.to_owned(),
            depth,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .expect("the signing key was proven usable in Tokens::new");
        let mut issued = write(&self.host_calls);
        if issued.len() >= VERIFIED_CACHE_MAX {
            issued.clear(); // services x hosts x depths: only a flood gets here
        }
        let cached = CachedWorkload {
            token: IssuedToken {
                token: token.clone(),
                expires_at: claims.exp,
            },
            refresh_at: now + HOST_CALL_TTL_SECS - HOST_CALL_TTL_SECS / 3,
        };
        issued.insert(key, cached);
        token
    }

    /// Checks a host call credential meant for host `this_host`: EdDSA, a
    /// key some host of the cluster published, this issuer, `this_host` as
    /// audience, the host-call marker, its lifetime. Cached like tokens.
    pub(super) fn verify_host_call(
        &self,
        token: &str,
        this_host: &str,
    ) -> Result<HostCall, AuthError> {
        let now = (self.clock)();
        // Keyed by the audience too: a hit is for the host that checked it.
        let mut hasher = Sha256::new();
        hasher.update(this_host.as_bytes());
        hasher.update([0]);
        hasher.update(token.as_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        let cached = read(&self.verified_host_calls).get(&digest).cloned();
        if let Some(call) = cached {
            if now >= call.expires_at {
                write(&self.verified_host_calls).remove(&digest);
                return Err(AuthError::Expired);
            }
            return Ok(call);
        }
        let key = self.key_of(token)?;
        let mut validation = self.validation.clone();
        validation.set_audience(&[this_host]);
        let c = jsonwebtoken::decode::<HostCallClaims>(token, &key, &validation)
            .map_err(decode_error)?
            .claims;
        if c.key_id != HOST_CALL_KEY_ID {
            return Err(AuthError::InvalidToken("not a host call credential".into()));
        }
        check_times(c.nbf, c.exp, now)?;
        let call = HostCall {
            service: c.sub,
            depth: c.depth,
            expires_at: c.exp,
        };
        remember(
            &mut write(&self.verified_host_calls),
            digest,
            call.clone(),
            |c| now < c.expires_at,
        );
        Ok(call)
    }

    /// Frees the cache entries of tokens from API key `key_id` (revocation
    /// is re-checked on every hit anyway).
    pub(super) fn forget_key(&self, key_id: &str) {
        write(&self.verified).retain(|_, claims| claims.key_id != key_id);
    }

    pub(super) fn jwks(&self) -> Jwks {
        read(&self.jwks).clone()
    }

    /// This host's own public keys, to publish.
    pub(super) fn own_keys(&self) -> &[Jwk] {
        &self.own
    }

    /// Trusts (verifies with, and publishes) this host's own keys and
    /// `others` (the other hosts' published keys), and no other.
    pub(super) fn trust(&self, others: Vec<Jwk>) {
        let mut keys = self.own.clone();
        keys.extend(
            others
                .into_iter()
                .filter(|k| !self.own.iter().any(|o| o.kid == k.kid)),
        );
        let verifying = keys
            .iter()
            .filter_map(|k| {
                // jsonwebtoken wants the raw 32-byte public key for Ed25519
                // verification (and the PKCS#8 DER document for signing).
                let public = URL_SAFE_NO_PAD.decode(&k.x).ok()?;
                Some((k.kid.clone(), DecodingKey::from_ed_der(&public)))
            })
            .collect();
        *write(&self.verifying_keys) = verifying;
        *write(&self.jwks) = Jwks { keys };
    }

    fn ttl_secs(&self) -> u64 {
        self.config.token_ttl.as_secs().max(1)
    }

    fn issue(&self, subject: &str, key_id: &str, now: u64) -> IssuedToken {
        self.sign(&self.signing_kid, &self.signing_key, subject, key_id, now)
            .expect("the signing key was proven usable in Tokens::new")
    }

    pub(super) fn sign(
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

    /// The verifying key a token's header names. The key is selected by
    /// `kid` here and EdDSA only is accepted, so no token can pick an
    /// algorithm or key we did not intend.
    fn key_of(&self, token: &str) -> Result<DecodingKey, AuthError> {
        let invalid = |msg: &str| AuthError::InvalidToken(msg.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("algorithm not accepted"));
        }
        let kid = header.kid.ok_or_else(|| invalid("missing kid"))?;
        read(&self.verifying_keys)
            .get(&kid)
            .cloned()
            .ok_or_else(|| invalid("unknown signing key"))
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let key = self.key_of(token)?;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &key, &self.validation)
            .map_err(decode_error)?;
        let c = data.claims;
        if c.key_id == HOST_CALL_KEY_ID {
            // Only possible for a host whose id is the token audience.
            return Err(AuthError::InvalidToken(
                "a host call credential is not a token".into(),
            ));
        }
        check_times(c.nbf, c.exp, now)?;
        Ok(Claims {
            subject: c.sub,
            key_id: c.key_id,
            issued_at: c.iat,
            expires_at: c.exp,
        })
    }
}

/// Why `jsonwebtoken` refused a token, in words that never quote it.
fn decode_error(e: jsonwebtoken::errors::Error) -> AuthError {
    let invalid = |msg: &str| AuthError::InvalidToken(msg.to_owned());
    match e.kind() {
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
    }
}

/// `nbf` (with [`NBF_LEEWAY_SECS`]) and `exp` (strict) against `now`.
fn check_times(nbf: u64, exp: u64, now: u64) -> Result<(), AuthError> {
    if nbf > now + NBF_LEEWAY_SECS {
        return Err(AuthError::InvalidToken("not yet valid".into()));
    }
    if now >= exp {
        return Err(AuthError::Expired);
    }
    Ok(())
}

/// Caches a verification, bounded: when full, expired entries go first,
/// then an arbitrary half (HashMap order is randomised) rather than track
/// recency on hits.
fn remember<V>(
    cache: &mut HashMap<[u8; 32], V>,
    digest: [u8; 32],
    v: V,
    live: impl Fn(&V) -> bool,
) {
    if cache.len() >= VERIFIED_CACHE_MAX {
        cache.retain(|_, c| live(c));
        if cache.len() >= VERIFIED_CACHE_MAX {
            let mut n = 0usize;
            cache.retain(|_, _| {
                n += 1;
                n.is_multiple_of(2)
            });
        }
    }
    cache.insert(digest, v);
}

/// The JWK of an Ed25519 public key.
pub(crate) fn jwk(kid: &str, public: &[u8; 32]) -> Jwk {
    Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: URL_SAFE_NO_PAD.encode(public),
        kid: kid.to_string(),
        alg: "EdDSA".into(),
        use_: "sig".into(),
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key, used as its `kid`.
fn thumbprint(public: &[u8; 32]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}
