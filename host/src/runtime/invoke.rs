//! Invoking: one request in one fresh, sandboxed instance of a service (or
//! one it kept from an earlier request, where its limits allow that) —
//! admission (slots, header and body limits), the guest's task and its
//! deadline, the response guard — and the in-process dispatch of calls
//! from one component to another.

use super::{Runtime, STOP_GRACE};
use crate::api::error::{ApiError, HostAnswered};
use crate::config::Limits;
use crate::core::Core;
use crate::core::audit::Level;
use crate::core::telemetry::HopStart;
use crate::runtime::component::Service;
use crate::runtime::outbound::{BoxFuture, Dispatch};
use crate::runtime::sandbox::{Counter, GuardedBody, ServiceGuard, Violation, content_length};
use crate::runtime::state::{Caller, RequestState};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Instant;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

impl Runtime {
    /// Runs `req` in a fresh instance of `service` as `caller` and returns its
    /// response. The service's limits apply: a free instance slot (else 503),
    /// header and body sizes (431, 413), memory, and the deadline (504, or a
    /// response stream cut off). Failures become JSON error responses, and
    /// are logged and counted for the service. Each call is one service
    /// hop: one request in the metrics, one span in the traces.
    pub async fn invoke(
        &self,
        service: Arc<Service>,
        req: http::Request<WasiBody>,
        caller: Caller,
    ) -> http::Response<WasiBody> {
        let started = Instant::now();
        let guard = service.guard.clone();
        // The span's parent: the calling hop's, or the client's.
        let parent = match (&caller.span, caller.trace.parent()) {
            (Some(span), _) => Some((span.as_str(), false)),
            (None, Some(client)) => Some((client, true)),
            (None, None) => None,
        };
        let hop = self.core.telemetry.start_hop(HopStart {
            service: &service.name,
            version: &service.version,
            caller: caller.from.as_deref(),
            method: req.method().as_str(),
            path: req.uri().path(),
            trace_id: caller.trace.id(),
            parent,
        });
        let caller = Caller {
            span: hop.span_id().or(caller.span.clone()),
            ..caller
        };
        let response = self.invoke_instance(service, req, caller).await;
        let status = response.status();
        guard.metrics.request(status, started.elapsed());
        let answered = response.extensions().get::<HostAnswered>().map(|h| h.0);
        hop.end(status, answered);
        response
    }

