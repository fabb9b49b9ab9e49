//! Start-up: opens Core in the data directory, starts the engine and the
//! HTTP front, deploys the given components, restores what was active when
//! the host last stopped, and serves until shutdown.

use crate::config::{Config, MemoryReset};
use crate::core::audit::AuditLog;
use crate::core::auth::{Auth, AuthConfig};
use crate::core::cluster::{self, Cluster};
use crate::core::registry::Registry;
use crate::core::store::Stores;
use crate::core::{Core, HostIdentity};
use crate::http::app::App;
use crate::http::server;
use crate::runtime::Runtime;
use crate::runtime::deployments::Deployments;
use crate::runtime::deployments::cluster::ClusterRecord;
use crate::runtime::engine::WasmEngine;
use crate::runtime::watch;
use anyhow::Context;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// Issuer of the tokens this host signs.
pub const ISSUER: &str = "hms-host";

/// Serves `config.components` on `listener` until `shutdown` resolves, then
/// drains requests in flight and makes every audit event durable.
///
/// Once everything that can refuse to start has been checked (the data
/// directory, the cluster database and this host's id), prints
/// `hms-host listening on http://ADDR` as the first line of standard output:
/// scripts and tests read the bound address from it.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    let addr = listener.local_addr()?;
    let (core, auth_sync) = open_core(&config, addr).await?;
    let (audit, cluster) = (core.audit.clone(), core.cluster.clone());
    // Absolute paths: they are the services' sources, matched by the watcher.
    let files: Vec<PathBuf> = config
        .components
        .iter()
        .map(std::path::absolute)
        .collect::<Result<_, _>>()?;
    let mut dirs: Vec<PathBuf> = config
        .components_dirs
        .iter()
        .map(std::path::absolute)
        .collect::<Result<_, _>>()?;
    dirs.sort();
    let mut to_deploy = files.clone();
    for dir in &dirs {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading components directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm") && !files.contains(p))
            .collect();
        found.sort();
        to_deploy.extend(found);
    }
    let reset = match config.keep_resident {
        Some(keep_resident) => MemoryReset {
            keep_resident,
            scan: true,
        },
        None => MemoryReset::for_components(largest_initial_memory(&to_deploy)),
    };
    tracing::info!(
        "freed instance memory: {} KiB kept resident, reset {}",
        reset.keep_resident >> 10,
        if reset.scan {
            "where written (scan)"
        } else {
            "whole"
        }
    );
    let engine = WasmEngine::new(
        config.max_instances,
        config.sandbox.max_memory(),
        reset,
        &config
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache")),
    )
    .context("starting wasmtime")?;
    let mut record = Deployments::open(data_dir).context("opening the deployment record")?;
    let before = record.snapshot();
    if let Some(cluster) = &cluster {
        // Versions and the active one are the cluster's.
        record = record.with_cluster(ClusterRecord::new(cluster.pool(), cluster.host_id()));
    }
    let runtime = Runtime::new(engine, core, config.sandbox.clone(), record)?;
    runtime.spawn_warm_sweep();
    let app = App::new(runtime.clone());
    {
        let runtime = Arc::downgrade(&runtime);
        app.runtime.core().metrics.set_live(move || {
            runtime
                .upgrade()
                .map(|r| r.live_metrics())
                .unwrap_or_default()
        });
    }
    // Every file that cannot run is refused before the listening line.
    for path in &to_deploy {
        runtime.check_file(path)?;
    }
    let metrics_listener = match config.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("--metrics-listen {at}: cannot listen there"))?,
        ),
        None => None,
    };
    // The first line of output is the bound address: scripts and tests read it.
    println!("hms-host listening on http://{addr}");
    std::io::Write::flush(&mut std::io::stdout())?;
    let heartbeat = cluster.as_ref().map(|c| {
        let runtime = Arc::downgrade(&runtime);
        c.spawn_heartbeat(Arc::new(move |view| {
            runtime
                .upgrade()
                .map(|r| r.apply_cluster_view(view))
                .unwrap_or_default()
        }))
    });

    // Serve at once (health answers "loading") while components compile.
    let server = server::serve(
        listener,
        server::router(app.clone()),
        config.header_timeout,
        shutdown,
    );
    let server = tokio::spawn(server);
    let metrics_server = metrics_listener.map(|listener| {
        if let Ok(at) = listener.local_addr() {
            tracing::info!("metrics for scrapers at http://{at}/metrics");
        }
        tokio::spawn(server::serve(
            listener,
            server::metrics_router(app.clone()),
            config.header_timeout,
            std::future::pending(),
        ))
    });
    for path in &to_deploy {
        if let Err(e) = runtime.deploy_file(path).await {
            server.abort();
            return Err(e.into());
        }
    }
    // In a cluster, serve what the cluster names (publishing the files that
    // are new to it) and keep following it; standalone, serve again what was
    // active when this host stopped.
    let follower = match runtime.join_cluster(&before).await? {
        Some(follower) => Some(follower.spawn()),
        None => {
            runtime.restore(&before).await?;
            None
        }
    };
    for (service, file) in &config.imports {
        let lines =
            std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
        let db = runtime.core().stores.of(service)?;
        let n = db
            .import(&lines)
            .await
            .with_context(|| format!("importing {} into {service}", file.display()))?;
        runtime.core().log_host(format!(
            "imported {n} records from {} into the store of {service}",
            file.display()
        ));
    }
    let _watcher = if config.watch {
        Some(
            watch::spawn(runtime.clone(), watch::WatchSet { files, dirs })
                .context("watching component files")?,
        )
    } else {
        None
    };
    app.set_ready();
    tracing::info!("serving {}", runtime.service_names().join(", "));
    server.await?;
    for task in [auth_sync, follower, metrics_server].into_iter().flatten() {
        task.abort();
    }
    if let (Some(cluster), Some(heartbeat)) = (&cluster, heartbeat) {
        heartbeat.abort();
        cluster.leave().await;
    }
    runtime.core().telemetry.shutdown().await;
    audit.flush().await.context("flushing the audit log")?;
    // Whatever came since the last checkpoint is covered before stopping.
    audit
        .checkpoint()
        .await
        .context("signing the last audit checkpoint")?;
    Ok(())
}

