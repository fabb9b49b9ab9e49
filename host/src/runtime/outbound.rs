//! Outgoing HTTP from components: every `wasi:http/outgoing-handler` request
//! passes through [`Outgoing::send_request`], which decides where it may go.
//!
//! * To this host (its advertised address, which is what discovery returns
//!   for deployed services): dispatched in-process to the target component
//!   through [`Dispatch`], no socket involved, same trace.
//! * In a cluster, to another host of the cluster (its URL is what
//!   discovery returns for a service this host does not serve), or to this
//!   host for a path only other hosts serve: forwarded to a live host that
//!   serves it, with a host call credential ([`crate::runtime::forward`]);
//!   a path this host serves is still dispatched in-process.
//! * To an external service an operator registered (admin API), or to a
//!   `host:port` the operator granted the calling service (`allow_outbound`
//!   in the config file): forwarded over plain HTTP.
//! * To an external service a component registered: forwarded only if every
//!   address the name resolves to is public (not loopback, private,
//!   link-local such as the cloud metadata range, ...), and connected to the
//!   address that was checked, so DNS cannot be used to point it inward.
//! * Anywhere else: refused with `HTTP-request-denied`, logged and counted.
//!   The crate is built without wasmtime-wasi-http's `default-send-request`,
//!   so there is no path to the network except the one here.
//!
//! Only the request's URI decides: wasi:http forbids guests the `Host`
//! header (the host sets it from the URI), a host call credential header a
//! guest sets is removed (only the host signs those), and redirects are never followed
//! here, so a component that follows one makes a new request that is
//! decided afresh. The Core API under `/_hms` is not a component route, so
//! a request to this host cannot reach it.
//!
//! [`Dispatch`] is the small trait that keeps the module graph a tree: the
//! store state owns an `Outgoing`, which needs to reach the deployed
//! components, whose runtime creates the stores.

use crate::config::Destination;
use crate::core::Core;
use crate::core::audit::Level;
use crate::core::trace::{MAX_CALL_DEPTH, TRACEPARENT_HEADER};
use crate::runtime::sandbox::{Counter, ServiceGuard};
use crate::runtime::state::Caller;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// the calling component (its trace continues in the callee). A path
    /// this host does not serve goes to a host of the cluster that does,
    /// preferring `via` (the host the URL named).
    fn dispatch(
        &self,
        req: http::Request<WasiBody>,
        caller: Caller,
        via: Option<String>,
    ) -> BoxFuture<http::Response<WasiBody>>;
}

/// The outgoing-request policy of one component invocation.
pub struct Outgoing {
    pub dispatch: Arc<dyn Dispatch>,
    pub core: Core,
    pub caller: Caller,
    /// The calling service's sandbox: its outbound grants and counters.
    pub guard: Arc<ServiceGuard>,
}

/// One shared client for forwarding to external services (connection reuse).
static CLIENT: LazyLock<Client<HttpConnector, WasiBody>> =
    LazyLock::new(|| Client::builder(TokioExecutor::new()).build_http());

/// Where an outgoing request may go.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// A service of this host: dispatched in-process.
    Local,
    /// Another host of the cluster, by id: what it serves is dispatched
    /// in-process if this host serves it too, else forwarded.
    Peer(String),
    /// Forwarded as it is: an operator registered or granted the destination.
    Granted,
    /// Registered by a component: forwarded only to public addresses.
    PublicOnly,
    /// Refused, and why.
    Denied(String),
}

