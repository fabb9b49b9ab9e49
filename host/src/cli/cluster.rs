//! `hms-host cluster ...`: the hosts of a cluster; `hms-host place`: where
//! a service runs.

use super::{HostArgs, client, output};
use crate::base::postgres::Target;
use crate::core::audit::AuditLog;
use crate::core::auth::Auth;
use crate::core::store::{Quota, Stores};
use crate::outln;
use crate::runtime::deployments::Deployments;
use crate::runtime::deployments::cluster::ClusterRecord;
use clap::Subcommand;
use std::path::Path;

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
    /// Move a standalone host's data directory (`--data-dir`, the host
    /// stopped) into a cluster: its stores, API keys, deployments and audit
    /// log, the old audit chain's head anchored in the new log. Start the
    /// host afterwards with `run --cluster` on the same data directory.
    Import {
        /// The cluster's database, `postgres://USER@HOST:PORT/DB`.
        #[arg(long, env = "HMS_CLUSTER")]
        cluster: String,
        /// The id the host will have in the cluster (default: the one kept
        /// in the data directory).
        #[arg(long, env = "HMS_HOST_ID")]
        host_id: Option<String>,
    },
}

pub async fn cluster(command: ClusterCommand, host: &HostArgs) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Import { cluster, host_id } => {
            import(&host.data_dir, &cluster, host_id.as_deref()).await
        }
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

/// `hms-host cluster import`: every capability moves its own data; each
/// step is safe to run again (what the cluster has already is kept).
async fn import(data_dir: &Path, url: &str, host_id: Option<&str>) -> anyhow::Result<()> {
    use anyhow::Context;
    if !data_dir.join("keys.db").exists() {
        anyhow::bail!(
            "{} is not a host's data directory (it has no keys.db)",
            data_dir.display()
        );
    }
    let target = Target::parse(url)?;
    let pool = crate::base::postgres::connect(&target).await?;
    crate::base::postgres::migrate(&pool, &target).await?;
    let host_id = crate::core::cluster::host_id(data_dir, host_id)?;
    let fails = |what: &str| format!("importing {what} from {}", data_dir.display());

    // The audit log first: it refuses a chain the cluster has of another log.
    let events = AuditLog::import_into_cluster(&data_dir.join("audit.db"), pool.clone(), &host_id)
        .await
        .with_context(|| fails("the audit log"))?;
    outln!("audit log: {events} events as host {host_id}'s chain, anchored")?;
    let keys = Auth::import_into_cluster(data_dir, &pool)
        .await
        .with_context(|| fails("the API keys"))?;
    outln!("API keys: {keys} added")?;
    // Quotas are the running hosts' to enforce; data that fit stays whole.
    let unlimited = Quota {
        total: u64::MAX,
        key: usize::MAX,
        value: u64::MAX,
    };
    let local = Stores::new(&data_dir.join("stores"), Box::new(move |_| unlimited));
    let shared = Stores::postgres(pool.clone(), Box::new(move |_| unlimited));
    let mut names: Vec<String> = match std::fs::read_dir(data_dir.join("stores")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".db").map(str::to_string))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| fails("the stores")),
    };
    names.sort();
    for name in &names {
        let lines = local.of(name)?.export().await?;
        let n = shared
            .of(name)?
            .import(&lines)
            .await
            .with_context(|| fails(&format!("the store of {name}")))?;
        outln!("store of {name}: {n} records")?;
    }
    let record = Deployments::open(data_dir).with_context(|| fails("the deployments"))?;
    let (versions, active) = record
        .import_into(&ClusterRecord::new(pool.clone(), &host_id))
        .await
        .with_context(|| fails("the deployments"))?;
    outln!(
        "deployments: {versions} versions; active in the cluster now: {}",
        if active.is_empty() {
            "none new".to_string()
        } else {
            active.join(", ")
        }
    )?;
    Ok(())
}
