//! `hms-host cluster ...`: the hosts of a cluster.

use super::{HostArgs, client, output};
use crate::outln;
use clap::Subcommand;

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
            let status = client(host, true)?.cluster().await?;
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
            Ok(())
        }
    }
}
