//! The runtime: deployed services and the execution of one request in one
//! fresh, sandboxed component instance.
//!
//! The table of deployed services is an immutable snapshot behind `ArcSwap`:
//! a request loads it without locking and keeps the `Arc<Service>` it routed
//! to for its whole life, so a later deploy never disturbs requests in flight.

use crate::audit::Level;
use crate::component::{self, LoadError, Service};
use crate::config::Limits;
use crate::core::{Caller, Core, HOST_SERVICE};
use crate::deployments::{Deployments, State, VersionRecord};
use crate::dispatch::{BoxFuture, Dispatch};
use crate::engine::WasmEngine;
use crate::error::ApiError;
use crate::router::{RouteError, RouteTable};
use crate::state::RequestState;
use crate::trace::Trace;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use wasmtime::Store;
use wasmtime::component::Linker;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Lines of captured stdout/stderr logged per request, so a chatty guest
/// cannot flood the audit log.
const MAX_OUTPUT_LINES: usize = 64;

/// Deployed services and their routes: one immutable snapshot.
#[derive(Default)]
struct Deployment {
    services: BTreeMap<String, Arc<Service>>,
    routes: RouteTable<Arc<Service>>,
}

/// Engine, linker, Core and the deployed services.
pub struct Runtime {
    engine: WasmEngine,
    linker: Linker<RequestState>,
    core: Core,
    limits: Limits,
    deployed: ArcSwap<Deployment>,
    /// Serialises deploys (never requests).
    deploying: Mutex<()>,
    /// The durable record of versions, for listing, rollback and restarts.
    record: Deployments,
    /// The runtime itself, as the dispatcher handed to every store.
    this: Weak<Runtime>,
}

/// A version as listed to operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionInfo {
    pub version: String,
    /// Unix seconds of its latest deployment.
    pub deployed_at: u64,
    pub source: String,
    pub active: bool,
}

/// Why a deploy failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the component calls itself {found:?}, not {expected:?}")]
    WrongName { expected: String, found: String },
    #[error("no service named {0:?} has been deployed")]
    UnknownService(String),
    #[error("{0} has no version {1:?}")]
    UnknownVersion(String, String),
    #[error("version prefix {0:?} matches several versions")]
    AmbiguousVersion(String),
    #[error("{file}: {source}")]
    Route { file: String, source: RouteError },
    #[error("recording the deployment in the data directory failed: {0}")]
    Record(#[from] std::io::Error),
    #[error("{file}: service {name:?} is already deployed from {other}")]
    NameTaken {
        file: String,
        name: String,
        other: String,
    },
}

impl Runtime {
    /// A runtime with nothing deployed.
    pub fn new(
        engine: WasmEngine,
        core: Core,
        limits: Limits,
        record: Deployments,
    ) -> anyhow::Result<Arc<Runtime>> {
        let mut linker = Linker::new(engine.engine());
        // All of WASI is linked so any std-using guest instantiates, but the
        // context grants nothing: no env, args, preopens or sockets.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::core::add_to_linker(&mut linker)?;
        Ok(Arc::new_cyclic(|this| Runtime {
            engine,
            linker,
            core,
            limits,
            deployed: ArcSwap::from_pointee(Deployment::default()),
            deploying: Mutex::new(()),
            record,
            this: this.clone(),
        }))
    }

