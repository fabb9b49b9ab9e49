//! The runtime: the engine, the deployed services, and the execution of one
//! request in one fresh, sandboxed component instance. Deploying is in
//! `deploy.rs` (the control plane), invoking in `invoke.rs` (the data
//! plane); both are methods of [`Runtime`].
//!
//! The table of deployed services is an immutable snapshot behind `ArcSwap`:
//! a request loads it without locking and keeps the `Arc<Service>` it routed
//! to for its whole life, so a later deploy never disturbs requests in flight.

pub mod bindings;
pub mod component;
mod deploy;
pub mod deployments;
pub mod engine;
pub mod follow;
pub mod forward;
mod invoke;
pub mod outbound;
pub mod router;
pub mod sandbox;
pub mod state;
pub mod warm;
pub mod watch;
pub mod wit_host;

pub use deploy::DeployError;

use crate::api::types::ServiceStats;
use crate::base::sync::lock;
use crate::config::Sandbox;
use crate::core::Core;
use crate::core::trace::Trace;
use crate::runtime::component::Service;
use crate::runtime::deployments::Deployments;
use crate::runtime::engine::WasmEngine;
use crate::runtime::outbound::Dispatch;
use crate::runtime::router::RouteTable;
use crate::runtime::sandbox::ServiceGuard;
use crate::runtime::state::Caller;
use crate::runtime::state::RequestState;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Store, UpdateDeadline};

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
    /// Deployed services the cluster's placement puts on other hosts: not
    /// routed here, not advertised (their calls are forwarded).
    withheld: BTreeSet<String>,
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
    /// In a cluster: the routes the other live hosts serve, to the service
    /// name, from the latest view (see [`Runtime::apply_cluster_view`]).
    cluster_routes: ArcSwap<RouteTable<Arc<str>>>,
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
            cluster_routes: ArcSwap::from_pointee(RouteTable::default()),
        }))
    }

    /// Core services.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// A store for trying a component at load time, with the limits of the
    /// service its file name suggests (its own counters stay untouched).
    fn probe_store(&self, name: &str) -> Store<RequestState> {
        let caller = Caller {
            loading: true,
            ..Caller::new(name.into(), Trace::from_traceparent(None), 0)
        };
        let guard = Arc::new(ServiceGuard::new(
            self.sandbox.grants(name),
            crate::core::metrics::ServiceMetrics::detached(),
        ));
        self.new_store(caller, guard)
    }

    /// The sandbox of service `name`, created on first use.
    fn guard(&self, name: &str) -> Arc<ServiceGuard> {
        lock(&self.guards)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(ServiceGuard::new(
                    self.sandbox.grants(name),
                    self.core.metrics.service(name),
                ))
            })
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
            kept_instances: service.warm.kept() as u32,
            limits: guard.grants.limits.clone(),
            name: name.to_string(),
            version: service.version.clone(),
        })
    }

    /// What a metrics scrape reads of this host now: every deployed
    /// service's requests in flight and limit counters, and in a cluster
    /// the heartbeat's age and the database pool.
    pub fn live_metrics(&self) -> crate::core::metrics::Live {
        use crate::core::metrics::{Live, LiveService, PoolState};
        let services = self
            .deployed
            .load()
            .services
            .values()
            .map(|s| LiveService {
                name: s.name.clone(),
                in_flight: s.guard.in_flight(),
                kept: s.warm.kept() as u32,
                limits: s.guard.limit_hits(),
            })
            .collect();
        let cluster = self.core.cluster.as_ref();
        Live {
            services,
            heartbeat_age: cluster.and_then(|c| c.heartbeat_age()),
            pool: cluster.map(|c| {
                let s = c.pool().status();
                PoolState {
                    max_size: s.max_size,
                    size: s.size,
                    available: s.available,
                    waiting: s.waiting,
                }
            }),
        }
    }

    /// The service serving `path` on this host, if any.
    pub fn route(&self, path: &str) -> Option<Arc<Service>> {
        let deployed = self.deployed.load();
        deployed
            .routes
            .lookup(path)
            .filter(|s| !deployed.withheld.contains(&s.name))
            .cloned()
    }

    /// Service name → active version, of every service this host serves.
    pub fn service_versions(&self) -> std::collections::BTreeMap<String, String> {
        self.served().versions
    }

    /// What this host serves (placement applied): versions and routes.
    pub fn served(&self) -> crate::core::cluster::Served {
        let deployed = self.deployed.load();
        let serving = || {
            deployed
                .services
                .iter()
                .filter(|(name, _)| !deployed.withheld.contains(*name))
        };
        crate::core::cluster::Served {
            versions: serving()
                .map(|(name, s)| (name.clone(), s.version.clone()))
                .collect(),
            routes: serving()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        s.routes.iter().map(|r| r.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Whether the cluster's placement (as last read) lets service `name`
    /// run on this host; always, standalone.
    fn placed_here(&self, name: &str) -> bool {
        self.core
            .cluster
            .as_ref()
            .is_none_or(|c| c.view().placed_on(name, c.host_id()))
    }

    /// Applies a fresh view of the cluster (every heartbeat): services the
    /// placement puts elsewhere stop being served here (unrouted, withheld
    /// from the registry), services placed here again are served again, and
    /// the routes the other live hosts serve are what calls not served here
    /// are forwarded by. Returns what this host serves now, to advertise.
    pub fn apply_cluster_view(
        &self,
        view: &crate::core::cluster::View,
    ) -> crate::core::cluster::Served {
        if let Some(cluster) = &self.core.cluster {
            self.core
                .registry
                .set_shared(view.externals.iter().cloned());
            let me = cluster.host_id();
            let _guard = lock(&self.deploying);
            let current = self.deployed.load();
            let withheld: BTreeSet<String> = current
                .services
                .keys()
                .filter(|name| !view.placed_on(name, me))
                .cloned()
                .collect();
            if withheld != current.withheld {
                for name in withheld.difference(&current.withheld) {
                    let hosts = view
                        .placement
                        .get(name)
                        .map(|h| h.join(", "))
                        .unwrap_or_default();
                    self.core.log_host(format!(
                        "placement: {name} runs on {hosts}; this host ({me}) no longer serves it"
                    ));
                }
                for name in current.withheld.difference(&withheld) {
                    self.core
                        .log_host(format!("placement: this host ({me}) serves {name} again"));
                }
                self.core.registry.set_withheld(withheld.clone());
                self.deployed.store(Arc::new(Deployment {
                    services: current.services.clone(),
                    routes: current.routes.clone(),
                    withheld,
                }));
            }
        }
        let mut wanted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for peer in view.peers.iter().filter(|p| p.alive) {
            for (service, routes) in &peer.routes {
                if peer.services.contains_key(service) {
                    wanted
                        .entry(service)
                        .or_default()
                        .extend(routes.iter().map(String::as_str));
                }
            }
        }
        let mut table = RouteTable::default();
        for (service, patterns) in wanted {
            let name: Arc<str> = service.into();
            for pattern in patterns {
                // Two services claiming one route on different hosts: the
                // first keeps it.
                if let Ok(p) = crate::runtime::router::Pattern::parse(pattern) {
                    let _ = table.add(p, service, name.clone());
                }
            }
        }
        self.cluster_routes.store(Arc::new(table));
        self.served()
    }

    /// Names of deployed services.
    pub fn service_names(&self) -> Vec<String> {
        self.deployed.load().services.keys().cloned().collect()
    }

    fn new_store(&self, caller: Caller, guard: Arc<ServiceGuard>) -> Store<RequestState> {
        let dispatch: Arc<dyn Dispatch> =
            self.this.upgrade().expect("runtime is alive while serving");
        let stop_at = stop_at(&guard);
        let state = RequestState::new(self.core.clone(), caller, dispatch, guard, stop_at);
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Guest code that runs for a whole epoch tick yields its worker
        // thread, so a busy guest shares the CPU instead of holding a worker
        // until its deadline; at the deadline it is interrupted (a trap the
        // invocation reports as a timeout). Past FREE_TICKS of computing, an
        // instance runs each further tick only holding its request's turn
        // (state::Turn, one per call tree) in the heavy lane, which admits
        // few at once: however many guests spin, most of the CPU stays with
        // ordinary requests, which never get that far.
        // The budget is the current request's (state::Budget), so a kept
        // instance's next request starts with a budget of its own.
        let heavy = self.heavy.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut cx| {
            let budget = &mut cx.data_mut().budget;
            if std::time::Instant::now() >= budget.stop_at {
                return Ok(UpdateDeadline::Interrupt);
            }
            budget.ticks += 1;
            if budget.ticks <= FREE_TICKS {
                return Ok(UpdateDeadline::Yield(1));
            }
            let held = budget.turn.clone();
            held.give_up(); // the next turn is queued for like everyone else
            let heavy = heavy.clone();
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move { held.wait(&heavy).await }),
            ))
        });
        store
    }

    /// Drops kept instances unused for `ttl`, of every deployed service.
    pub fn sweep_warm(&self, ttl: Duration) {
        for service in self.deployed.load().services.values() {
            service.warm.sweep(ttl);
        }
    }

    /// Sweeps kept instances every few seconds while the runtime lives.
    pub fn spawn_warm_sweep(self: &Arc<Runtime>) {
        let runtime = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(warm::IDLE_TTL / 6);
            loop {
                every.tick().await;
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                runtime.sweep_warm(warm::IDLE_TTL);
            }
        });
    }
}

/// When a request starting now must have stopped computing: its deadline
/// and the grace its task gets past it.
fn stop_at(guard: &ServiceGuard) -> std::time::Instant {
    std::time::Instant::now() + guard.grants.limits.request_timeout + STOP_GRACE
}

/// The service name of a plain component at `path`: its file stem, made a
/// valid name ([`crate::core::names::name_from_file_stem`]).
fn plain_name(path: &Path) -> String {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    crate::core::names::name_from_file_stem(&stem)
}
