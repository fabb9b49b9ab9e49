//! The store state: the `T` of `Store<T>`. One fresh instance of this per
//! request, holding the sandbox's grants (none beyond HTTP and Core), its
//! limits, and the caller identity stamped by the host. A service that
//! allows its instances several requests (`requests_per_instance`) keeps
//! its store, and [`RequestState::rebind`] gives it the next request's
//! caller and budget.

use crate::core::Core;
use crate::core::trace::Trace;
use crate::runtime::outbound::{Dispatch, Outgoing};
use crate::runtime::sandbox::{MemoryLimiter, ServiceGuard};
use crate::runtime::wit_host::{CoreCtx, HasCore};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Bytes of stdout (and of stderr) kept per instance for the audit log; more
/// fails the guest's write rather than growing without bound. An instance
/// that has written half of this is not kept for another request, so each
/// request has at least half of it.
pub const CAPTURE_LIMIT: usize = 64 * 1024;

/// Host resources (header sets, bodies, streams, pollables, ...) one instance
/// may hold at once. A request of the example services uses a few dozen;
/// the cap bounds the host memory an instance can pin (each header set holds
/// up to wasi:http's 128 KiB field limit) to the order of its own memory
/// limit.
pub const MAX_RESOURCES: usize = 1024;

/// Who a component invocation runs as: set by the host when it creates the
/// store, from the deployed service's name and the request's trace.
#[derive(Clone, Debug)]
pub struct Caller {
    pub service: Arc<str>,
    pub trace: Arc<Trace>,
    /// In-process hops from the client's request (0 for the first service).
    pub depth: u32,
    /// The service that made this call, for a call between services.
    pub from: Option<Arc<str>>,
    /// The exported span of the hop this caller makes calls from: before
    /// the hop starts, its parent's (`None` at the first hop, or when
    /// traces are not exported).
    pub span: Option<String>,
    /// The component is being tried at load time, before its name is
    /// known: nothing that acts as a service (its store, its token, outgoing
    /// HTTP) is available.
    pub loading: bool,
    /// The request's turn in the heavy lane, shared by every instance that
    /// serves it on this host (see [`Turn`]).
    pub turn: Turn,
}

/// The heavy-lane turn of one request's call tree on this host: the first
/// service and every service it calls in-process share one. An instance
/// past its free ticks gives up the tree's permit and queues for the next;
/// while it waits, a permit another instance of its tree gets is its turn
/// too. So a call tree holds at most one permit, and no instance waits for
/// a permit held by an instance of its own tree that waits for it (with
/// one permit on 2 cores, that stalled Python-to-Python calls until their
/// deadline: a caller still writing its request body queued for the permit
/// its callee held while reading that body).
pub type Turn = Arc<TreeTurn>;

/// See [`Turn`].
#[derive(Debug, Default)]
pub struct TreeTurn {
    permit: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    /// Woken when an instance of the tree gets the permit.
    given: tokio::sync::Notify,
}

impl TreeTurn {
    /// Gives up the tree's permit (whoever in the tree took it).
    pub fn give_up(&self) {
        crate::base::sync::lock(&self.permit).take();
    }

    /// Waits until the tree has a permit: one of `lane`'s, or one another
    /// instance of the tree got meanwhile.
    pub async fn wait(&self, lane: &Arc<tokio::sync::Semaphore>) {
        loop {
            let given = self.given.notified();
            if crate::base::sync::lock(&self.permit).is_some() {
                return;
            }
            tokio::select! {
                permit = lane.clone().acquire_owned() => {
                    *crate::base::sync::lock(&self.permit) = permit.ok();
                    self.given.notify_waiters();
                    return;
                }
                _ = given => {}
            }
        }
    }
}

impl Caller {
    /// The caller of a new request (a call tree of its own).
    pub fn new(service: Arc<str>, trace: Arc<Trace>, depth: u32) -> Caller {
        Caller {
            service,
            trace,
            depth,
            from: None,
            span: None,
            loading: false,
            turn: Turn::default(),
        }
    }

    /// The caller `service` of the next hop of this request, in-process.
    pub fn next_hop(&self, service: Arc<str>) -> Caller {
        Caller {
            service,
            trace: self.trace.clone(),
            depth: self.depth + 1,
            from: Some(self.service.clone()),
            span: self.span.clone(),
            loading: false,
            turn: self.turn.clone(),
        }
    }
}

/// What the current request may still compute: when it must stop, the
/// epoch ticks it has computed, and its call tree's heavy-lane turn (read
/// by the store's epoch callback).
pub struct Budget {
    pub stop_at: std::time::Instant,
    pub ticks: u32,
    pub turn: Turn,
}

impl Budget {
    /// A request's budget: nothing computed yet, its call tree's turn.
    fn new(stop_at: std::time::Instant, caller: &Caller) -> Budget {
        Budget {
            stop_at,
            ticks: 0,
            turn: caller.turn.clone(),
        }
    }
}

/// Store data of one component invocation.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    outgoing: Outgoing,
    core: CoreCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// Bytes of stdout and stderr written by earlier requests of this
    /// instance (not the current one's to report).
    output_seen: (usize, usize),
    pub budget: Budget,
}

