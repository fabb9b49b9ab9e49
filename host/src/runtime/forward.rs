//! Calls between the hosts of a cluster, both sides.
//!
//! **Calling side.** A component's call for a path this host does not
//! serve but another host advertises a route for (a service the placement
//! puts on other hosts; the URL may name this host or another one, which is
//! what discovery answers for a service that is not here) goes to a live
//! host that serves the service, chosen from
//! the cluster view (a snapshot read every heartbeat, never a query per
//! call): the host the URL names if it is one of them, else the hosts in
//! turn. The request carries a **host call credential** in
//! [`HOST_CREDENTIAL_HEADER`]: a short-lived JWT signed with this host's
//! key, subject the calling service, audience the target host's id, with
//! the call depth ([`crate::core::auth::Auth::host_call_credential`]), and
//! the trace as `traceparent`. Components never see the credential: the
//! header is removed from whatever a component sends
//! ([`crate::runtime::outbound`]) and from every request before a
//! component gets it. A failed connect is retried once on another live
//! host that serves the service; the body is buffered (up to the service's
//! request body limit) so that it can be sent again. Only paths of
//! services cross: a path no host advertises, such as another host's Core
//! API under `/_hms`, is a 404 as on this host.
//!
//! **Receiving side** ([`caller_of`], used by the HTTP front before it
//! dispatches): a request with a valid credential for this host is a call
//! from that service, at that depth, and goes through the caller policy
//! exactly as an in-process call does ([`Runtime::call`]); a credential
//! that does not verify against the cluster's keys, is for another host,
//! or is not a host call credential is refused (401) before any component
//! runs; a request without one is an outside client's, with no caller
//! identity. So an outside client cannot pose as a host: only a key that
//! some host of the cluster published signs a credential.

use super::Runtime;
use crate::api::error::ApiError;
use crate::core::Core;
use crate::core::trace::TRACEPARENT_HEADER;
use crate::runtime::state::Caller;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The request header carrying the host call credential.
pub const HOST_CREDENTIAL_HEADER: &str = "x-hms-host-call";

/// Hosts tried per call: the first choice, and one more after a failed connect.
const ATTEMPTS: usize = 2;

/// How long connecting to another host may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One pooled client for calls to other hosts (connections are reused).
static CLIENT: LazyLock<Client<HttpConnector, Full<Bytes>>> = LazyLock::new(|| {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new()).build(connector)
});

/// Who is calling, according to a request's host call credential: `None`
/// when it has none (an outside client); an error (answer it, 401) when
/// the credential is not valid for this host. The header is removed either
/// way, so the component never sees it.
pub fn caller_of(
    core: &Core,
    headers: &mut http::HeaderMap,
) -> Result<Option<(String, u32)>, ApiError> {
    let Some(value) = headers.remove(HOST_CREDENTIAL_HEADER) else {
        return Ok(None);
    };
    let refused =
        |why: String| ApiError::Unauthorized(format!("invalid host call credential: {why}"));
    let credential = value.to_str().map_err(|_| refused("not text".into()))?;
    let call = core
        .auth
        .verify_host_call(credential.trim(), &core.host.id)
        .map_err(|e| refused(e.to_string()))?;
    Ok(Some((call.service, call.depth)))
}

impl Runtime {
    /// Sends `req` from `caller` to a live host that serves `service`
    /// (host `via` first if it is one), retrying a failed connect once on
    /// another. Answers for the callee: its response, or a JSON error when
    /// no host could be reached.
    pub(super) async fn forward(
        &self,
        req: http::Request<WasiBody>,
        caller: Caller,
        service: Arc<str>,
        via: Option<String>,
    ) -> http::Response<WasiBody> {
        static TURN: AtomicUsize = AtomicUsize::new(0);
        let Some(cluster) = &self.core.cluster else {
            let msg = format!("no service serves {}", req.uri().path());
            return ApiError::NotFound(msg).into_wasi_response();
        };
        let view = cluster.view();
        let turn = TURN.fetch_add(1, Ordering::Relaxed);
        let hosts: Vec<crate::core::cluster::Peer> = view
            .serving(&service, via.as_deref(), turn, ATTEMPTS)
            .into_iter()
            .cloned()
            .collect();
        let what = &*service;
        if hosts.is_empty() {
            return ApiError::Unavailable(format!("no live host of the cluster serves {what}"))
                .into_wasi_response();
        }
        // Buffered, so that a failed connect can be retried with the same
        // body; no bigger than the callee accepts anyway.
        let limit = self.sandbox.grants(&service).limits.max_request_body;
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return ApiError::PayloadTooLarge(format!(
                    "{what}: request body over {limit} bytes"
                ))
                .into_wasi_response();
            }
            Err(e) => {
                return ApiError::BadRequest(format!("reading the request body: {e}"))
                    .into_wasi_response();
            }
        };
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let mut failures = Vec::new();
        for host in &hosts {
            let mut request = http::Request::new(Full::new(body.clone()));
            *request.method_mut() = parts.method.clone();
            *request.headers_mut() = parts.headers.clone();
            let uri = format!("{}{target}", host.url.trim_end_matches('/'));
            match uri.parse() {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => {
                    failures.push(format!("{}: invalid URL {uri:?}", host.id));
                    continue;
                }
            }
            let headers = request.headers_mut();
            headers.remove(http::header::HOST);
            let credential =
                self.core
                    .auth
                    .host_call_credential(&caller.service, &host.id, caller.depth);
            if let (Ok(credential), Ok(traceparent)) = (
                credential.parse(),
                caller.trace.traceparent(caller.span.as_deref()).parse(),
            ) {
                headers.insert(HOST_CREDENTIAL_HEADER, credential);
                headers.insert(TRACEPARENT_HEADER, traceparent);
            }
            match CLIENT.request(request).await {
                Ok(response) => {
                    return response.map(|b| b.map_err(HttpError::from).boxed_unsync());
                }
                // Not connected: nothing was sent, so another host may serve it.
                Err(e) if e.is_connect() => {
                    tracing::info!(
                        "calling {what} on host {} failed ({}); trying another",
                        host.id,
                        causes(&e)
                    );
                    failures.push(format!("{}: {}", host.id, causes(&e)));
                }
                Err(e) => {
                    return ApiError::Unavailable(format!(
                        "calling {what} on host {} failed: {}",
                        host.id,
                        causes(&e)
                    ))
                    .into_wasi_response();
                }
            }
        }
        ApiError::Unavailable(format!(
            "no host serving {what} could be reached ({})",
            failures.join("; ")
        ))
        .into_wasi_response()
    }
}

/// An error with its causes, `a: b: c`.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