/// Decides where a request for `uri` may go; `local` is this host's
/// address, `peer` finds the other host of the cluster at an address.
fn route(
    uri: &http::Uri,
    local: SocketAddr,
    peer: impl FnOnce(&str, u16) -> Option<String>,
    external: impl FnOnce(&str, u16) -> Option<crate::core::registry::Entry>,
    granted: &[Destination],
) -> Route {
    let Some(host) = uri.host().map(normalize_host) else {
        return Route::Denied(format!("{uri}: no host"));
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Route::Denied(format!(
                "{uri}: only http is supported for outgoing requests, not {other}"
            ));
        }
        None => return Route::Denied(format!("{uri}: no scheme")),
    }
    let port = uri.port_u16().unwrap_or(80);
    let ip = host.parse::<IpAddr>().ok().map(canonical_ip);
    let is_this_host = host == "localhost"
        || ip.is_some_and(|ip| ip == local.ip() || ip.is_loopback() || ip.is_unspecified());
    if is_this_host && port == local.port() {
        return Route::Local;
    }
    if let Some(id) = peer(&host, port) {
        return Route::Peer(id);
    }
    if granted.iter().any(|d| d.host == host && d.port == port) {
        return Route::Granted;
    }
    match external(&host, port) {
        Some(entry) if entry.registered_by.is_none() => Route::Granted,
        Some(_) => Route::PublicOnly,
        None => Route::Denied(format!(
            "{uri} is neither a service of this host, nor a registered external \
             service, nor granted to this service"
        )),
    }
}

/// Lower case, without IPv6 brackets or a trailing dot.
fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is on the public internet: not this machine, not a private,
/// link-local (cloud metadata), shared, reserved or multicast range.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b, c, d] = v6.octets()[12..] else {
                    unreachable!()
                };
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (b & 0xc0) == 64) // shared address space
        || (a == 198 && (b & 0xfe) == 18) // benchmarking
        || a >= 240) // reserved
}

/// Logs and counts a refused outgoing request.
fn denied(core: &Core, caller: &Caller, guard: &ServiceGuard, why: &str) {
    guard.count(Counter::OutboundDenied);
    core.log(
        &caller.service,
        &caller.trace,
        Level::Warn,
        format!("outgoing request denied: {why}"),
    );
}

fn ready(r: SendResult) -> Box<dyn Future<Output = SendResult> + Send> {
    Box::new(std::future::ready(r))
}

