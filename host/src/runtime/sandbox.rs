//! Enforcement of one service's sandbox limits around each of its requests:
//! the concurrency slots, the header and body limits, the memory limiter of
//! its stores, and the per-service counters of every limit hit.
//!
//! The limits themselves are configuration ([`crate::config::Limits`]); the
//! epoch deadline and the wall-clock timer that bound a request's time are
//! applied by the runtime, which owns the stores and their tasks.

use crate::config::Grants;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// What is counted per service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Requests routed to the service.
    Requests,
    /// Refused with 503: every instance slot was busy.
    Busy,
    /// Refused with 403: the calling service is not among its callers.
    ForbiddenCaller,
    /// Refused with 431: too many or too large request headers.
    HeadersTooLarge,
    /// Refused with 413: request body over the limit.
    BodyTooLarge,
    /// Response body over the limit: refused (502) or cut off.
    ResponseTooLarge,
    /// Over the time limit: 504, or a response stream cut off.
    Timeout,
    /// Grew past its memory limit, or its cap of host resources.
    MemoryLimit,
    /// Trapped (panic, stack overflow, unreachable, ...).
    Trap,
    /// An outgoing request refused by the outbound policy.
    OutboundDenied,
}

impl Counter {
    const ALL: [Counter; 10] = [
        Counter::Requests,
        Counter::Busy,
        Counter::ForbiddenCaller,
        Counter::HeadersTooLarge,
        Counter::BodyTooLarge,
        Counter::ResponseTooLarge,
        Counter::Timeout,
        Counter::MemoryLimit,
        Counter::Trap,
        Counter::OutboundDenied,
    ];

    /// The name in the stats JSON.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Requests => "requests",
            Counter::Busy => "busy",
            Counter::ForbiddenCaller => "forbidden_caller",
            Counter::HeadersTooLarge => "headers_too_large",
            Counter::BodyTooLarge => "body_too_large",
            Counter::ResponseTooLarge => "response_too_large",
            Counter::Timeout => "timeout",
            Counter::MemoryLimit => "memory_limit",
            Counter::Trap => "trap",
            Counter::OutboundDenied => "outbound_denied",
        }
    }
}

/// The sandbox of one service (by name, across its versions): its grants,
/// instance slots and counters.
pub struct ServiceGuard {
    pub grants: Grants,
    /// Its request metrics.
    pub metrics: crate::core::metrics::ServiceMetrics,
    slots: Arc<Semaphore>,
    counts: [AtomicU64; Counter::ALL.len()],
}

impl ServiceGuard {
    pub fn new(grants: Grants, metrics: crate::core::metrics::ServiceMetrics) -> ServiceGuard {
        ServiceGuard {
            metrics,
            slots: Arc::new(Semaphore::new(grants.limits.max_concurrency as usize)),
            grants,
            counts: Default::default(),
        }
    }

    /// An instance slot, if one is free: held until the request's component
    /// instance is gone (its response body included). Never waits.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    pub fn count(&self, counter: Counter) {
        self.counts[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.counts[counter as usize].load(Ordering::Relaxed)
    }

    /// Requests being served right now.
    pub fn in_flight(&self) -> u32 {
        self.grants.limits.max_concurrency - self.slots.available_permits() as u32
    }

    /// Each limit counter (every counter but `requests`) by name.
    pub fn limit_hits(&self) -> Vec<(&'static str, u64)> {
        Counter::ALL
            .iter()
            .filter(|c| **c != Counter::Requests)
            .map(|c| (c.name(), self.get(*c)))
            .collect()
    }

    /// Every counter by name (the stats API).
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        Counter::ALL
            .iter()
            .map(|c| (c.name().to_string(), self.get(*c)))
            .collect()
    }

    /// Checks the request headers against the count and size limits.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<(), String> {
        let limits = &self.grants.limits;
        if headers.len() > limits.max_header_count {
            return Err(format!(
                "{} request headers; at most {} are accepted",
                headers.len(),
                limits.max_header_count
            ));
        }
        let bytes: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if bytes > limits.max_header_bytes {
            return Err(format!(
                "{bytes} bytes of request headers; at most {} are accepted",
                limits.max_header_bytes
            ));
        }
        Ok(())
    }
}

/// A limit a body crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// More bytes than the limit (the limit).
    TooLarge(u64),
    /// Still streaming at the deadline.
    Deadline,
}

