//! Test guest (probe): `outbound-service`, routes `/outbound/...`. It makes
//! outgoing requests on the caller's instruction, so tests can check what the
//! host's outbound policy lets a component reach (SSRF: loopback, private and
//! metadata addresses, redirects into them, forbidden headers) and what it
//! may register in the service registry.
//!
//! * `POST /outbound/fetch` with
//!   `{"url": "http://host:port/path?q", "method": "GET", "headers": [["name",
//!   "value"]], "body": "...", "follow_redirects": false}` (all but `url`
//!   optional; `method` defaults to `GET`) sends that request through
//!   `wasi:http/outgoing-handler` and answers 200
//!   `{"status": <final status>, "body": "<final body, lossy UTF-8>", "hops":
//!   [<every URL requested>]}`, or 502 `{"code": "outbound_failed",
//!   "message": "<Debug of the wasi:http ErrorCode, or the setup error>",
//!   "hops": [...]}` if a request could not be set up or got no response. A
//!   header wasi:http refuses (e.g. `host`) is such a setup error, never
//!   silently dropped. With `follow_redirects`, a 301/302/303/307/308 whose
//!   `Location` is an absolute http(s) URL is followed, up to 5 redirects,
//!   each again through outgoing-handler (303 turns into a body-less GET;
//!   headers are resent as given). A URL whose scheme is not http(s) is 400.
//! * `POST /outbound/register` with `{"name": "...", "host": "...", "port":
//!   80}` calls `registry::register-service` and answers 200
//!   `{"registered": true}` or 400 `{"code": "register_failed", "message":
//!   "<Debug of the registry-error>"}`.
//!
//! Another method on these paths is 405, another path 404 (the SDK router's
//! answers).
//!
//! The host must apply its outbound policy to every request (each redirect
//! hop included) and its registry checks to every registration; this guest
//! just reports what happened.

use hms_guest::client::{self, CallError};
use hms_guest::serde_json::json;
use hms_guest::{
    Answer, Method, Params, Request, Response, Router, Service, ServiceInfo, registry,
};
use serde::Deserialize;

/// Redirects followed at most, so `hops` holds at most one URL more.
const MAX_REDIRECTS: usize = 5;

struct Outbound;

impl Service for Outbound {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "outbound-service".into(),
            routes: vec!["/outbound/...".into()],
        }
    }

    fn router() -> Router {
        Router::new()
            .post("/outbound/fetch", fetch)
            .post("/outbound/register", register)
    }
}

hms_guest::service!(Outbound);

#[derive(Deserialize)]
struct FetchRequest {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    follow_redirects: bool,
}

fn default_method() -> String {
    "GET".to_string()
}

#[derive(Deserialize)]
struct RegisterRequest {
    name: String,
    host: String,
    port: u16,
}

fn register(req: &Request, _: &Params) -> Answer {
    let body: RegisterRequest = req.json()?;
    Ok(
        match registry::register_service(&body.name, &body.host, body.port) {
            Ok(()) => Response::json(200, &json!({ "registered": true })),
            Err(e) => Response::error(400, "register_failed", format_args!("{e:?}")),
        },
    )
}

fn fetch(req: &Request, _: &Params) -> Answer {
    let fetch: FetchRequest = req.json()?;
    let mut url = Url::parse(&fetch.url).map_err(|e| Response::error(400, "bad_request", e))?;
    let mut method = fetch.method.clone();
    let mut body = fetch.body.clone();
    let mut hops = Vec::new();
    loop {
        hops.push(url.text.clone());
        let reply = match send(&method, &url, &fetch.headers, body.as_deref()) {
            Ok(reply) => reply,
            Err(message) => {
                return Ok(Response::json(
                    502,
                    &json!({ "code": "outbound_failed", "message": message, "hops": hops }),
                ));
            }
        };
        let redirect = fetch.follow_redirects
            && hops.len() <= MAX_REDIRECTS
            && matches!(reply.status, 301 | 302 | 303 | 307 | 308);
        // Only absolute http(s) locations are followed; anything else ends
        // the chain with the 3xx as the final response.
        match reply.header("location").map(Url::parse) {
            Some(Ok(next)) if redirect => {
                url = next;
                if reply.status == 303 {
                    method = default_method();
                    body = None;
                }
            }
            _ => {
                return Ok(Response::json(
                    200,
                    &json!({
                        "status": reply.status,
                        "body": reply.text(),
                        "hops": hops,
                    }),
                ));
            }
        }
    }
}

/// An absolute http(s) URL, checked before it is requested.
struct Url {
    text: String,
}

impl Url {
    fn parse(text: &str) -> Result<Url, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("not an absolute URL: {text:?}"))?;
        if !["http", "https"].contains(&scheme.to_ascii_lowercase().as_str()) {
            return Err(format!("unsupported URL scheme {scheme:?}"));
        }
        if rest.starts_with(['/', '?', '#']) || rest.is_empty() {
            return Err(format!("no host in URL: {text:?}"));
        }
        Ok(Url {
            text: text.to_string(),
        })
    }
}

/// Send one request through `wasi:http/outgoing-handler` and read the whole
/// response. Errors are the Debug form of the wasi:http `ErrorCode`, or a
/// description of what could not be set up.
fn send(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<client::ClientResponse, String> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    client::send(
        parse_method(method),
        &url.text,
        "",
        &headers,
        body.map(str::as_bytes),
    )
    .map_err(|e| match e {
        CallError::Refused(code) | CallError::Failed(code) => format!("{code:?}"),
        CallError::Body {
            code: Some(code), ..
        } => format!("{code:?}"),
        other => other.to_string(),
    })
}

/// Standard methods in any case; another name as given.
fn parse_method(method: &str) -> Method {
    match Method::from(method.to_ascii_uppercase().as_str()) {
        Method::Other(_) => Method::Other(method.to_string()),
        standard => standard,
    }
}