impl RequestState {
    /// Fresh state for `caller`: no environment, arguments, directories or
    /// sockets; stdout and stderr captured; memory capped, and outgoing HTTP
    /// allowed, as the service's `guard` says.
    pub fn new(
        core: Core,
        caller: Caller,
        dispatch: Arc<dyn Dispatch>,
        guard: Arc<ServiceGuard>,
        stop_at: std::time::Instant,
    ) -> RequestState {
        let stdout = MemoryOutputPipe::new(CAPTURE_LIMIT);
        let stderr = MemoryOutputPipe::new(CAPTURE_LIMIT);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        RequestState {
            wasi,
            http: WasiHttpCtx::new(),
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            limiter: MemoryLimiter::new(guard.grants.limits.memory),
            outgoing: Outgoing {
                dispatch,
                core: core.clone(),
                caller: caller.clone(),
                guard,
            },
            budget: Budget::new(stop_at, &caller),
            core: CoreCtx { core, caller },
            stdout,
            stderr,
            output_seen: (0, 0),
        }
    }

    /// Makes a kept instance's state the next request's: its caller, its
    /// time budget, and output captured from here on.
    pub fn rebind(&mut self, caller: Caller, stop_at: std::time::Instant) {
        self.budget = Budget::new(stop_at, &caller);
        self.outgoing.caller = caller.clone();
        self.core.caller = caller;
        self.output_seen = (self.stdout.contents().len(), self.stderr.contents().len());
    }

    /// Whether this instance may serve another request after one that
    /// returned normally:
    /// * it hit no memory or output limit, and is less than half way to its
    ///   memory limit and to its cap of host resources (a guest that grows
    ///   or leaks a little on every request gets a fresh instance before it
    ///   fails one);
    /// * it holds nothing tied to a stream or a call of its request (a
    ///   response, a body, a pending outgoing call), which could tie the
    ///   next request to this one's client. The request itself and field
    ///   sets it may still hold (a garbage-collected guest such as
    ///   StarlingMonkey drops them later) are only data; a request body it
    ///   never took is taken from it here, so the client's connection is not
    ///   held.
    ///
    /// `Err` says why not.
    pub fn reusable(&mut self) -> Result<(), &'static str> {
        use std::any::Any;
        use wasmtime_wasi_http::p2::body::{
            HostFutureTrailers, HostIncomingBody, HostOutgoingBody,
        };
        use wasmtime_wasi_http::p2::types::{
            HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse,
            HostOutgoingRequest, HostOutgoingResponse, HostResponseOutparam,
        };
        if self.limiter.hit() {
            return Err("it reached its memory limit");
        }
        if self.limiter.bytes() as u64 > self.limiter.limit() / 2 {
            return Err("it grew past half its memory limit");
        }
        if self.stdout.contents().len() + self.stderr.contents().len() > CAPTURE_LIMIT / 2 {
            return Err("it wrote half of its output limit");
        }
        type Is = fn(&dyn Any) -> bool;
        let live: [(Is, &'static str); 8] = [
            (|e| e.is::<HostResponseOutparam>(), "a response outparam"),
            (|e| e.is::<HostOutgoingResponse>(), "an outgoing response"),
            (|e| e.is::<HostOutgoingBody>(), "an outgoing body"),
            (|e| e.is::<HostIncomingBody>(), "an incoming body"),
            (|e| e.is::<HostFutureTrailers>(), "pending trailers"),
            (|e| e.is::<HostOutgoingRequest>(), "an outgoing request"),
            (|e| e.is::<HostFutureIncomingResponse>(), "a pending call"),
            (|e| e.is::<HostIncomingResponse>(), "an incoming response"),
        ];
        let mut held = 0;
        for entry in self.table.iter_mut() {
            held += 1;
            if held > MAX_RESOURCES / 2 {
                return Err("it holds half of its cap of host resources");
            }
            if let Some(request) = entry.downcast_mut::<HostIncomingRequest>() {
                request.body = None;
                continue;
            }
            let entry: &dyn Any = entry;
            if let Some((_, what)) = live.iter().find(|(is, _)| is(entry)) {
                return Err(what);
            }
        }
        Ok(())
    }

    /// Whom this invocation runs as.
    pub fn caller(&self) -> &Caller {
        &self.core.caller
    }

    /// Whether the instance tried to grow past its memory limit.
    pub fn memory_limit_hit(&self) -> bool {
        self.limiter.hit()
    }

    /// Bytes of linear memory the instance has grown to.
    pub fn memory_bytes(&self) -> usize {
        self.limiter.bytes()
    }

    /// What the guest wrote to stdout and stderr during this request.
    pub fn captured_output(&self) -> (bytes::Bytes, bytes::Bytes) {
        let (out, err) = self.output_seen;
        (
            self.stdout.contents().slice(out..),
            self.stderr.contents().slice(err..),
        )
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

impl HasCore for RequestState {
    fn core_ctx(&mut self) -> &mut CoreCtx {
        &mut self.core
    }
}
