//! The runtime: deployed services and the execution of one request in one
//! fresh, sandboxed component instance.
//!
//! The table of deployed services is an immutable snapshot behind `ArcSwap`:
//! a request loads it without locking and keeps the `Arc<Service>` it routed
//! to for its whole life, so a later deploy never disturbs requests in flight.

pub mod bindings;
pub mod component;
pub mod deployments;
pub mod engine;
pub mod outbound;
pub mod router;
pub mod sandbox;
pub mod state;
pub mod watch;
pub mod wit_host;

use crate::api::error::ApiError;
use crate::api::types::{ServiceStats, VersionInfo};
use crate::base::sync::lock;
use crate::config::{Limits, Sandbox};
use crate::core::audit::Level;
use crate::core::trace::Trace;
use crate::core::{Core, HOST_SERVICE};
use crate::runtime::component::{LoadError, Service};
use crate::runtime::deployments::{Deployments, State, VersionRecord};
use crate::runtime::engine::WasmEngine;
use crate::runtime::outbound::{BoxFuture, Dispatch};
use crate::runtime::router::{RouteError, RouteTable};
use crate::runtime::sandbox::{Counter, GuardedBody, ServiceGuard, Violation, content_length};
use crate::runtime::state::Caller;
use crate::runtime::state::RequestState;
use arc_swap::ArcSwap;
use http_body_util::BodyExt;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wasmtime::component::Linker;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Lines of captured stdout/stderr logged per request, so a chatty guest
/// cannot flood the audit log.
const MAX_OUTPUT_LINES: usize = 64;

/// How long a guest may run past its request's deadline before its task is
/// stopped: the response guard fails a stream still running at the deadline
/// first, so a response cut short never looks complete to the client.
const STOP_GRACE: Duration = Duration::from_millis(100);