/// The largest initial linear memory of the component files (unreadable
/// or invalid ones count as nothing here; they are refused later).
fn largest_initial_memory(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .filter_map(|bytes| crate::runtime::component::inspect(&bytes, "").ok())
        .map(|shape| shape.min_memory)
        .max()
        .unwrap_or(0)
}

/// Opens Core for this run: the data directory, this host's identity, the
/// cluster (when configured: joined before anything serves), auth, the
/// audit log, the registry and the stores. With a cluster, the task that
/// keeps the shared auth state current comes back too.
async fn open_core(
    config: &Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(Core, Option<tokio::task::JoinHandle<()>>)> {
    let data_dir = &config.data_dir;
    let auth_config = AuthConfig {
        token_ttl: config.token_ttl,
        issuer: ISSUER.to_string(),
    };
    crate::base::files::create_private_dir(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let host_id = cluster::host_id(
        data_dir,
        config.cluster.as_ref().and_then(|c| c.host_id.as_deref()),
    )?;
    let host = HostIdentity {
        url: config
            .cluster
            .as_ref()
            .and_then(|c| c.advertise_url.clone())
            .unwrap_or_else(|| format!("http://{addr}")),
        id: host_id,
    };
    let cluster = match &config.cluster {
        Some(c) => Some(Arc::new(
            Cluster::join(c, host.id.clone(), host.url.clone()).await?,
        )),
        None => None,
    };
    // In a cluster, API keys, revocations, the pepper and the admin
    // credential are the cluster's; this host's signing key stays local.
    let auth = match &cluster {
        Some(cluster) => Auth::open_cluster(data_dir, auth_config, cluster).await?,
        None => Auth::open(data_dir, auth_config)
            .with_context(|| format!("opening Core auth in {}", data_dir.display()))?,
    };
    let auth = Arc::new(auth);
    // In a cluster, this host's chain of the cluster's audit log.
    let audit = match &cluster {
        Some(cluster) => AuditLog::open_cluster(cluster.pool(), &host.id).await,
        None => AuditLog::open_with(
            &data_dir.join("audit.db"),
            &host.id,
            config.audit_durability,
        ),
    }
    .context("opening the audit log")?;
    audit.sign_checkpoints(auth.checkpoint_signer(), config.checkpoint_every);
    let metrics = Arc::new(crate::core::metrics::Metrics::new());
    let telemetry = Arc::new(match &config.otlp_endpoint {
        Some(url) => crate::core::telemetry::Telemetry::otlp(url, &host.id)?,
        None => crate::core::telemetry::Telemetry::disabled(),
    });
    audit.record_metrics(metrics.audit());
    let auth_sync = cluster.as_ref().map(|_| auth.spawn_sync());
    let registry = Registry::new(addr);
    let core = Core {
        auth: auth.clone(),
        audit: audit.clone(),
        registry: Arc::new(registry),
        stores: Arc::new({
            let sandbox = config.sandbox.clone();
            let quota_of = Box::new(move |service: &str| sandbox.store_quota(service));
            match &cluster {
                // Every service's data is shared by the hosts of the cluster.
                Some(cluster) => Stores::postgres(cluster.pool(), quota_of),
                None => Stores::new(&data_dir.join("stores"), quota_of),
            }
        }),
        host: Arc::new(host),
        cluster,
        metrics: metrics.clone(),
        telemetry,
    };
    Ok((core, auth_sync))
}
