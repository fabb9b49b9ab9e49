//! `hms-host run`: serve components until SIGINT/SIGTERM.

use crate::base::postgres::Target;
use crate::config::{self, Config, Limits, Sandbox};
use crate::core::audit::Durability;
use crate::core::cluster::ClusterConfig;
use crate::core::names::validate_service_name;
use crate::runtime::router::Pattern;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Address to listen on; with port 0 a free port is chosen. The bound
    /// address is printed on the first line of output.
    #[arg(long, env = "HMS_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Memory limit per component instance, in MiB.
    #[arg(long, env = "HMS_MEMORY_LIMIT_MB", default_value_t = config::DEFAULT_MEMORY_LIMIT >> 20)]
    memory_limit_mb: u64,
    /// Time limit per request, in milliseconds.
    #[arg(long, env = "HMS_REQUEST_TIMEOUT_MS", default_value_t = config::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)]
    request_timeout_ms: u64,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "HMS_TOKEN_TTL_SECS", default_value_t = config::DEFAULT_TOKEN_TTL.as_secs())]
    token_ttl_secs: u64,
    /// What an answered request's audit events survive: `full` (fsync per
    /// group commit: power loss too) or `process` (kill -9 and process
    /// crashes, not an OS crash or power loss; much cheaper).
    #[arg(long, env = "HMS_AUDIT_DURABILITY", default_value = "full")]
    audit_durability: Durability,
    /// Send a span of every service hop to this OTLP/HTTP traces endpoint
    /// (protobuf), e.g. `http://127.0.0.1:4318/v1/traces`.
    #[arg(long, env = "HMS_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Also serve the metrics at `/metrics` on this address, without a
    /// credential (for a Prometheus scraper on a private network).
    #[arg(long, env = "HMS_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Seconds between signed audit checkpoints (each covers the events
    /// since the previous one; one more is signed at shutdown).
    #[arg(long, env = "HMS_CHECKPOINT_SECS", default_value_t = config::DEFAULT_CHECKPOINT_EVERY.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_secs: u64,
    /// Seconds a client has to send each request head (idle keep-alive time
    /// included); slower connections are closed.
    #[arg(long, env = "HMS_HEADER_TIMEOUT_SECS", default_value_t = config::DEFAULT_HEADER_TIMEOUT.as_secs())]
    header_timeout_secs: u64,
    /// TOML file of per-service limits and outbound grants: `[defaults]` and
    /// `[services.NAME]` sections (see the README). Its `[defaults]` apply
    /// over the limit flags above.
    #[arg(long, env = "HMS_CONFIG")]
    config: Option<PathBuf>,
    /// Component instances alive at once, host-wide.
    #[arg(long, env = "HMS_MAX_INSTANCES", default_value_t = config::DEFAULT_MAX_INSTANCES)]
    max_instances: u32,
    /// KiB of each freed instance memory kept resident and reset in place
    /// for the next instance (the pages written, found by scan); 0 hands
    /// every freed page back with madvise. Default: 2048, or for a host
    /// serving a component whose memory starts at 12 MiB or more (a Python
    /// one) all of that memory, reset whole.
    #[arg(long, env = "HMS_POOL_KEEP_RESIDENT_KB")]
    pool_keep_resident_kb: Option<u64>,
    /// Directory of compiled components (default: `cache` in the data
    /// directory). Artifacts are named by digest and engine settings, so
    /// several data directories or hosts on one machine may share one.
    #[arg(long, env = "HMS_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Also serve every `*.wasm` in this directory, and deploy files that
    /// appear in it later (repeatable).
    #[arg(long = "components-dir", env = "HMS_COMPONENTS_DIR")]
    components_dirs: Vec<PathBuf>,
    /// Load a JSON-lines file (as `data export` writes) into a service's
    /// store at start, before the host reports ready: `SERVICE=FILE`
    /// (repeatable; existing keys are replaced).
    #[arg(long = "import", value_name = "SERVICE=FILE", value_parser = parse_import)]
    imports: Vec<(String, PathBuf)>,
    /// Join a cluster: every host given the same PostgreSQL database shares
    /// its state there. Without it, the host is standalone (SQLite in the
    /// data directory, no server to run).
    #[arg(long, env = "HMS_CLUSTER", value_name = "postgres://USER@HOST:PORT/DB")]
    cluster: Option<String>,
    /// This host's id in the cluster (default: generated once, kept in the
    /// data directory as `host-id`).
    #[arg(long, env = "HMS_HOST_ID")]
    host_id: Option<String>,
    /// The URL other hosts call this one by (default: http:// and the
    /// listening address).
    #[arg(long, env = "HMS_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// How often this host renews its cluster lease, in milliseconds.
    #[arg(long, env = "HMS_HEARTBEAT_MS", default_value_t = config::DEFAULT_HEARTBEAT.as_millis() as u64)]
    heartbeat_ms: u64,
    /// How long a cluster lease lasts without renewal, in milliseconds: a
    /// host that stops leaves discovery within this plus one heartbeat.
    #[arg(long, env = "HMS_LEASE_MS", default_value_t = config::DEFAULT_LEASE.as_millis() as u64)]
    lease_ms: u64,
    /// Do not watch component files for changes.
    #[arg(long, env = "HMS_NO_WATCH")]
    no_watch: bool,
    /// Component files (`.wasm`) to serve.
    #[arg(required_unless_present = "components_dirs")]
    components: Vec<PathBuf>,
}

