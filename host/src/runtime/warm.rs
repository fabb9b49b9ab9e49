//! Instances kept between requests, for a service whose limits allow an
//! instance more than one request (`requests_per_instance` > 1).
//!
//! By default every request gets a fresh instance, and this holds nothing.
//! A service that opts in trades isolation between its own requests for the
//! cost of instantiating, which for an interpreter compiled to wasm (CPython,
//! StarlingMonkey) is most of a small request's time. What is kept is one
//! version's instance: a deploy, a rollback or an undeploy drops the
//! version's kept instances at once, and an instance kept unused for
//! [`IDLE_TTL`] is dropped by the runtime's sweep. Only an instance whose
//! request ended cleanly is kept (see `RequestState::reusable`); a trap, a
//! timeout or a limit hit ends it.
//!
//! Not every guest can serve a second request: StarlingMonkey (the engine
//! of componentize-js 0.23) answers only the first call of an instance and
//! returns from the next without a response. A kept instance that does so
//! makes its version stop keeping instances ([`Warm::give_up`]): that one
//! request fails, and the host says why.

use crate::base::sync::lock;
use crate::runtime::state::RequestState;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;

/// How long a kept instance may wait for its next request before it is
/// dropped (its memory and its pool slot handed back).
pub const IDLE_TTL: Duration = Duration::from_secs(30);

/// One instance between two requests.
pub struct Idle {
    pub store: Store<RequestState>,
    pub proxy: Proxy,
    /// Requests it has served.
    pub served: u32,
    /// When its last request ended.
    pub since: Instant,
}

/// The kept instances of one service version, most recently used last.
pub struct Warm {
    idle: Mutex<Vec<Idle>>,
    /// The most kept at once: the service's concurrency limit, which is as
    /// many as it can use at once.
    cap: usize,
    /// The version proved unable to serve a second request: keep none.
    given_up: AtomicBool,
}

impl Warm {
    pub fn new(cap: u32) -> Warm {
        Warm {
            idle: Mutex::new(Vec::new()),
            cap: cap as usize,
            given_up: AtomicBool::new(false),
        }
    }

    /// The most recently used kept instance (its caches are the warmest).
    pub fn take(&self) -> Option<Idle> {
        lock(&self.idle).pop()
    }

    /// Keeps `idle` for a later request, unless as many are kept already.
    pub fn put(&self, idle: Idle) {
        let mut kept = lock(&self.idle);
        if kept.len() < self.cap && !self.given_up.load(Ordering::Relaxed) {
            kept.push(idle);
            return;
        }
        drop(kept);
        drop(idle); // outside the lock: dropping resets its memory
    }

    /// Instances kept now.
    pub fn kept(&self) -> usize {
        lock(&self.idle).len()
    }

    /// Drops every kept instance unused for `ttl` (all of them with zero).
    pub fn sweep(&self, ttl: Duration) {
        let now = Instant::now();
        let stale: Vec<Idle> = {
            let mut kept = lock(&self.idle);
            let (stale, fresh) = std::mem::take(&mut *kept)
                .into_iter()
                .partition(|i| now.duration_since(i.since) >= ttl);
            *kept = fresh;
            stale
        };
        drop(stale);
    }

    /// Drops every kept instance.
    pub fn clear(&self) {
        self.sweep(Duration::ZERO);
    }

    /// Keeps no instance from now on (their guest cannot serve a second
    /// request). True the first time.
    pub fn give_up(&self) -> bool {
        let first = !self.given_up.swap(true, Ordering::Relaxed);
        self.clear();
        first
    }
}
