//! Audit bundles: the log exported as JSON lines, and their offline
//! verification (`hms-host audit export` and `audit verify`).
//!
//! A bundle holds one line per event, `{"type":"event",...}` with every
//! field the chain hashes plus `prev_hash` (the hash of the event before,
//! so a bundle starting mid-chain can be checked), and one line per
//! checkpoint, `{"type":"checkpoint",...}` ([`Checkpoint`]), right after
//! the event it ends at. Chains of several hosts follow each other, each
//! in `seq` order.
//!
//! [`Verifier`] reads a bundle line by line with only a JWKS: every event's
//! hash, the chain linking them without gaps, every checkpoint's signature
//! and its link to the previous checkpoint, and that each checkpoint's head
//! hash is the hash of the event it ends at. Rewriting events consistently
//! (recomputing every hash) is caught by the next checkpoint; cutting the
//! tail by a checkpoint that names events the bundle no longer has.
//! Events after the last checkpoint are only as good as the chain: the
//! summary counts them.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::checkpoint::{Checkpoint, ZERO_HASH};
use super::{AuditError, AuditLog, CheckpointRange, Cursor, Event, MAX_LIMIT, Query, chain_hash};
use crate::core::auth::Jwks;

/// One line of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Event(EventLine),
    Checkpoint(Checkpoint),
}

/// An event as exported: the stored event and the hash it continues.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    #[serde(flatten)]
    pub event: Event,
    /// The hash of event `seq - 1` (64 zeros before event 1).
    pub prev_hash: String,
}

/// Which part of the log to export.
#[derive(Clone, Debug, Default)]
pub struct Range {
    /// One host's chain; `None`: every chain.
    pub host: Option<String>,
    /// First `seq` of each chain (default 1).
    pub from_seq: Option<u64>,
    /// Last `seq` of each chain (default: the end).
    pub to_seq: Option<u64>,
}

/// Streams the bundle for `range` into `out`, one JSON line per item, and
/// stops early when `out` is closed. Checkpoints are read after the events
/// they cover, so every checkpoint in the bundle has its events there.
pub async fn export(
    log: &AuditLog,
    range: &Range,
    out: mpsc::Sender<Result<Bytes, AuditError>>,
) -> Result<(), AuditError> {
    let chains = match &range.host {
        Some(host) => vec![host.clone()],
        None => log.chains().await?,
    };
    let from = range.from_seq.unwrap_or(1).max(1);
    let to = range.to_seq.unwrap_or(u64::MAX);
    for host in chains {
        let mut prev_hash = ZERO_HASH.to_string();
        if from > 1 {
            let before = page(log, &host, from - 2, 1).await?;
            match before.first() {
                Some(e) if e.seq == from - 1 => prev_hash = e.hash.clone(),
                _ => continue,
            }
        }
        let mut after = from - 1;
        while after < to {
            let limit = (to - after).min(MAX_LIMIT as u64) as usize;
            let events = page(log, &host, after, limit).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                break;
            };
            let mut checkpoints = log
                .checkpoints(CheckpointRange {
                    host: host.clone(),
                    after,
                    until: last,
                    // At most one per event of the page.
                    limit: MAX_LIMIT,
                })
                .await?
                .into_iter()
                .peekable();
            for event in events {
                let seq = event.seq;
                let hash = event.hash.clone();
                let line = Line::Event(EventLine {
                    event,
                    prev_hash: std::mem::replace(&mut prev_hash, hash),
                });
                if !send(&out, &line).await {
                    return Ok(());
                }
                while let Some(c) = checkpoints.next_if(|c| c.to_seq <= seq) {
                    if !send(&out, &Line::Checkpoint(c)).await {
                        return Ok(());
                    }
                }
            }
            after = last;
        }
    }
    Ok(())
}