/// Epoch ticks (10 ms each) an instance may compute before it needs the
/// heavy lane; ordinary requests finish long before.
const FREE_TICKS: u32 = 2;

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
    /// Limits and grants by service name, from configuration.
    sandbox: Sandbox,
    /// Each service's sandbox, created at its first deploy and kept across
    /// versions (its slots and counters belong to the name).
    guards: Mutex<HashMap<String, Arc<ServiceGuard>>>,
    deployed: ArcSwap<Deployment>,
    /// The heavy lane: permits to keep computing past `FREE_TICKS`, half the
    /// CPUs (at least one).
    heavy: Arc<Semaphore>,
    /// Serialises deploys (never requests).
    deploying: Mutex<()>,
    /// The durable record of versions, for listing, rollback and restarts.
    record: Deployments,
    /// The runtime itself, as the dispatcher handed to every store.
    this: Weak<Runtime>,
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
        sandbox: Sandbox,
        record: Deployments,
    ) -> anyhow::Result<Arc<Runtime>> {
        let mut linker = Linker::new(engine.engine());
        // All of WASI is linked so any std-using guest instantiates, but the
        // context grants nothing: no env, args, preopens or sockets.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::runtime::wit_host::add_to_linker(&mut linker)?;
        Ok(Arc::new_cyclic(|this| Runtime {
            engine,
            linker,
            core,
            sandbox,
            guards: Mutex::new(HashMap::new()),
            heavy: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            )),
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
        component::load_bytes(
            &self.engine,
            &self.linker,
            bytes,
            label,
            stem,
            |n| self.probe_store(n),
            |n| self.guard(n),
        )
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
        self.core.log_host(msg);
        true
    }

    /// A store for trying a component at load time, with the limits of the
    /// service its file name suggests (its own counters stay untouched).
    fn probe_store(&self, name: &str) -> Store<RequestState> {
        let caller = Caller {
            service: name.into(),
            trace: Trace::from_traceparent(None),
            depth: 0,
            loading: true,
        };
        let guard = Arc::new(ServiceGuard::new(self.sandbox.grants(name)));
        self.new_store(caller, guard)
    }

    /// The sandbox of service `name`, created on first use.
    fn guard(&self, name: &str) -> Arc<ServiceGuard> {
        lock(&self.guards)
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(ServiceGuard::new(self.sandbox.grants(name))))
            .clone()
    }

    /// Limits, grants and counters of a deployed service.
    pub fn stats(&self, name: &str) -> Option<ServiceStats> {
        let service = self.deployed.load().services.get(name).cloned()?;
        let guard = &service.guard;
        Some(ServiceStats {
            allow_outbound: guard
                .grants
                .allow_outbound
                .iter()
                .map(|d| format!("{}:{}", d.host, d.port))
                .collect(),
            callers: service.callers.clone(),
            counters: guard.counters(),
            in_flight: guard.in_flight(),
            limits: guard.grants.limits.clone(),
            name: name.to_string(),
            version: service.version.clone(),
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
            deployed_at: crate::base::clock::unix_secs(),
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
        self.core.log_host(msg);
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

    fn new_store(&self, caller: Caller, guard: Arc<ServiceGuard>) -> Store<RequestState> {
        let dispatch: Arc<dyn Dispatch> =
            self.this.upgrade().expect("runtime is alive while serving");
        let stop_at = std::time::Instant::now() + guard.grants.limits.request_timeout + STOP_GRACE;
        let state = RequestState::new(self.core.clone(), caller, dispatch, guard);
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Guest code that runs for a whole epoch tick yields its worker
        // thread, so a busy guest shares the CPU instead of holding a worker
        // until its deadline; at the deadline it is interrupted (a trap the
        // invocation reports as a timeout). Past FREE_TICKS of computing, an
        // instance runs each further tick only holding a permit of the heavy
        // lane, which admits few at once: however many guests spin, most of
        // the CPU stays with ordinary requests, which never get that far.
        let heavy = self.heavy.clone();
        let held: Arc<Mutex<Option<OwnedSemaphorePermit>>> = Arc::default();
        let mut ticks = 0u32;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if std::time::Instant::now() >= stop_at {
                return Ok(UpdateDeadline::Interrupt);
            }
            ticks += 1;
            if ticks <= FREE_TICKS {
                return Ok(UpdateDeadline::Yield(1));
            }
            lock(&held).take(); // the next turn is queued for like everyone else
            let (heavy, held) = (heavy.clone(), held.clone());
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move {
                    let permit = heavy.acquire_owned().await.ok();
                    *lock(&held) = permit;
                }),
            ))
        });
        store
    }

    /// Runs `req` in a fresh instance of `service` as `caller` and returns its
    /// response. The service's limits apply: a free instance slot (else 503),
    /// header and body sizes (431, 413), memory, and the deadline (504, or a
    /// response stream cut off). Failures become JSON error responses, and
    /// are logged and counted for the service.
    pub async fn invoke(
        &self,
        service: Arc<Service>,
        req: http::Request<WasiBody>,
        caller: Caller,
    ) -> http::Response<WasiBody> {
        let guard = service.guard.clone();
        let limits = guard.grants.limits.clone();
        guard.count(Counter::Requests);
        let Some(permit) = guard.try_enter() else {
            guard.count(Counter::Busy);
            return ApiError::Busy(format!(
                "{} is already serving its limit of {} requests",
                service.name, limits.max_concurrency
            ))
            .into_wasi_response();
        };
        if let Err(why) = guard.check_headers(req.headers()) {
            guard.count(Counter::HeadersTooLarge);
            return ApiError::HeadersTooLarge(format!("{}: {why}", service.name))
                .into_wasi_response();
        }
        if let Some(n) = content_length(req.headers()).filter(|n| *n > limits.max_request_body) {
            guard.count(Counter::BodyTooLarge);
            return ApiError::PayloadTooLarge(format!(
                "{}: a request body of {n} bytes; at most {} are accepted",
                service.name, limits.max_request_body
            ))
            .into_wasi_response();
        }
        let report = Report {
            core: self.core.clone(),
            caller: caller.clone(),
            guard: guard.clone(),
            timeout_reported: Arc::new(AtomicBool::new(false)),
        };
        let body_too_large = Arc::new(AtomicBool::new(false));
        let req = {
            let (flag, report) = (body_too_large.clone(), report.clone());
            let limit = limits.max_request_body;
            req.map(|body| {
                GuardedBody::request(
                    body,
                    limit,
                    Box::new(move |_| {
                        flag.store(true, Ordering::Relaxed);
                        report.limit_hit(
                            Counter::BodyTooLarge,
                            format!("request body over its limit of {limit} bytes"),
                        );
                    }),
                )
                .boxed_unsync()
            })
        };
        let deadline = Instant::now() + limits.request_timeout;
        let mut store = self.new_store(caller, guard.clone());
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
        let task_service = service.clone();
        let task_report = report.clone();
        let task_limits = limits.clone();
        // The guest runs in its own task: it may keep streaming the body after
        // the response head has been handed back. The task holds the
        // instance slot, and stops the guest shortly after the deadline even
        // if it is waiting in a host call, where epochs cannot interrupt it.
        let task = tokio::spawn(async move {
            let _slot = permit;
            let run = async {
                let proxy = task_service.pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let outcome = match tokio::time::timeout_at(deadline + STOP_GRACE, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Failure::of(&e, store.data())),
                Err(_) => Err(Failure::Timeout),
            };
            let (stdout, stderr) = store.data().captured_output();
            log_output(&task_report, &stdout, Level::Info);
            log_output(&task_report, &stderr, Level::Warn);
            if let Err(failure) = &outcome {
                task_report.failure(failure, &task_limits);
            }
            outcome
        });
        let response = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(code))) => {
                let msg = format!("{} answered with error {code:?}", service.name);
                return ApiError::ComponentFailed(msg).into_wasi_response();
            }
            // The guest dropped the response outparam: see how its task ended.
            Ok(Err(_)) => {
                let error = match task.await {
                    Ok(Ok(())) => ApiError::ComponentFailed(format!(
                        "{} returned without setting a response",
                        service.name
                    )),
                    Ok(Err(failure)) => failure.into_api_error(&service.name, &limits),
                    Err(join) => {
                        ApiError::ComponentFailed(format!("{} panicked: {join}", service.name))
                    }
                };
                return if body_too_large.load(Ordering::Relaxed) {
                    body_limit_error(&service.name, &limits)
                } else {
                    error.into_wasi_response()
                };
            }
            Err(_) => {
                report.timeout(&Failure::Timeout.describe(&limits));
                return Failure::Timeout
                    .into_api_error(&service.name, &limits)
                    .into_wasi_response();
            }
        };
        if body_too_large.load(Ordering::Relaxed) {
            // The component read past the limit and answered regardless.
            return body_limit_error(&service.name, &limits);
        }
        if let Some(n) =
            content_length(response.headers()).filter(|n| *n > limits.max_response_body)
        {
            report.limit_hit(
                Counter::ResponseTooLarge,
                format!(
                    "response of {n} bytes refused; the limit is {} bytes",
                    limits.max_response_body
                ),
            );
            return ApiError::ResponseTooLarge(format!(
                "{} answered with {n} bytes; at most {} are allowed",
                service.name, limits.max_response_body
            ))
            .into_wasi_response();
        }
        let limit = limits.max_response_body;
        response.map(|body| {
            GuardedBody::response(
                body,
                limit,
                deadline,
                Box::new(move |violation| match violation {
                    Violation::TooLarge(n) => report.limit_hit(
                        Counter::ResponseTooLarge,
                        format!("response body cut off at its limit of {n} bytes"),
                    ),
                    Violation::Deadline => {
                        report.timeout("response still streaming at its time limit; cut off")
                    }
                }),
            )
            .boxed_unsync()
        })
    }
}