    /// Core services.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Loads, validates and deploys the component at `path` as a new
    /// service (start-up: a name already deployed is an error).
    pub async fn deploy_file(&self, path: &Path) -> Result<Arc<Service>, DeployError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            file: file.clone(),
            source,
        })?;
        let service = self.load(&bytes, &file, file_stem(path)).await?;
        self.install(service, &bytes, Some(&file), false, "deployed")
    }

    /// After start-up deploys: serve again what was active when the host
    /// last stopped. A service whose file is unchanged since it was last
    /// deployed from it gets back the version that was active (an upload or
    /// rollback outlives a restart); a file changed meanwhile is the newer
    /// deploy and stays. Services deployed only by upload come back too.
    pub async fn restore(&self, before: &State) -> Result<(), DeployError> {
        for (name, version) in before.active() {
            let current = self.deployed.load().services.get(name).cloned();
            if current.as_ref().is_some_and(|c| c.version == version) {
                continue;
            }
            if let Some(c) = &current
                && before.file_digest(&c.source) != Some(c.version.as_str())
            {
                continue; // the file changed while the host was stopped
            }
            let source = before
                .source_of(name, version)
                .unwrap_or("upload")
                .to_string();
            let bytes = match self.record.component(version) {
                Ok(bytes) => bytes,
                Err(e) => {
                    // Serve what the files give rather than refuse to start.
                    let e = DeployError::Record(e);
                    self.log_rejected(&format!("{name} (restoring {version})"), &e);
                    continue;
                }
            };
            let service = self.load(&bytes, &source, name).await?;
            self.install(service, &bytes, None, true, "restored")?;
        }
        Ok(())
    }

    /// Validates `bytes` as a new version of `name` and swaps it in: requests
    /// in flight finish on the version they started on, new ones get this
    /// one. Compilation happens before any lock is taken, so serving never
    /// waits for it. On any error the running version stays.
    pub async fn deploy_version(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<Service>, DeployError> {
        let service = self
            .load(bytes, &format!("upload for {name}"), name)
            .await?;
        if service.name != name {
            return Err(DeployError::WrongName {
                expected: name.to_string(),
                found: service.name.clone(),
            });
        }
        self.install(service, bytes, None, true, "deployed")
    }

    /// Switches `name` back to an earlier version: `to` (a digest, or a
    /// unique prefix of one), else the version active before the current one.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<&str>,
    ) -> Result<Arc<Service>, DeployError> {
        let (versions, active) = self
            .record
            .versions(name)
            .ok_or_else(|| DeployError::UnknownService(name.to_string()))?;
        let found: Vec<&VersionRecord> = match to {
            Some(to) => {
                let to = to.strip_prefix("sha256:").unwrap_or(to);
                versions
                    .iter()
                    .filter(|v| v.version["sha256:".len()..].starts_with(to))
                    .collect()
            }
            None => versions
                .iter()
                .rev()
                .filter(|v| Some(&v.version) != active.as_ref())
                .take(1)
                .collect(),
        };
        let target = match found.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let wanted = to.unwrap_or("previous").to_string();
                return Err(DeployError::UnknownVersion(name.to_string(), wanted));
            }
            _ => {
                return Err(DeployError::AmbiguousVersion(
                    to.unwrap_or_default().to_string(),
                ));
            }
        };
        let bytes = self.record.component(&target.version)?;
        let service = self.load(&bytes, &target.source, name).await?;
        self.install(service, &bytes, None, true, "rolled back to")
    }

    /// Every version of `name` deployed (across restarts), oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, DeployError> {
        let (versions, active) = self
            .record
            .versions(name)
            .ok_or_else(|| DeployError::UnknownService(name.to_string()))?;
        Ok(versions
            .into_iter()
            .map(|v| VersionInfo {
                active: Some(&v.version) == active.as_ref(),
                version: v.version,
                deployed_at: v.deployed_at,
                source: v.source,
            })
            .collect())
    }

    async fn load(&self, bytes: &[u8], label: &str, stem: &str) -> Result<Arc<Service>, LoadError> {
        component::load_bytes(&self.engine, &self.linker, bytes, label, stem, |n| {
            self.probe_store(n)
        })
        .await
    }

    /// Redeploys the component file at `path`, whose content is now `bytes`
    /// (file watch). If the running version already is that content, nothing
    /// happens. A file that now declares another service replaces the one it
    /// used to provide.
    pub async fn deploy_changed_file(&self, path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
        let source = path.display().to_string();
        let service = match self.load(bytes, &source, file_stem(path)).await {
            Ok(s) => s,
            Err(e) => {
                let e = DeployError::Load(e);
                self.log_rejected(&source, &e);
                return Err(e);
            }
        };
        let current = self.deployed.load();
        if current
            .services
            .get(&service.name)
            .is_some_and(|s| s.version == service.version)
        {
            return Ok(());
        }
        let previous = current
            .services
            .values()
            .find(|s| s.source == source)
            .map(|s| s.name.clone());
        if let Err(e) = self.install(service.clone(), bytes, Some(&source), true, "deployed") {
            self.log_rejected(&source, &e);
            return Err(e);
        }
        if let Some(old) = previous.filter(|old| *old != service.name) {
            self.undeploy(&old);
        }
        Ok(())
    }

    /// Undeploys the service last loaded from the file at `path`, if any.
    pub fn undeploy_file(&self, path: &Path) {
        let source = path.display().to_string();
        let name = self
            .deployed
            .load()
            .services
            .values()
            .find(|s| s.source == source)
            .map(|s| s.name.clone());
        if let Some(name) = name {
            self.undeploy(&name);
        }
    }

    /// Removes a service: its routes answer 404 and the registry forgets it.
    /// Its versions stay listed, so it can be deployed again by rollback.
    pub fn undeploy(&self, name: &str) -> bool {
        let _guard = lock(&self.deploying);
        let current = self.deployed.load();
        let Some(service) = current.services.get(name).cloned() else {
            return false;
        };
        let mut routes = current.routes.clone();
        routes.remove_owner(name);
        let mut services = current.services.clone();
        services.remove(name);
        self.deployed
            .store(Arc::new(Deployment { services, routes }));
        let _ = self.core.registry.unregister(name);
        if let Err(e) = self.record.record_undeploy(name, Some(&service.source)) {
            tracing::error!("recording the undeploy of {name}: {e}");
        }
        let msg = format!(
            "undeployed {name} {} (was from {})",
            service.version, service.source
        );
        self.core.log(
            HOST_SERVICE,
            &Trace::from_traceparent(None),
            Level::Info,
            msg,
        );
        true
    }

    /// A store for trying a component at load time.
    fn probe_store(&self, name: &str) -> Store<RequestState> {
        self.new_store(Caller {
            service: name.into(),
            trace: Trace::from_traceparent(None),
            depth: 0,
        })
    }

    /// Publishes `service` in a new routing snapshot. With `replace`, it
    /// takes the place of the deployed service of the same name; otherwise
    /// that name must be free.
    fn install(
        &self,
        service: Arc<Service>,
        bytes: &[u8],
        file: Option<&str>,
        replace: bool,
        verb: &str,
    ) -> Result<Arc<Service>, DeployError> {
        let _guard = lock(&self.deploying);
        let current = self.deployed.load();
        let previous = current.services.get(&service.name).cloned();
        if let (Some(other), false) = (&previous, replace) {
            return Err(DeployError::NameTaken {
                file: service.source.clone(),
                name: service.name.clone(),
                other: other.source.clone(),
            });
        }
        let mut routes = current.routes.clone();
        routes.remove_owner(&service.name);
        for pattern in &service.routes {
            routes
                .add(pattern.clone(), &service.name, service.clone())
                .map_err(|source| DeployError::Route {
                    file: service.source.clone(),
                    source,
                })?;
        }
        let mut services = current.services.clone();
        services.insert(service.name.clone(), service.clone());
        // Durable first: a deploy the record cannot keep does not happen.
        let record = VersionRecord {
            version: service.version.clone(),
            deployed_at: crate::clock::unix_secs(),
            source: service.source.clone(),
        };
        self.record
            .record_deploy(&service.name, record, bytes, file)?;
        self.deployed
            .store(Arc::new(Deployment { services, routes }));

        let route_list: Vec<String> = service.routes.iter().map(|r| r.to_string()).collect();
        self.core
            .registry
            .register_component(&service.name, &service.version, route_list.clone());
        let replaced = previous
            .map(|p| format!(" (was {})", p.version))
            .unwrap_or_default();
        let msg = format!(
            "{verb} {} {} from {} serving {}{replaced}",
            service.name,
            service.version,
            service.source,
            route_list.join(" ")
        );
        self.core.log(
            HOST_SERVICE,
            &Trace::from_traceparent(None),
            Level::Info,
            msg,
        );
        Ok(service)
    }

    /// Records a refused deploy in the audit log.
    pub fn log_rejected(&self, what: &str, error: &DeployError) {
        let msg = format!("rejected a new version of {what}: {error}");
        self.core.log(
            HOST_SERVICE,
            &Trace::from_traceparent(None),
            Level::Warn,
            msg,
        );
    }

    /// The service serving `path`, if any.
    pub fn route(&self, path: &str) -> Option<Arc<Service>> {
        self.deployed.load().routes.lookup(path).cloned()
    }

    /// Names of deployed services.
    pub fn service_names(&self) -> Vec<String> {
        self.deployed.load().services.keys().cloned().collect()
    }

    fn new_store(&self, caller: Caller) -> Store<RequestState> {
        let dispatch: Arc<dyn Dispatch> =
            self.this.upgrade().expect("runtime is alive while serving");
        let state = RequestState::new(self.core.clone(), caller, dispatch, self.limits.memory);
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(WasmEngine::deadline_ticks(self.limits.request_timeout));
        store
    }

    /// Runs `req` in a fresh instance of `service` as `caller` and returns its
    /// response; failures become JSON error responses and Core log events.
    pub async fn invoke(
        &self,
        service: Arc<Service>,
        req: http::Request<WasiBody>,
        caller: Caller,
    ) -> http::Response<WasiBody> {
        let mut store = self.new_store(caller.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let resources = {
            let mut http = store.data_mut().http();
            http.new_incoming_request(Scheme::Http, req)
                .and_then(|req| Ok((req, http.new_response_outparam(tx)?)))
        };
        let (req, out) = match resources {
            Ok(r) => r,
            Err(e) => return ApiError::BadRequest(format!("{e:#}")).into_wasi_response(),
        };
        let core = self.core.clone();
        let task_service = service.clone();
        // The guest runs in its own task: it may keep streaming the body after
        // the response head has been handed back.
        let task = tokio::spawn(async move {
            let result = async {
                let proxy = task_service.pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            }
            .await;
            let caller = store.data().caller().clone();
            let (stdout, stderr) = store.data().captured_output();
            log_output(&core, &caller, &stdout, Level::Info);
            log_output(&core, &caller, &stderr, Level::Warn);
            if let Err(e) = &result {
                let what = match e.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => "exceeded its time limit".to_string(),
                    Some(trap) => format!("trapped: {trap}"),
                    None => format!("failed: {e:#}"),
                };
                core.log(
                    &caller.service,
                    &caller.trace,
                    Level::Error,
                    format!("request {what}"),
                );
            }
            result
        });
        let timeout = self.limits.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(code))) => {
                let msg = format!("{} answered with error {code:?}", service.name);
                ApiError::ComponentFailed(msg).into_wasi_response()
            }
            // The guest dropped the response outparam: see how its task ended.
            Ok(Err(_)) => {
                let why = match task.await {
                    Ok(Ok(())) => "returned without setting a response".to_string(),
                    Ok(Err(e)) => match e.downcast_ref::<wasmtime::Trap>() {
                        Some(wasmtime::Trap::Interrupt) => {
                            return ApiError::Timeout(format!(
                                "{} exceeded its time limit",
                                service.name
                            ))
                            .into_wasi_response();
                        }
                        Some(trap) => format!("trapped: {trap}"),
                        None => "failed".to_string(),
                    },
                    Err(join) => format!("panicked: {join}"),
                };
                ApiError::ComponentFailed(format!("{} {why}", service.name)).into_wasi_response()
            }
            Err(_) => {
                task.abort();
                let msg = format!("{} did not answer within {timeout:?}", service.name);
                self.core
                    .log(&caller.service, &caller.trace, Level::Error, msg.clone());
                ApiError::Timeout(msg).into_wasi_response()
            }
        }
    }
}

impl Dispatch for Runtime {
    fn dispatch(
        &self,
        req: http::Request<WasiBody>,
        caller: Caller,
    ) -> BoxFuture<http::Response<WasiBody>> {
        let target = self.route(req.uri().path());
        let runtime = self.this.upgrade().expect("runtime is alive while serving");
        Box::pin(async move {
            let Some(service) = target else {
                let msg = format!("no service serves {}", req.uri().path());
                return ApiError::NotFound(msg).into_wasi_response();
            };
            let callee = Caller {
                service: service.name.as_str().into(),
                trace: caller.trace.clone(),
                depth: caller.depth + 1,
            };
            runtime.invoke(service, req, callee).await
        })
    }
}

fn log_output(core: &Core, caller: &Caller, output: &[u8], level: Level) {
    if output.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(output);
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(MAX_OUTPUT_LINES)
    {
        core.log(&caller.service, &caller.trace, level, line.to_string());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Deploy bookkeeping stays consistent across a panic elsewhere.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The file name without extension: the service name of a plain component.
fn file_stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}