type OnViolation = Box<dyn FnOnce(Violation) + Send>;

/// A body that ends in an error, instead of carrying on, once it passes
/// `limit` bytes or its deadline: the reader (a component reading its
/// request, or hyper sending a response) sees the failure, and a response
/// cut short is aborted rather than looking complete.
pub struct GuardedBody {
    inner: WasiBody,
    limit: u64,
    seen: u64,
    /// The deadline, and a timer to be woken at it while the inner body is
    /// pending (a body that is always ready is checked against the clock).
    deadline: Option<(Instant, Pin<Box<Sleep>>)>,
    on_violation: Option<OnViolation>,
    request: bool,
    failed: bool,
    /// Set when the exchange failed elsewhere (the request body passed its
    /// limit while this response was streaming): the response then ends in
    /// an error instead of looking complete.
    abort_if: Option<Arc<AtomicBool>>,
}

impl GuardedBody {
    /// A request body, handed to a component, of at most `limit` bytes.
    pub fn request(inner: WasiBody, limit: u64, on_violation: OnViolation) -> GuardedBody {
        GuardedBody::new(inner, limit, None, on_violation, true)
    }

    /// A response body of at most `limit` bytes, finished by `deadline`.
    pub fn response(
        inner: WasiBody,
        limit: u64,
        deadline: Instant,
        on_violation: OnViolation,
    ) -> GuardedBody {
        let sleep = Box::pin(tokio::time::sleep_until(deadline));
        GuardedBody::new(inner, limit, Some((deadline, sleep)), on_violation, false)
    }

    fn new(
        inner: WasiBody,
        limit: u64,
        deadline: Option<(Instant, Pin<Box<Sleep>>)>,
        on_violation: OnViolation,
        request: bool,
    ) -> GuardedBody {
        GuardedBody {
            inner,
            limit,
            seen: 0,
            deadline,
            on_violation: Some(on_violation),
            request,
            failed: false,
            abort_if: None,
        }
    }

    /// Ends this (response) body in an error, instead of normally, once
    /// `flag` is set: by then the exchange has failed, and a client must not
    /// take what it received for the whole answer.
    pub fn abort_if(mut self, flag: Arc<AtomicBool>) -> GuardedBody {
        self.abort_if = Some(flag);
        self
    }