impl ApiError {
    /// The error as a response in wasi:http's body type, for paths that
    /// answer on a component's behalf (unknown route, trap, timeout).
    pub fn into_wasi_response(self) -> http::Response<WasiBody> {
        self.to_response(|bytes| {
            http_body_util::Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync()
        })
    }
}

fn body_limit_error(service: &str, limits: &Limits) -> http::Response<WasiBody> {
    ApiError::PayloadTooLarge(format!(
        "{service}: request body over {} bytes",
        limits.max_request_body
    ))
    .into_wasi_response()
}

/// How a component's request ended badly.
#[derive(Debug)]
enum Failure {
    Timeout,
    MemoryLimit,
    /// Tried to hold more than [`crate::runtime::state::MAX_RESOURCES`] host resources.
    ResourceLimit,
    Trap(String),
    /// Every pooled instance slot of the host is taken.
    HostBusy,
    Other(String),
}

impl Failure {
    fn of(error: &wasmtime::Error, state: &RequestState) -> Failure {
        if state.memory_limit_hit() {
            return Failure::MemoryLimit;
        }
        if error.is::<wasmtime::PoolConcurrencyLimitError>() {
            return Failure::HostBusy;
        }
        if error
            .chain()
            .any(|e| e.is::<wasmtime::component::ResourceTableError>())
        {
            return Failure::ResourceLimit;
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => Failure::Timeout,
            Some(trap) => Failure::Trap(trap.to_string()),
            None => Failure::Other(format!("{:#}", error)),
        }
    }

