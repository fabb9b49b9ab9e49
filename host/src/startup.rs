//! Start-up: opens Core in the data directory, starts the engine and the
//! HTTP front, deploys the given components, restores what was active when
//! the host last stopped, and serves until shutdown.

use crate::config::Config;
use crate::core::Core;
use crate::core::audit::AuditLog;
use crate::core::auth::{Auth, AuthConfig};
use crate::core::registry::Registry;
use crate::core::store::Stores;
use crate::http::app::App;
use crate::http::server;
use crate::runtime::Runtime;
use crate::runtime::deployments::Deployments;
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
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    let auth_config = AuthConfig {
        token_ttl: config.token_ttl,
        issuer: ISSUER.to_string(),
    };
    // Auth creates the data directory (owner-only) when it is missing.
    let auth = Auth::open(data_dir, auth_config)
        .with_context(|| format!("opening Core auth in {}", data_dir.display()))?;
    let audit = AuditLog::open_with(&data_dir.join("audit.db"), config.audit_durability)
        .context("opening the audit log")?;
    let registry = Registry::new(listener.local_addr()?);
    let engine = WasmEngine::new(
        config.max_instances,
        config.sandbox.max_memory(),
        config.keep_resident,
        &data_dir.join("cache"),
    )
    .context("starting wasmtime")?;
    let core = Core {
        auth: Arc::new(auth),
        audit: audit.clone(),
        registry: Arc::new(registry),
        stores: Arc::new(Stores::new(&data_dir.join("stores"), {
            let sandbox = config.sandbox.clone();
            Box::new(move |service| sandbox.store_quota(service))
        })),
    };
    let record = Deployments::open(data_dir).context("opening the deployment record")?;
    let before = record.snapshot();
    let runtime = Runtime::new(engine, core, config.sandbox.clone(), record)?;
    let app = App::new(runtime.clone());

    // Serve at once (health answers "loading") while components compile.
    let server = server::serve(
        listener,
        server::router(app.clone()),
        config.header_timeout,
        shutdown,
    );
    let server = tokio::spawn(server);
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
    for path in &to_deploy {
        if let Err(e) = runtime.deploy_file(path).await {
            server.abort();
            return Err(e.into());
        }
    }
    runtime.restore(&before).await?;
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
    audit.flush().await.context("flushing the audit log")?;
    Ok(())
}
