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
    /// The runtime itself, as the dispatcher handed to every store.
    this: Weak<Runtime>,
}

/// Why a deploy failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{file}: {source}")]
    Route { file: String, source: RouteError },
    #[error("{file}: service {name:?} is already deployed from {other}")]
    NameTaken {
        file: String,
        name: String,
        other: String,
    },
}

impl Runtime {
    /// A runtime with nothing deployed.
    pub fn new(engine: WasmEngine, core: Core, limits: Limits) -> anyhow::Result<Arc<Runtime>> {
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
            this: this.clone(),
        }))
    }

    /// Core services.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Loads, validates and deploys the component at `path` as a new service.
    pub async fn deploy_file(&self, path: &Path) -> Result<Arc<Service>, DeployError> {
        let file = path.display().to_string();
        let service = component::load(&self.engine, &self.linker, path, |name| {
            self.new_store(Caller {
                service: name.into(),
                trace: Trace::from_traceparent(None),
                depth: 0,
            })
        })
        .await?;
        let _guard = self.deploying.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.deployed.load();
        if let Some(other) = current.services.get(&service.name) {
            return Err(DeployError::NameTaken {
                file,
                name: service.name.clone(),
                other: other.file.display().to_string(),
            });
        }
        let mut routes = current.routes.clone();
        for pattern in &service.routes {
            routes
                .add(pattern.clone(), &service.name, service.clone())
                .map_err(|source| DeployError::Route {
                    file: file.clone(),
                    source,
                })?;
        }
        let mut services = current.services.clone();
        services.insert(service.name.clone(), service.clone());
        self.deployed
            .store(Arc::new(Deployment { services, routes }));
        let route_list: Vec<String> = service.routes.iter().map(|r| r.to_string()).collect();
        self.core
            .registry
            .register_component(&service.name, &service.version, route_list.clone());
        let trace = Trace::from_traceparent(None);
        let msg = format!(
            "deployed {} {} from {} serving {}",
            service.name,
            service.version,
            file,
            route_list.join(" ")
        );
        self.core.log(HOST_SERVICE, &trace, Level::Info, msg);
        Ok(service)
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
