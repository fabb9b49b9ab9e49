//! Outgoing HTTP from components: every `wasi:http/outgoing-handler` request
//! passes through [`Outgoing::send_request`], which decides where it may go.
//!
//! * To this host (its advertised address, which is what discovery returns
//!   for deployed services): dispatched in-process to the target component
//!   through [`Dispatch`], no socket involved, same trace.
//! * To an external service registered in Core's registry: forwarded over
//!   plain HTTP.
//! * Anywhere else: refused with `HTTP-request-denied`, and logged. The crate
//!   is built without wasmtime-wasi-http's `default-send-request`, so there is
//!   no path to the network except the one here.
//!
//! [`Dispatch`] is the small trait that keeps the module graph a tree: the
//! store state owns an `Outgoing`, which needs to reach the deployed
//! components, whose runtime creates the stores.

use crate::audit::Level;
use crate::core::{Caller, Core};
use crate::trace::{MAX_CALL_DEPTH, TRACEPARENT_HEADER};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// A boxed future, as trait objects need.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

/// Serves a request in-process on behalf of a calling component.
pub trait Dispatch: Send + Sync + 'static {
    /// Routes `req` to the deployed component serving its path; `caller` is
    /// the calling component (its trace continues in the callee).
    fn dispatch(
        &self,
        req: http::Request<WasiBody>,
        caller: Caller,
    ) -> BoxFuture<http::Response<WasiBody>>;
}

/// The outgoing-request policy of one component invocation.
pub struct Outgoing {
    pub dispatch: Arc<dyn Dispatch>,
    pub core: Core,
    pub caller: Caller,
}

/// One shared client for forwarding to external services (connection reuse).
static CLIENT: LazyLock<Client<HttpConnector, WasiBody>> =
    LazyLock::new(|| Client::builder(TokioExecutor::new()).build_http());

impl Outgoing {
    fn deny(&self, why: String) -> SendResult {
        self.core.log(
            &self.caller.service,
            &self.caller.trace,
            Level::Warn,
            format!("outgoing request denied: {why}"),
        );
        Err(HttpError::HttpRequestDenied)
    }
}

impl WasiHttpHooks for Outgoing {
    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        Some(http::uri::Scheme::HTTP)
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri().clone();
        let (Some(host), scheme) = (uri.host(), uri.scheme_str()) else {
            return Box::new(std::future::ready(self.deny(format!("{uri}: no host"))));
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == Some("https") { 443 } else { 80 });
        let local = self.core.registry.local_addr();
        let is_local = port == local.port()
            && (host == local.ip().to_string() || host.eq_ignore_ascii_case("localhost"))
            && scheme != Some("https");
        if is_local {
            if self.caller.depth >= MAX_CALL_DEPTH {
                let r = self.deny(format!(
                    "{uri}: call depth {} exceeded (a loop?)",
                    MAX_CALL_DEPTH
                ));
                return Box::new(std::future::ready(r.map_err(|_| HttpError::LoopDetected)));
            }
            let dispatch = self.dispatch.clone();
            let caller = self.caller.clone();
            return Box::new(async move {
                let response = dispatch.dispatch(request, caller).await;
                Ok((
                    response,
                    Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        if scheme == Some("http") && self.core.registry.is_external_endpoint(host, port) {
            if let Ok(v) = self.caller.trace.traceparent().parse() {
                request.headers_mut().insert(TRACEPARENT_HEADER, v);
            }
            return Box::new(async move {
                let response = CLIENT.request(request).await.map_err(|e| {
                    tracing::debug!("forwarding to external service failed: {e}");
                    HttpError::ConnectionRefused
                })?;
                let response = response.map(|b| b.map_err(HttpError::from).boxed_unsync());
                Ok((
                    response,
                    Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        let r = self.deny(format!(
            "{uri} is neither a service of this host nor a registered external service"
        ));
        Box::new(std::future::ready(r))
    }
}