async fn page(
    log: &AuditLog,
    host: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>, AuditError> {
    log.query(&Query {
        host: Some(host.to_string()),
        cursor: Cursor::at(host, after),
        limit: Some(limit),
        ..Query::default()
    })
    .await
}

async fn send(out: &mpsc::Sender<Result<Bytes, AuditError>>, line: &Line) -> bool {
    let mut bytes = serde_json::to_vec(line).expect("a bundle line always serializes");
    bytes.push(b'\n');
    out.send(Ok(Bytes::from(bytes))).await.is_ok()
}

/// The keys checkpoints are checked with, by `kid`.
#[derive(Clone, Debug, Default)]
pub struct Keys(HashMap<String, VerifyingKey>);

impl Keys {
    /// The Ed25519 keys of a JWKS (what `/_hms/auth/jwks` serves).
    pub fn from_jwks(jwks: &Jwks) -> Result<Keys, String> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                continue;
            }
            let public: [u8; 32] = URL_SAFE_NO_PAD
                .decode(&jwk.x)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("key {}: x is not 32 base64url bytes", jwk.kid))?;
            let key = VerifyingKey::from_bytes(&public)
                .map_err(|e| format!("key {}: not an Ed25519 public key: {e}", jwk.kid))?;
            keys.insert(jwk.kid.clone(), key);
        }
        Ok(Keys(keys))
    }
}

/// Where a bundle stops holding: the first bad `seq` of a chain and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: host {host:?}, seq {seq}: {why}")]
pub struct Problem {
    /// Line of the bundle, from 1.
    pub line: u64,
    pub host: String,
    /// The first event that cannot be trusted (0 when the line names none).
    pub seq: u64,
    pub why: String,
}

/// What an intact bundle holds, per chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    pub host: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: u64,
    pub checkpoints: u64,
    /// Events after the last checkpoint: no signature covers them yet.
    pub uncovered: u64,
    /// When the last checkpoint was signed, Unix milliseconds.
    pub last_checkpoint_ms: Option<u64>,
}

#[derive(Default)]
struct ChainState {
    first_seq: u64,
    /// The last event read: its seq and hash.
    last: Option<(u64, String)>,
    events: u64,
    checkpoints: u64,
    checkpoint: Option<Checkpoint>,
}

/// Checks a bundle line by line ([`Verifier::line`]), then
/// [`Verifier::finish`].
pub struct Verifier {
    keys: Keys,
    chains: BTreeMap<String, ChainState>,
    line: u64,
}

impl Verifier {
    pub fn new(keys: Keys) -> Verifier {
        Verifier {
            keys,
            chains: BTreeMap::new(),
            line: 0,
        }
    }

    /// Checks the next line (blank lines are skipped).
    pub fn line(&mut self, text: &str) -> Result<(), Problem> {
        self.line += 1;
        if text.trim().is_empty() {
            return Ok(());
        }
        let line_no = self.line;
        let problem = |host: &str, seq: u64, why: String| Problem {
            line: line_no,
            host: host.to_string(),
            seq,
            why,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| problem("", 0, format!("not JSON: {e}")))?;
        let host = value["host"].as_str().unwrap_or_default().to_string();
        let seq = value["seq"]
            .as_u64()
            .or_else(|| value["from_seq"].as_u64())
            .unwrap_or(0);
        let line: Line = serde_json::from_value(value)
            .map_err(|e| problem(&host, seq, format!("not a bundle line: {e}")))?;
        match line {
            Line::Event(e) => self.event(e).map_err(|(seq, why)| problem(&host, seq, why)),
            Line::Checkpoint(c) => self
                .checkpoint(c)
                .map_err(|(seq, why)| problem(&host, seq, why)),
        }
    }