    fn aborted(&self) -> bool {
        self.abort_if
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    fn fail(&mut self, violation: Violation) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        self.failed = true;
        if let Some(f) = self.on_violation.take() {
            f(violation);
        }
        let error = match (violation, self.request) {
            (Violation::TooLarge(n), true) => HttpError::HttpRequestBodySize(Some(n)),
            (Violation::TooLarge(n), false) => HttpError::HttpResponseBodySize(Some(n)),
            (Violation::Deadline, _) => HttpError::HttpResponseTimeout,
        };
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        if let Some((at, timer)) = &mut this.deadline
            && (Instant::now() >= *at || timer.as_mut().poll(cx).is_ready())
        {
            return this.fail(Violation::Deadline);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            // The other half of the exchange failed (and was reported there):
            // no more bytes, and no clean end.
            Poll::Ready(Some(Ok(_)) | None) if this.aborted() => {
                this.failed = true;
                Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(None))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        return this.fail(Violation::TooLarge(this.limit));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        // An aborted body must still be polled to deliver its error.
        self.failed || (self.inner.is_end_stream() && self.abort_if.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The declared `Content-Length`, if any and valid.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The store's resource limiter: caps linear memory and remembers whether
/// the cap was hit, so a trap that follows is reported as what it is.
pub struct MemoryLimiter {
    limit: usize,
    hit: bool,
    /// Bytes of linear memory the instance has, all its memories together.
    bytes: usize,
}

/// Table elements an instance may grow to (Rust guests use a few hundred).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimiter {
    pub fn new(limit: u64) -> MemoryLimiter {
        MemoryLimiter {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            hit: false,
            bytes: 0,
        }
    }

    /// Whether the instance tried to grow past its limit.
    pub fn hit(&self) -> bool {
        self.hit
    }

    pub fn limit(&self) -> u64 {
        self.limit as u64
    }

    /// Bytes of linear memory the instance has grown to (every memory it
    /// created, from its initial size on).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit && maximum.is_none_or(|m| desired <= m);
        if allowed {
            self.bytes += desired.saturating_sub(current);
        } else {
            self.hit = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::Mutex;

    fn guard(limits: Limits) -> ServiceGuard {
        ServiceGuard::new(
            Grants {
                limits,
                allow_outbound: Vec::new(),
                mount: Default::default(),
            },
            crate::core::metrics::ServiceMetrics::detached(),
        )
    }

    fn chunks(n: usize, size: usize) -> WasiBody {
        let frames = (0..n).map(move |_| Ok(Frame::data(Bytes::from(vec![b'x'; size]))));
        StreamBody::new(stream::iter(frames)).boxed_unsync()
    }

    #[test]
    fn slots_are_bounded_and_returned() {
        let g = guard(Limits {
            max_concurrency: 2,
            ..Limits::default()
        });
        let a = g.try_enter().unwrap();
        let _b = g.try_enter().unwrap();
        assert!(g.try_enter().is_none());
        assert_eq!(g.in_flight(), 2);
        drop(a);
        assert!(g.try_enter().is_some());
    }

    #[test]
    fn headers_are_limited_by_count_and_size() {
        let g = guard(Limits {
            max_header_count: 2,
            max_header_bytes: 20,
            ..Limits::default()
        });
        let mut h = HeaderMap::new();
        h.insert("a", "1".parse().unwrap());
        assert!(g.check_headers(&h).is_ok());
        h.insert("b", "x".repeat(30).parse().unwrap());
        assert!(g.check_headers(&h).unwrap_err().contains("bytes"));
        h.insert("b", "2".parse().unwrap());
        h.insert("c", "3".parse().unwrap());
        assert!(
            g.check_headers(&h)
                .unwrap_err()
                .contains("3 request headers")
        );
    }

    #[tokio::test]
    async fn a_body_over_its_limit_fails_once_and_reports_it() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let body = GuardedBody::request(
            chunks(4, 10),
            25,
            Box::new(move |v| s.lock().unwrap().push(v)),
        );
        let err = body.collect().await.unwrap_err();
        assert!(matches!(err, HttpError::HttpRequestBodySize(Some(25))));
        assert_eq!(*seen.lock().unwrap(), vec![Violation::TooLarge(25)]);

        let body = GuardedBody::request(chunks(2, 10), 25, Box::new(|_| panic!("within limit")));
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 20);
    }

    #[tokio::test]
    async fn a_response_ends_in_an_error_once_its_exchange_failed() {
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let response = |flag: &Arc<AtomicBool>| {
            GuardedBody::response(
                chunks(3, 10),
                u64::MAX,
                far,
                Box::new(|_| panic!("no limit")),
            )
            .abort_if(flag.clone())
        };
        let fine = Arc::new(AtomicBool::new(false));
        assert_eq!(
            response(&fine).collect().await.unwrap().to_bytes().len(),
            30
        );

        // Set while the body streams (here: before its last frames).
        let failed = Arc::new(AtomicBool::new(false));
        let mut body = response(&failed);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().unwrap().len(), 10);
        failed.store(true, Ordering::Relaxed);
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, HttpError::HttpRequestBodySize(None)));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_response_still_streaming_at_its_deadline_is_aborted() {
        // A slow stream (waits between chunks) and a fast one (always ready).
        let slow = stream::unfold((), |()| async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), ()))
        });
        check_cut_off(StreamBody::new(slow).boxed_unsync()).await;
        let fast = stream::repeat_with(|| Ok(Frame::data(Bytes::from_static(b"x"))));
        check_cut_off(StreamBody::new(fast).boxed_unsync()).await;
    }

    async fn check_cut_off(endless: WasiBody) {
        let (tx, rx) = std::sync::mpsc::channel();
        let deadline = Instant::now() + std::time::Duration::from_millis(50);
        let body = GuardedBody::response(
            endless,
            u64::MAX,
            deadline,
            Box::new(move |v| tx.send(v).unwrap()),
        );
        let err = body.collect().await.unwrap_err();
        assert!(matches!(err, HttpError::HttpResponseTimeout));
        assert_eq!(rx.recv().unwrap(), Violation::Deadline);
    }

    #[test]
    fn the_memory_limiter_remembers_a_refused_growth() {
        use wasmtime::ResourceLimiter;
        let mut m = MemoryLimiter::new(1 << 20);
        assert!(m.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!m.hit());
        assert!(!m.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(m.hit());
    }
}