pub async fn run(args: RunArgs, data_dir: PathBuf) -> anyhow::Result<()> {
    // A file that may not grow further (RLIMIT_FSIZE) must fail the write
    // the way a full disk does, not kill the host: with SIGXFSZ ignored the
    // write returns EFBIG, the audit log holds its events and retries.
    // SAFETY: installs SIG_IGN for one signal before any thread that could
    // race on the disposition depends on it.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    for file in &args.components {
        if !file.is_file() {
            bail!("{}: no such component file", file.display());
        }
    }
    for (service, file) in &args.imports {
        if !file.is_file() {
            bail!("--import {service}={}: no such file", file.display());
        }
    }
    let cluster = match &args.cluster {
        None => None,
        Some(url) => {
            // Checked before anything starts; the message names the problem.
            Target::parse(url)?;
            if args.heartbeat_ms == 0 || args.lease_ms <= args.heartbeat_ms {
                bail!("--lease-ms must be longer than --heartbeat-ms, and both at least 1");
            }
            Some(ClusterConfig {
                url: url.clone(),
                host_id: args.host_id.clone(),
                advertise_url: args.advertise_url.clone(),
                heartbeat: Duration::from_millis(args.heartbeat_ms),
                lease: Duration::from_millis(args.lease_ms),
            })
        }
    };
    if args.cluster.is_none() && (args.host_id.is_some() || args.advertise_url.is_some()) {
        bail!("--host-id and --advertise-url are for cluster mode: add --cluster postgres://...");
    }
    if args.memory_limit_mb == 0 || args.request_timeout_ms == 0 {
        bail!("--memory-limit-mb and --request-timeout-ms must be at least 1");
    }
    let mut sandbox = Sandbox {
        defaults: Limits {
            memory: args.memory_limit_mb << 20,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            ..Limits::default()
        },
        ..Sandbox::default()
    };
    if let Some(path) = &args.config {
        sandbox.load_file(path).map_err(anyhow::Error::msg)?;
        for (name, routes) in sandbox.configured_routes() {
            for route in routes {
                Pattern::parse(route).map_err(|e| {
                    anyhow::anyhow!("{}: [services.{name}] routes: {e}", path.display())
                })?;
            }
        }
    }
    let config = Config {
        listen: args.listen,
        data_dir,
        cache_dir: args.cache_dir,
        components: args.components,
        components_dirs: args.components_dirs,
        watch: !args.no_watch,
        imports: args.imports,
        sandbox,
        max_instances: args.max_instances,
        keep_resident: args.pool_keep_resident_kb.map(|kb| (kb << 10) as usize),
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        audit_durability: args.audit_durability,
        checkpoint_every: Duration::from_secs(args.checkpoint_secs),
        metrics_listen: args.metrics_listen,
        otlp_endpoint: args.otlp_endpoint,
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        cluster,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    crate::startup::run(config, listener, shutdown_signal()).await
}

fn parse_import(s: &str) -> Result<(String, PathBuf), String> {
    let (service, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected SERVICE=FILE"))?;
    validate_service_name(service).map_err(|e| e.to_string())?;
    Ok((service.to_string(), PathBuf::from(file)))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining requests in flight");
}
