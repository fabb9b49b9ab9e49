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

pub async fn deploy(host: &HostArgs, service: &str, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let deployed = client(host, true)?.deploy(service, bytes.into()).await?;
    outln!("{} {}", deployed.name, deployed.version)?;
    Ok(())
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

pub async fn rollback(host: &HostArgs, service: &str, to: Option<&str>) -> anyhow::Result<()> {
    let now = client(host, true)?.rollback(service, to).await?;
    outln!("{} {}", now.name, now.version)?;
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
    for (name, count) in &s.counters {
        outln!("{name:<20} {count}")?;
    }
    Ok(())
}
