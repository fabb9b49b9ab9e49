//! `hms-host audit export|verify`: the audit log as a bundle of JSON lines
//! with its signed checkpoints, and checking such a bundle offline.

use super::{HostArgs, client};
use crate::api::types::AuditExportQuery;
use crate::core::audit::bundle::{ChainSummary, Keys, Problem, Verifier};
use crate::core::auth::Jwks;
use crate::outln;
use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the audit log as JSON lines, each host's chain in seq order
    /// with its signed checkpoints (admin).
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Check a bundle: every event's hash and place in its chain, every
    /// checkpoint's signature and what it covers. Exit 0 when intact, 1
    /// naming the first bad seq. Without FILE, checks the host at --url.
    Verify {
        /// A bundle written by `audit export`; omit it to check the running
        /// host at --url (admin).
        file: Option<PathBuf>,
        /// JWKS file with the public keys that signed the checkpoints
        /// (save the host's /_hms/auth/jwks). Required with FILE; with
        /// --url the host's own JWKS is used when it is not given.
        #[arg(long)]
        keys: Option<PathBuf>,
        #[command(flatten)]
        range: RangeArgs,
    },
}

#[derive(clap::Args)]
pub struct RangeArgs {
    /// First seq of each chain to include.
    #[arg(long)]
    from_seq: Option<u64>,
    /// Last seq of each chain to include.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Only this host's chain (a cluster holds one per host).
    #[arg(long = "host-id")]
    host_id: Option<String>,
}

impl RangeArgs {
    fn query(&self) -> AuditExportQuery {
        AuditExportQuery {
            host: self.host_id.clone(),
            from_seq: self.from_seq,
            to_seq: self.to_seq,
        }
    }
}

pub async fn audit(command: AuditCommand, host: &HostArgs) -> anyhow::Result<()> {
    match command {
        AuditCommand::Export { output, range } => {
            let client = client(host, true)?;
            match output {
                Some(file) => {
                    let out = std::fs::File::create(&file)
                        .with_context(|| format!("{}: cannot write", file.display()))?;
                    let mut out = std::io::BufWriter::new(out);
                    client
                        .audit_export(&range.query(), |bytes| out.write_all(bytes))
                        .await?;
                    out.flush()
                        .with_context(|| format!("{}: cannot write", file.display()))?;
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    client
                        .audit_export(&range.query(), |bytes| out.write_all(bytes))
                        .await?;
                    out.flush()?;
                }
            }
            Ok(())
        }
        AuditCommand::Verify {
            file: Some(file),
            keys,
            range,
        } => {
            if range.from_seq.is_some() || range.to_seq.is_some() || range.host_id.is_some() {
                bail!(
                    "--from-seq, --to-seq and --host-id choose what to fetch from a host: not with FILE"
                );
            }
            let keys = keys.ok_or_else(|| {
                anyhow!("--keys JWKS_FILE is required with FILE: the public keys that signed the checkpoints")
            })?;
            let mut verifier = Verifier::new(read_keys(&keys)?);
            let reader = BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("{}: cannot read", file.display()))?,
            );
            for line in reader.lines() {
                let line = line.with_context(|| format!("{}: cannot read", file.display()))?;
                verifier.line(&line).map_err(broken)?;
            }
            report(&verifier.finish())
        }
        AuditCommand::Verify {
            file: None,
            keys,
            range,
        } => {
            let client = client(host, true)?;
            let own_keys = keys.is_none();
            let keys = match &keys {
                Some(path) => read_keys(path)?,
                None => Keys::from_jwks(&client.jwks().await?).map_err(|e| anyhow!("{e}"))?,
            };
            let mut verifier = Verifier::new(keys);
            let mut partial = Vec::new();
            let mut problem = None;
            client
                .audit_export(&range.query(), |bytes| {
                    if problem.is_some() {
                        return Ok(());
                    }
                    partial.extend_from_slice(bytes);
                    while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = partial.drain(..=end).collect();
                        let text = String::from_utf8_lossy(&line[..end]);
                        if let Err(p) = verifier.line(&text) {
                            problem = Some(p);
                            return Ok(());
                        }
                    }
                    Ok(())
                })
                .await?;
            if let Some(p) = problem {
                return Err(broken(p));
            }
            if !partial.is_empty() {
                verifier
                    .line(&String::from_utf8_lossy(&partial))
                    .map_err(broken)?;
            }
            if own_keys {
                outln!(
                    "keys: the host's own /_hms/auth/jwks (give --keys to check against keys you hold)"
                )?;
            }
            report(&verifier.finish())
        }
    }
}

fn read_keys(path: &Path) -> anyhow::Result<Keys> {
    let text = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let jwks: Jwks = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a JWKS ({{\"keys\": [...]}})", path.display()))?;
    Keys::from_jwks(&jwks).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn broken(p: Problem) -> anyhow::Error {
    anyhow!(
        "the audit bundle does not hold: first bad seq {} of host {:?} (line {}): {}",
        p.seq,
        p.host,
        p.line,
        p.why
    )
}

fn report(chains: &[ChainSummary]) -> anyhow::Result<()> {
    if chains.is_empty() {
        outln!("intact: the bundle holds no events")?;
        return Ok(());
    }
    for c in chains {
        let signed = match c.last_checkpoint_ms {
            Some(ms) => format!(
                ", the last signed {}",
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms))
            ),
            None => String::new(),
        };
        let tail = match c.uncovered {
            0 => "every event is covered by a checkpoint".to_string(),
            1 => "1 event at the tail is not covered by a checkpoint yet".to_string(),
            n => format!("{n} events at the tail are not covered by a checkpoint yet"),
        };
        outln!(
            "intact: host {}: events {}..{} ({}), {} checkpoints{signed}; {tail}",
            c.host,
            c.first_seq,
            c.last_seq,
            c.events,
            c.checkpoints
        )?;
    }
    Ok(())
}
