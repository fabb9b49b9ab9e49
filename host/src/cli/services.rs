//! Services and their versions: `services`, `deploy`, `versions`,
//! `rollback`, `stats`.

use super::output::{self, short_version};
use super::{HostArgs, client};
use crate::outln;
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

pub async fn services(host: &HostArgs, json: bool) -> anyhow::Result<()> {
    let list = client(host, false)?.services().await?;
    if json {
        return output::json(&list);
    }
    for s in &list.services {
        let kind = serde_json::to_value(&s.kind)?;
        outln!(
            "{:<24} {:<9} {:<28} {} {}",
            s.name,
            kind.as_str().unwrap_or_default(),
            s.url,
            short_version(&s.version),
            s.routes.join(" ")
        )?;
    }
    Ok(())
}

/// `--wait` of `deploy` and `rollback`.
#[derive(clap::Args)]
pub struct WaitArgs {
    /// Return only once every live host of the cluster serves the new
    /// version (exit 1 naming any host that refused it, and why).
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 120, requires = "wait")]
    wait_secs: u64,
}

pub async fn deploy(
    host: &HostArgs,
    service: &str,
    file: &Path,
    wait: &WaitArgs,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let client = client(host, true)?;
    let deployed = client.deploy(service, bytes.into()).await?;
    outln!("{} {}", deployed.name, deployed.version)?;
    if wait.wait {
        served_everywhere(&client, service, &deployed.version, wait).await?;
    }
    Ok(())
}

/// Waits until every live host serves `version` of `service`, or has
/// refused it (an error naming each such host and its reason).
async fn served_everywhere(
    client: &super::client::Client,
    service: &str,
    version: &str,
    wait: &WaitArgs,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(wait.wait_secs);
    loop {
        let hosts = client.cluster().await?.hosts;
        // Hosts the placement keeps the service off do not serve it.
        let placed: Option<Vec<String>> = client
            .placement()
            .await?
            .placement
            .into_iter()
            .find(|p| p.service == service)
            .and_then(|p| p.hosts);
        let live: Vec<_> = hosts
            .iter()
            .filter(|h| h.alive && placed.as_ref().is_none_or(|p| p.contains(&h.id)))
            .collect();
        let refusals: Vec<String> = live
            .iter()
            .filter_map(|h| {
                let refusal = h.refused.get(service).filter(|r| r.version == version)?;
                Some(format!("{} refused it: {}", h.id, refusal.error))
            })
            .collect();
        let pending: Vec<&str> = live
            .iter()
            .filter(|h| {
                h.services.get(service).map(String::as_str) != Some(version)
                    && h.refused.get(service).is_none_or(|r| r.version != version)
            })
            .map(|h| h.id.as_str())
            .collect();
        if pending.is_empty() {
            if !refusals.is_empty() {
                anyhow::bail!("{service} {version}: {}", refusals.join("; "));
            }
            let ids: Vec<&str> = live.iter().map(|h| h.id.as_str()).collect();
            outln!("served by {}", ids.join(", "))?;
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{service} {version} is not served by {} after {} s{}",
                pending.join(", "),
                wait.wait_secs,
                if refusals.is_empty() {
                    String::new()
                } else {
                    format!("; {}", refusals.join("; "))
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn versions(host: &HostArgs, service: &str, json: bool) -> anyhow::Result<()> {
    let list = client(host, false)?.versions(service).await?;
    if json {
        return output::json(&list);
    }
    for v in &list.versions {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(v.deployed_at);
        outln!(
            "{} {} {:<6} {}",
            v.version,
            humantime::format_rfc3339_seconds(at),
            if v.active { "active" } else { "" },
            v.source
        )?;
    }
    Ok(())
}

pub async fn rollback(
    host: &HostArgs,
    service: &str,
    to: Option<&str>,
    wait: &WaitArgs,
) -> anyhow::Result<()> {
    let client = client(host, true)?;
    let now = client.rollback(service, to).await?;
    outln!("{} {}", now.name, now.version)?;
    if wait.wait {
        served_everywhere(&client, service, &now.version, wait).await?;
    }
    Ok(())
}

pub async fn stats(host: &HostArgs, service: &str, json: bool) -> anyhow::Result<()> {
    let s = client(host, true)?.stats(service).await?;
    if json {
        return output::json(&s);
    }
    outln!("{} {}", s.name, s.version)?;
    outln!(
        "in flight {} of {}; callers {}; outbound {}",
        s.in_flight,
        s.limits.max_concurrency,
        s.callers
            .as_ref()
            .map_or("any".to_string(), |c| c.join(", ")),
        if s.allow_outbound.is_empty() {
            "none".to_string()
        } else {
            s.allow_outbound.join(", ")
        }
    )?;
    let l = &s.limits;
    outln!(
        "limits: memory {} MiB, timeout {} ms, request body {} KiB, response body {} KiB, headers {} / {} KiB, store {} MiB",
        l.memory >> 20,
        l.request_timeout.as_millis(),
        l.max_request_body >> 10,
        l.max_response_body >> 10,
        l.max_header_count,
        l.max_header_bytes >> 10,
        l.store_quota >> 20
    )?;
    if l.requests_per_instance > 1 {
        outln!(
            "instances: up to {} requests each; {} kept for the next requests",
            l.requests_per_instance,
            s.kept_instances
        )?;
    } else {
        outln!("instances: a fresh one for every request")?;
    }
    for (name, count) in &s.counters {
        outln!("{name:<20} {count}")?;
    }
    Ok(())
}