    async fn invoke_instance(
        &self,
        service: Arc<Service>,
        req: http::Request<WasiBody>,
        caller: Caller,
    ) -> http::Response<WasiBody> {
        let guard = service.guard.clone();
        let limits = guard.grants.limits.clone();
        let req = if service.strip_prefix {
            strip_prefix(req, &service)
        } else {
            req
        };
        let permit = match admit(&service, req.headers()) {
            Ok(permit) => permit,
            Err(refusal) => return refusal.into_wasi_response(),
        };
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
        let idle = (limits.requests_per_instance > 1)
            .then(|| service.warm.take())
            .flatten();
        let (mut store, kept, served) = match idle {
            Some(mut idle) => {
                idle.store.data_mut().rebind(caller, super::stop_at(&guard));
                idle.store.set_epoch_deadline(1);
                (idle.store, Some(idle.proxy), idle.served)
            }
            None => (self.new_store(caller, guard.clone()), None, 0),
        };
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
        let task_body_too_large = body_too_large.clone();
        let runtime = self.this.clone();
        let reused = served > 0;
        // The guest runs in its own task: it may keep streaming the body after
        // the response head has been handed back. The task holds the
        // instance slot, and stops the guest shortly after the deadline even
        // if it is waiting in a host call, where epochs cannot interrupt it.
        let task = tokio::spawn(async move {
            let _slot = permit;
            let run = async {
                let proxy = match kept {
                    Some(proxy) => proxy,
                    None => task_service.pre.instantiate_async(&mut store).await?,
                };
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await?;
                Ok(proxy)
            };
            let outcome = match tokio::time::timeout_at(deadline + STOP_GRACE, run).await {
                Ok(Ok(proxy)) => Ok(proxy),
                Ok(Err(e)) => Err(Failure::of(&e, store.data())),
                Err(_) => Err(Failure::Timeout),
            };
            task_service
                .guard
                .metrics
                .instance_memory(store.data().memory_bytes());
            let (stdout, stderr) = store.data().captured_output();
            log_output(&task_report, &stdout, Level::Info);
            log_output(&task_report, &stderr, Level::Warn);
            match outcome {
                Ok(proxy) => {
                    let served = served + 1;
                    if served < task_limits.requests_per_instance {
                        let keep = if Instant::now() >= deadline {
                            Err("its request ran past the deadline")
                        } else if task_body_too_large.load(Ordering::Relaxed) {
                            Err("its request body was over the limit")
                        } else {
                            store.data_mut().reusable()
                        };
                        match keep {
                            Ok(()) => task_service.warm.put(crate::runtime::warm::Idle {
                                store,
                                proxy,
                                served,
                                since: std::time::Instant::now(),
                            }),
                            Err(why) => tracing::debug!(
                                "{}: an instance is not kept after {served} requests: {why}",
                                task_service.name
                            ),
                        }
                    }
                    Ok(())
                }
                Err(failure) => {
                    task_report.failure(&failure, &task_limits);
                    if matches!(failure, Failure::HostBusy) {
                        // Kept instances give their pool slots back to new
                        // ones: at most this request is refused for them.
                        if let Some(runtime) = runtime.upgrade() {
                            runtime.sweep_warm(std::time::Duration::ZERO);
                        }
                    }
                    Err(failure)
                }
            }
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
                    Ok(Ok(())) if reused => {
                        if service.warm.give_up() {
                            report.log(
                                Level::Warn,
                                format!(
                                    "{} {} answered only the first request of an instance (StarlingMonkey does); its instances are no longer kept: set requests_per_instance = 1 for it",
                                    service.name, service.version
                                ),
                            );
                        }
                        ApiError::ComponentFailed(format!(
                            "{} returned without setting a response to its instance's second request",
                            service.name
                        ))
                    }
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
        guard_response(
            response,
            &service.name,
            &limits,
            deadline,
            report,
            body_too_large,
        )
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

/// `req` with the prefix route of `service` it matched taken off its path
/// (the most specific one; the query stays). A request no prefix route
/// matches (an exact route) keeps its path.
fn strip_prefix(mut req: http::Request<WasiBody>, service: &Service) -> http::Request<WasiBody> {
    let path = req.uri().path();
    let Some(rest) = service
        .routes
        .iter()
        .filter_map(|p| p.strip(path))
        .min_by_key(|rest| rest.len())
    else {
        return req;
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Admission of a request to `service`: a free instance slot (else 503 busy)
/// and headers and a declared body within its limits (else 431, 413), each
/// refusal counted.
fn admit(
    service: &Service,
    headers: &http::HeaderMap,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let guard = &service.guard;
    let limits = &guard.grants.limits;
    guard.count(Counter::Requests);
    let Some(permit) = guard.try_enter() else {
        guard.count(Counter::Busy);
        return Err(ApiError::Busy(format!(
            "{} is already serving its limit of {} requests",
            service.name, limits.max_concurrency
        )));
    };
    if let Err(why) = guard.check_headers(headers) {
        guard.count(Counter::HeadersTooLarge);
        return Err(ApiError::HeadersTooLarge(format!(
            "{}: {why}",
            service.name
        )));
    }
    if let Some(n) = content_length(headers).filter(|n| *n > limits.max_request_body) {
        guard.count(Counter::BodyTooLarge);
        return Err(ApiError::PayloadTooLarge(format!(
            "{}: a request body of {n} bytes; at most {} are accepted",
            service.name, limits.max_request_body
        )));
    }
    Ok(permit)
}

/// The component's response as the client gets it: refused (502) if it
/// declares a body over the limit, else its body cut off at the limit or
/// the deadline, each violation reported. A response still streaming when
/// its request body passes the limit (`request_failed`) ends in an error.
fn guard_response(
    response: http::Response<WasiBody>,
    service: &str,
    limits: &Limits,
    deadline: Instant,
    report: Report,
    request_failed: Arc<AtomicBool>,
) -> http::Response<WasiBody> {
    if let Some(n) = content_length(response.headers()).filter(|n| *n > limits.max_response_body) {
        report.limit_hit(
            Counter::ResponseTooLarge,
            format!(
                "response of {n} bytes refused; the limit is {} bytes",
                limits.max_response_body
            ),
        );
        return ApiError::ResponseTooLarge(format!(
            "{} answered with {n} bytes; at most {} are allowed",
            service, limits.max_response_body
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
        .abort_if(request_failed)
        .boxed_unsync()
    })
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

impl Runtime {
    /// A call to `service` from another service, `caller` (a component of
    /// this host, or of another host that forwarded the call with a valid
    /// host credential): the caller policy the service declared, against
    /// the identity the calling host stamped, then the call one hop deeper
    /// in the same trace.
    pub async fn call(
        &self,
        service: Arc<Service>,
        req: http::Request<WasiBody>,
        caller: &Caller,
    ) -> http::Response<WasiBody> {
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
            self.core
                .log(&service.name, &caller.trace, Level::Warn, msg);
            return ApiError::Forbidden(format!(
                "{} may not call {}",
                caller.service, service.name
            ))
            .into_wasi_response();
        }
        let callee = caller.next_hop(service.name.as_str().into());
        self.invoke(service, req, callee).await
    }
}

impl Dispatch for Runtime {
    fn dispatch(
        &self,
        req: http::Request<WasiBody>,
        caller: Caller,
        via: Option<String>,
    ) -> BoxFuture<http::Response<WasiBody>> {
        let target = self.route(req.uri().path());
        let runtime = self.this.upgrade().expect("runtime is alive while serving");
        Box::pin(async move {
            if let Some(service) = target {
                return runtime.call(service, req, &caller).await;
            }
            // Not served here: a live host of the cluster that serves it.
            // Only paths of services cross: never another host's `/_hms`.
            let remote = runtime
                .cluster_routes
                .load()
                .lookup(req.uri().path())
                .cloned();
            if let Some(service) = remote {
                return runtime.forward(req, caller, service, via).await;
            }
            let msg = format!("no service serves {}", req.uri().path());
            ApiError::NotFound(msg).into_wasi_response()
        })
    }
}

/// What a request's instance wrote to one of its output streams, as one
/// event: a traceback or a panic message stays together, and a chatty guest
/// costs one event per stream per request (its capture is bounded by
/// [`crate::runtime::state::CAPTURE_LIMIT`]). Blank lines are dropped.
fn log_output(report: &Report, output: &[u8], level: Level) {
    if let Some(text) = output_event(output) {
        report.log(level, text);
    }
}

fn output_event(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_output_is_one_event_without_blank_lines() {
        let traceback = b"Traceback (most recent call last):\n  File \"app.py\", line 3\n\n    boom()\r\nValueError: x\n\n";
        assert_eq!(
            output_event(traceback).unwrap(),
            "Traceback (most recent call last):\n  File \"app.py\", line 3\n    boom()\nValueError: x"
        );
        assert_eq!(output_event(b""), None);
        assert_eq!(output_event(b"\n  \n"), None);
        assert_eq!(output_event(b"one line").unwrap(), "one line");
    }
}
