//! Signed checkpoints: what lets an outsider prove the log was neither cut
//! nor rewritten.
//!
//! A hash chain shows that the events it holds are in order and unedited,
//! but not that its tail is all there, nor that someone holding the
//! database did not rewrite it consistently from some event on. So every
//! `--checkpoint-secs`, and at shutdown, the writer appends a checkpoint
//! covering the events committed since the previous one: the `seq` range,
//! the chain's head hash after its last event, the previous checkpoint's
//! hash, the time and the host, signed with the host's Ed25519 token key
//! (whose public half `/_hms/auth/jwks` publishes under `kid`).
//!
//! The signed bytes ([`Checkpoint::signed_bytes`]) are, in order: the
//! context string `hms-audit-checkpoint-v1`, `host`, `from_seq`, `to_seq`,
//! `head_hash`, `prev_hash`, `time_ms`, `kid`, with integers as 8-byte
//! big-endian, strings prefixed by their 8-byte big-endian length and the
//! two hashes as their 32 raw bytes (the first checkpoint's `prev_hash` is
//! 32 zero bytes). `hash` is SHA-256 of those bytes and `signature` the
//! Ed25519 signature of the same bytes, base64url without padding. The
//! context string keeps a checkpoint signature from ever passing as a
//! token's (a JWT signs `base64url.base64url`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::parse_hash;

const CONTEXT: &str = "hms-audit-checkpoint-v1";

/// A signed statement that host `host`'s chain held events
/// `from_seq..=to_seq` ending in `head_hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// The host whose chain this covers.
    pub host: String,
    /// First event covered (the previous checkpoint's `to_seq` + 1).
    pub from_seq: u64,
    /// Last event covered.
    pub to_seq: u64,
    /// The chain hash of event `to_seq`, lowercase hex.
    pub head_hash: String,
    /// The previous checkpoint's `hash` (64 zeros for the first).
    pub prev_hash: String,
    /// When it was made, Unix milliseconds.
    pub time_ms: u64,
    /// The signing key's id in the JWKS.
    pub kid: String,
    /// SHA-256 of the signed bytes, lowercase hex.
    pub hash: String,
    /// Ed25519 signature of the signed bytes, base64url without padding.
    pub signature: String,
}

/// The key checkpoints are signed with, and its JWKS id.
#[derive(Clone)]
pub struct Signer {
    pub kid: String,
    pub key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

/// The `prev_hash` of a chain's first checkpoint.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a checkpoint does not hold by itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("its fields are malformed: {0}")]
    Malformed(String),
    #[error("its hash does not match its contents")]
    Hash,
    #[error("its signature does not verify with key {0}")]
    Signature(String),
}

impl Checkpoint {
    /// A checkpoint after `prev` (None: the chain's first) covering up to
    /// `to_seq`, whose chain hash is `head_hash`, signed by `signer`.
    pub fn sign(
        signer: &Signer,
        host: &str,
        prev: Option<&Checkpoint>,
        to_seq: u64,
        head_hash: &[u8; 32],
        time_ms: u64,
    ) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            host: host.to_string(),
            from_seq: prev.map_or(1, |p| p.to_seq + 1),
            to_seq,
            head_hash: hex::encode(head_hash),
            prev_hash: prev.map_or_else(|| ZERO_HASH.to_string(), |p| p.hash.clone()),
            time_ms,
            kid: signer.kid.clone(),
            hash: String::new(),
            signature: String::new(),
        };
        let bytes = checkpoint
            .signed_bytes()
            .expect("the fields of a new checkpoint are well formed");
        checkpoint.hash = hex::encode(Sha256::digest(&bytes));
        checkpoint.signature = URL_SAFE_NO_PAD.encode(signer.key.sign(&bytes).to_bytes());
        checkpoint
    }

    /// The bytes that are hashed and signed (see the module docs).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let hash = |name: &str, text: &str| {
            parse_hash(text)
                .ok_or_else(|| CheckpointError::Malformed(format!("{name} is not 64 hex digits")))
        };
        let (head, prev) = (
            hash("head_hash", &self.head_hash)?,
            hash("prev_hash", &self.prev_hash)?,
        );
        let mut out = Vec::with_capacity(160 + self.host.len() + self.kid.len());
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        text(&mut out, CONTEXT);
        text(&mut out, &self.host);
        out.extend_from_slice(&self.from_seq.to_be_bytes());
        out.extend_from_slice(&self.to_seq.to_be_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&prev);
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        text(&mut out, &self.kid);
        Ok(out)
    }

    /// Checks the hash and the signature with `key` (the JWKS key `kid`
    /// names).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let bytes = self.signed_bytes()?;
        if hex::encode(Sha256::digest(&bytes)) != self.hash {
            return Err(CheckpointError::Hash);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(&self.signature)
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .ok_or_else(|| {
                CheckpointError::Malformed("signature is not 64 base64url bytes".into())
            })?;
        key.verify_strict(&bytes, &signature)
            .map_err(|_| CheckpointError::Signature(self.kid.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn signer() -> Signer {
        Signer {
            kid: "k1".into(),
            key: SigningKey::generate(&mut OsRng),
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_names_its_predecessor() {
        let s = signer();
        let first = Checkpoint::sign(&s, "h1", None, 10, &[7; 32], 1_000);
        assert_eq!((first.from_seq, first.to_seq), (1, 10));
        assert_eq!(first.prev_hash, ZERO_HASH);
        first.verify(&s.key.verifying_key()).unwrap();
        let second = Checkpoint::sign(&s, "h1", Some(&first), 25, &[8; 32], 2_000);
        assert_eq!(
            (second.from_seq, second.prev_hash.as_str()),
            (11, first.hash.as_str())
        );
        second.verify(&s.key.verifying_key()).unwrap();
    }

    #[test]
    fn any_changed_field_or_another_key_fails() {
        let s = signer();
        let good = Checkpoint::sign(&s, "h1", None, 10, &[7; 32], 1_000);
        let key = s.key.verifying_key();
        let changes: Vec<fn(&mut Checkpoint)> = vec![
            |c| c.host = "h2".into(),
            |c| c.from_seq = 2,
            |c| c.to_seq = 9,
            |c| c.head_hash = hex::encode([6u8; 32]),
            |c| c.prev_hash = hex::encode([1u8; 32]),
            |c| c.time_ms += 1,
            |c| c.kid = "k2".into(),
        ];
        for change in changes {
            let mut bad = good.clone();
            change(&mut bad);
            assert_eq!(bad.verify(&key), Err(CheckpointError::Hash), "{bad:?}");
            // Rehashing does not help without the key.
            bad.hash = hex::encode(Sha256::digest(bad.signed_bytes().unwrap()));
            assert!(matches!(
                bad.verify(&key),
                Err(CheckpointError::Signature(_))
            ));
        }
        let other = signer().key.verifying_key();
        assert_eq!(
            good.verify(&other),
            Err(CheckpointError::Signature("k1".into()))
        );
        let mut garbled = good.clone();
        garbled.signature = "not base64!".into();
        assert!(matches!(
            garbled.verify(&key),
            Err(CheckpointError::Malformed(_))
        ));
    }
}