    fn describe(&self, limits: &Limits) -> String {
        match self {
            Failure::Timeout => format!("exceeded its time limit of {:?}", limits.request_timeout),
            Failure::MemoryLimit => {
                format!("exceeded its memory limit of {} MiB", limits.memory >> 20)
            }
            Failure::ResourceLimit => format!(
                "exceeded its limit of {} host resources",
                crate::runtime::state::MAX_RESOURCES
            ),
            Failure::Trap(trap) => format!("trapped: {trap}"),
            Failure::HostBusy => {
                "could not start: every instance slot of the host is in use".into()
            }
            Failure::Other(e) => format!("failed: {e}"),
        }
    }

    fn counter(&self) -> Option<Counter> {
        match self {
            Failure::Timeout => Some(Counter::Timeout),
            Failure::MemoryLimit | Failure::ResourceLimit => Some(Counter::MemoryLimit),
            Failure::Trap(_) => Some(Counter::Trap),
            Failure::HostBusy => Some(Counter::Busy),
            Failure::Other(_) => None,
        }
    }

    fn into_api_error(self, service: &str, limits: &Limits) -> ApiError {
        let msg = format!("{service} {}", self.describe(limits));
        match self {
            Failure::Timeout => ApiError::Timeout(msg),
            Failure::HostBusy => ApiError::Busy(msg),
            _ => ApiError::ComponentFailed(msg),
        }
    }
}

/// Logs and counts what happens to one request, for its service.
#[derive(Clone)]
struct Report {
    core: Core,
    caller: Caller,
    guard: Arc<ServiceGuard>,
    /// A timeout is seen by both the response wait and the guest's task;
    /// whichever sees it first reports it.
    timeout_reported: Arc<AtomicBool>,
}

impl Report {
    fn log(&self, level: Level, message: String) {
        self.core
            .log(&self.caller.service, &self.caller.trace, level, message);
    }

    fn limit_hit(&self, counter: Counter, message: String) {
        self.guard.count(counter);
        self.log(Level::Warn, message);
    }

    fn timeout(&self, what: &str) {
        if !self.timeout_reported.swap(true, Ordering::Relaxed) {
            self.guard.count(Counter::Timeout);
            self.log(Level::Error, format!("request {what}"));
        }
    }

    fn failure(&self, failure: &Failure, limits: &Limits) {
        if let Failure::Timeout = failure {
            return self.timeout(&failure.describe(limits));
        }
        if let Some(counter) = failure.counter() {
            self.guard.count(counter);
        }
        self.log(
            Level::Error,
            format!("request {}", failure.describe(limits)),
        );
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
            // The caller policy the service declared, against the identity
            // the host stamped on the calling instance.
            if let Some(allowed) = &service.callers
                && !allowed.iter().any(|a| **a == *caller.service)
            {
                service.guard.count(Counter::ForbiddenCaller);
                let msg = format!(
                    "refused a call from {}: only {} may call {}",
                    caller.service,
                    allowed.join(", "),
                    service.name
                );
                runtime
                    .core
                    .log(&service.name, &caller.trace, Level::Warn, msg);
                return ApiError::Forbidden(format!(
                    "{} may not call {}",
                    caller.service, service.name
                ))
                .into_wasi_response();
            }
            let callee = Caller {
                service: service.name.as_str().into(),
                trace: caller.trace.clone(),
                depth: caller.depth + 1,
                loading: false,
            };
            runtime.invoke(service, req, callee).await
        })
    }
}

fn log_output(report: &Report, output: &[u8], level: Level) {
    if output.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(output);
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(MAX_OUTPUT_LINES)
    {
        report.log(level, line.to_string());
    }
}

/// The file name without extension: the service name of a plain component.
fn file_stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}
