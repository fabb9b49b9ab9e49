//! `hms-host cluster ...`: the hosts of a cluster; `hms-host place`: where
//! a service runs.

use super::{HostArgs, client, output};
use crate::outln;
use clap::Subcommand;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("where").required(true).args(["hosts", "everywhere"])))]
pub struct PlaceArgs {
    /// The service.
    service: String,
    /// Comma-separated ids of the hosts to run it on, e.g. `h2,h3`.
    hosts: Option<String>,
    /// Clear its placement: every host runs it again.
    #[arg(long)]
    everywhere: bool,
}

pub async fn place(args: PlaceArgs, host: &HostArgs) -> anyhow::Result<()> {
    let hosts: Option<Vec<String>> = args.hosts.map(|h| {
        h.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let placed = client(host, true)?
        .place(&args.service, hosts.as_deref())
        .await?;
    match placed.hosts {
        Some(hosts) => outln!("{} runs on {}", placed.service, hosts.join(","))?,
        None => outln!("{} runs on every host", placed.service)?,
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Every host that joined: id, URL, alive or not, last heartbeat, what it serves (admin).
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn cluster(command: ClusterCommand, host: &HostArgs) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { json } => {
            let admin = client(host, true)?;
            let status = admin.cluster().await?;
            if json {
                return output::json(&status);
            }
            for h in &status.hosts {
                let services: Vec<String> = h
                    .services
                    .iter()
                    .map(|(name, v)| format!("{name}@{}", output::short_version(v)))
                    .collect();
                outln!(
                    "{:<20} {:<28} {:<5} {:>8} ms ago  {}",
                    h.id,
                    h.url,
                    if h.alive { "alive" } else { "gone" },
                    h.last_heartbeat_ms_ago,
                    services.join(" ")
                )?;
            }
            for p in admin.placement().await?.placement {
                let hosts = p.hosts.unwrap_or_default().join(",");
                outln!("placement: {} on {hosts}", p.service)?;
            }
            Ok(())
        }
    }
}
