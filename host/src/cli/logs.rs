//! `hms-host logs`: read (and follow) the audit log.

use super::{HostArgs, client, output};
use crate::api::types::{EventQuery, Level};
use crate::outln;
use std::time::Duration;

/// Events asked for per request.
const PAGE: usize = 1000;
/// Seconds one long-poll of `--follow` waits (the server allows 30).
const FOLLOW_WAIT: u64 = 25;

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Only events of this service.
    #[arg(long)]
    service: Option<String>,
    /// Only events of this trace id.
    #[arg(long)]
    trace: Option<String>,
    /// Only events of this host's chain (in a cluster).
    #[arg(long)]
    host_id: Option<String>,
    /// Only events at or above this level (debug, info, warn, error).
    #[arg(long)]
    level: Option<Level>,
    /// Keep printing new events as they are committed.
    #[arg(long, short)]
    follow: bool,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
}

pub async fn logs(args: LogsArgs, host: &HostArgs) -> anyhow::Result<()> {
    let client = client(host, true)?;
    let mut query = EventQuery {
        service: args.service,
        trace: args.trace,
        level: args.level,
        host: args.host_id,
        limit: Some(PAGE),
        wait: args.follow.then_some(FOLLOW_WAIT),
        ..EventQuery::default()
    };
    loop {
        let page = client.events(&query).await?;
        let events = page.events;
        query.cursor = Some(page.cursor);
        for e in &events {
            if args.json {
                output::json(e)?;
            } else {
                let time = std::time::UNIX_EPOCH + Duration::from_millis(e.time_ms);
                outln!(
                    "{:>6} {} {} {:<5} {:<20} {} {}",
                    e.seq,
                    e.host,
                    humantime::format_rfc3339_millis(time),
                    e.level.as_str(),
                    e.service,
                    e.trace_id,
                    e.message
                )?;
            }
        }
        output::flush()?;
        if events.len() < PAGE && !args.follow {
            return Ok(());
        }
    }
}