    fn event(&mut self, line: EventLine) -> Result<(), (u64, String)> {
        let EventLine { event, prev_hash } = line;
        let seq = event.seq;
        let chain = self.chains.entry(event.host.clone()).or_default();
        match &chain.last {
            None if seq == 1 && prev_hash != ZERO_HASH => {
                return Err((1, "event 1 must continue the zero hash".into()));
            }
            None => chain.first_seq = seq,
            Some((last, _)) if seq <= *last => {
                return Err((
                    seq,
                    format!("event {seq} comes after event {last}: inserted or reordered"),
                ));
            }
            Some((last, _)) if seq > last + 1 => {
                return Err((
                    last + 1,
                    format!(
                        "events {}..{} are missing (deleted or moved), event {seq} follows {last}",
                        last + 1,
                        seq - 1
                    ),
                ));
            }
            Some((last, hash)) if prev_hash != *hash => {
                return Err((
                    seq,
                    format!("event {seq} does not continue event {last}'s hash: replaced"),
                ));
            }
            Some(_) => {}
        }
        let prev = super::parse_hash(&prev_hash)
            .ok_or_else(|| (seq, "prev_hash is not 64 hex digits".to_string()))?;
        if hex::encode(chain_hash(&prev, &event)) != event.hash {
            return Err((
                seq,
                format!("event {seq}'s hash does not match its contents: changed"),
            ));
        }
        chain.last = Some((seq, event.hash));
        chain.events += 1;
        Ok(())
    }

    fn checkpoint(&mut self, c: Checkpoint) -> Result<(), (u64, String)> {
        let what = format!("the checkpoint of events {}..{}", c.from_seq, c.to_seq);
        let key = self.keys.0.get(&c.kid).ok_or_else(|| {
            (
                c.from_seq,
                format!(
                    "{what} is signed by key {}, which the key file does not have",
                    c.kid
                ),
            )
        })?;
        c.verify(key)
            .map_err(|e| (c.from_seq, format!("{what}: {e}")))?;
        let chain = self.chains.entry(c.host.clone()).or_default();
        match &chain.checkpoint {
            Some(prev) if c.prev_hash != prev.hash || c.from_seq != prev.to_seq + 1 => {
                return Err((
                    prev.to_seq + 1,
                    format!(
                        "{what} does not follow the checkpoint of events {}..{}: a checkpoint was removed or replaced",
                        prev.from_seq, prev.to_seq
                    ),
                ));
            }
            None if c.from_seq == 1 && c.prev_hash != ZERO_HASH => {
                return Err((1, format!("{what} is the first but names a previous one")));
            }
            // The first checkpoint seen must cover the bundle's first event.
            None if chain.last.is_some() && c.from_seq > chain.first_seq => {
                return Err((
                    chain.first_seq,
                    format!(
                        "events {}..{} have no checkpoint before {what}: a checkpoint was removed",
                        chain.first_seq,
                        c.from_seq - 1
                    ),
                ));
            }
            _ => {}
        }
        match &chain.last {
            None => {
                return Err((
                    c.from_seq,
                    format!("{what} covers events the bundle does not have: deleted"),
                ));
            }
            Some((last, _)) if *last < c.to_seq => {
                return Err((
                    last + 1,
                    format!(
                        "{what} covers events {}..{} that the bundle does not have: deleted",
                        last + 1,
                        c.to_seq
                    ),
                ));
            }
            Some((last, _)) if *last > c.to_seq => {
                return Err((
                    c.to_seq + 1,
                    format!("{what} is out of place, after event {last}: reordered"),
                ));
            }
            Some((_, hash)) if *hash != c.head_hash => {
                let first = c.from_seq.max(chain.first_seq);
                return Err((
                    first,
                    format!(
                        "events {first}..{} do not end in the hash {what} signed: rewritten",
                        c.to_seq
                    ),
                ));
            }
            Some(_) => {}
        }
        chain.checkpoints += 1;
        chain.checkpoint = Some(c);
        Ok(())
    }

    /// Every chain read, once the whole bundle has been.
    pub fn finish(self) -> Vec<ChainSummary> {
        self.chains
            .into_iter()
            .filter(|(_, c)| c.events > 0)
            .map(|(host, c)| {
                let last_seq = c.last.map_or(0, |(seq, _)| seq);
                let covered = c
                    .checkpoint
                    .as_ref()
                    .map_or(c.first_seq.saturating_sub(1), |k| k.to_seq);
                ChainSummary {
                    host,
                    first_seq: c.first_seq,
                    last_seq,
                    events: c.events,
                    checkpoints: c.checkpoints,
                    uncovered: last_seq - covered,
                    last_checkpoint_ms: c.checkpoint.map(|k| k.time_ms),
                }
            })
            .collect()
    }
}