fn forwarded(response: http::Response<hyper::body::Incoming>) -> SendResult {
    let response = response.map(|b| b.map_err(HttpError::from).boxed_unsync());
    Ok((
        response,
        Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
    ))
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
        // Only the host signs host call credentials.
        request
            .headers_mut()
            .remove(crate::runtime::forward::HOST_CREDENTIAL_HEADER);
        if self.caller.loading {
            let why = format!("{uri}: no outgoing requests while the component is being loaded");
            denied(&self.core, &self.caller, &self.guard, &why);
            return ready(Err(HttpError::HttpRequestDenied));
        }
        let registry = &self.core.registry;
        let cluster = self.core.cluster.as_ref();
        let decision = route(
            &uri,
            registry.local_addr(),
            |host, port| Some(cluster?.view().peer_at(host, port)?.id.clone()),
            |host, port| registry.external_endpoint(host, port),
            &self.guard.grants.allow_outbound,
        );
        let route = match decision {
            Route::Denied(why) => {
                denied(&self.core, &self.caller, &self.guard, &why);
                return ready(Err(HttpError::HttpRequestDenied));
            }
            local @ (Route::Local | Route::Peer(_)) => {
                if self.caller.depth >= MAX_CALL_DEPTH {
                    let why = format!("{uri}: call depth {MAX_CALL_DEPTH} exceeded (a loop?)");
                    denied(&self.core, &self.caller, &self.guard, &why);
                    return ready(Err(HttpError::LoopDetected));
                }
                let dispatch = self.dispatch.clone();
                let caller = self.caller.clone();
                let via = match local {
                    Route::Peer(id) => Some(id),
                    _ => None,
                };
                return Box::new(async move {
                    let response = dispatch.dispatch(request, caller, via).await;
                    Ok((
                        response,
                        Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                    ))
                });
            }
            other => other,
        };
        if let Ok(v) = self
            .caller
            .trace
            .traceparent(self.caller.span.as_deref())
            .parse()
        {
            request.headers_mut().insert(TRACEPARENT_HEADER, v);
        }
        if route == Route::Granted {
            return Box::new(async move {
                let response = CLIENT.request(request).await.map_err(|e| {
                    tracing::debug!("forwarding to external service failed: {e}");
                    HttpError::ConnectionRefused
                })?;
                forwarded(response)
            });
        }
        // Registered by a component: resolve, check every address, and
        // connect to the checked one (no second lookup to rebind).
        let (core, caller, guard) = (self.core.clone(), self.caller.clone(), self.guard.clone());
        Box::new(async move {
            let host = normalize_host(uri.host().unwrap_or_default());
            let port = uri.port_u16().unwrap_or(80);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| HttpError::DestinationNotFound)?
                .collect();
            let Some(first) = addrs.first() else {
                return Err(HttpError::DestinationNotFound);
            };
            if let Some(inward) = addrs.iter().find(|a| !is_public(a.ip())) {
                let why = format!(
                    "{uri}: {host} resolves to {}, which is not a public address",
                    inward.ip()
                );
                denied(&core, &caller, &guard, &why);
                return Err(HttpError::DestinationIpProhibited);
            }
            let mut parts = uri.into_parts();
            parts.authority = Some(
                first
                    .to_string()
                    .parse()
                    .map_err(|_| HttpError::HttpRequestUriInvalid)?,
            );
            *request.uri_mut() =
                http::Uri::from_parts(parts).map_err(|_| HttpError::HttpRequestUriInvalid)?;
            let response = CLIENT.request(request).await.map_err(|e| {
                tracing::debug!("forwarding to external service failed: {e}");
                HttpError::ConnectionRefused
            })?;
            forwarded(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::Registry;

    fn decide(uri: &str, registry: &Registry, granted: &[&str]) -> Route {
        let granted: Vec<Destination> = granted.iter().map(|d| d.parse().unwrap()).collect();
        route(
            &uri.parse().unwrap(),
            registry.local_addr(),
            |h, p| (h == "10.9.9.9" && p == 8080).then(|| "h2".to_string()),
            |h, p| registry.external_endpoint(h, p),
            &granted,
        )
    }

    fn registry() -> Registry {
        let r = Registry::new("127.0.0.1:8080".parse().unwrap());
        r.register_external("stats", "10.1.2.3", 80, "1", None, None)
            .unwrap();
        r.register_external(
            "partner",
            "partner.example",
            8000,
            "1",
            None,
            Some("report"),
        )
        .unwrap();
        r
    }

    #[test]
    fn this_host_is_reached_in_process_under_any_spelling() {
        let r = registry();
        for uri in [
            "http://127.0.0.1:8080/identity/verify",
            "http://localhost:8080/x",
            "http://LOCALHOST.:8080/x",
            "http://127.0.0.2:8080/x",
            "http://[::1]:8080/x",
            "http://[::ffff:127.0.0.1]:8080/x",
            "http://0.0.0.0:8080/_hms/keys",
        ] {
            assert_eq!(decide(uri, &r, &[]), Route::Local, "{uri}");
        }
    }

    #[test]
    fn another_host_of_the_cluster_is_a_peer() {
        let r = registry();
        assert_eq!(
            decide("http://10.9.9.9:8080/identity/verify", &r, &[]),
            Route::Peer("h2".into())
        );
        assert!(matches!(
            decide("http://10.9.9.9:8081/", &r, &[]),
            Route::Denied(_)
        ));
    }

    #[test]
    fn anything_not_registered_or_granted_is_denied() {
        let r = registry();
        for uri in [
            "http://127.0.0.1:22/",
            "http://localhost:9/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://2130706433:8081/",
            "http://10.1.2.3:81/",
            "http://example.com/",
            "https://10.1.2.3:80/",
            "ftp://10.1.2.3:80/",
        ] {
            assert!(
                matches!(decide(uri, &r, &[]), Route::Denied(_)),
                "{uri} must be denied"
            );
        }
    }

    #[test]
    fn operator_registrations_and_grants_are_forwarded_component_ones_checked() {
        let r = registry();
        assert_eq!(decide("http://10.1.2.3/q", &r, &[]), Route::Granted);
        assert_eq!(
            decide(
                "http://api.example.gov:8443/",
                &r,
                &["api.example.gov:8443"]
            ),
            Route::Granted
        );
        assert_eq!(
            decide("http://Partner.Example.:8000/", &r, &[]),
            Route::PublicOnly
        );
    }

    #[test]
    fn only_public_addresses_count_as_public() {
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
