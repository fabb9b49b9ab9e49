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
//! The host must apply its outbound policy to every request (each redirect
//! hop included) and its registry checks to every registration; this guest
//! just reports what happened.

use hms_guest::bindings::wasi::http::outgoing_handler;
use hms_guest::bindings::wasi::http::types::{
    self, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use hms_guest::bindings::wasi::io::streams::StreamError;
use hms_guest::serde_json::json;
use hms_guest::{Request, Response, Service, ServiceInfo, registry};
use serde::Deserialize;

/// Redirects followed at most, so `hops` holds at most one URL more.
const MAX_REDIRECTS: usize = 5;
/// Largest response body read; a longer one is an error.
const MAX_BODY: usize = 16 * 1024 * 1024;

struct Outbound;

impl Service for Outbound {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "outbound-service".into(),
            routes: vec!["/outbound/...".into()],
        }
    }

    fn handle(req: Request) -> Response {
        match (req.method.as_str(), req.path_only()) {
            ("POST", "/outbound/fetch") => fetch(&req),
            ("POST", "/outbound/register") => register(&req),
            (_, "/outbound/fetch" | "/outbound/register") => {
                Response::error(405, "method_not_allowed", "use POST")
            }
            _ => Response::error(404, "not_found", "no such route"),
        }
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

fn register(req: &Request) -> Response {
    let body: RegisterRequest = match req.json() {
        Ok(body) => body,
        Err(bad_request) => return bad_request,
    };
    match registry::register_service(&body.name, &body.host, body.port) {
        Ok(()) => Response::json(200, &json!({ "registered": true })),
        Err(e) => Response::error(400, "register_failed", format_args!("{e:?}")),
    }
}

fn fetch(req: &Request) -> Response {
    let fetch: FetchRequest = match req.json() {
        Ok(fetch) => fetch,
        Err(bad_request) => return bad_request,
    };
    let mut url = match Url::parse(&fetch.url) {
        Ok(url) => url,
        Err(message) => return Response::error(400, "bad_request", message),
    };
    let mut method = fetch.method.clone();
    let mut body = fetch.body.clone();
    let mut hops = Vec::new();
    loop {
        hops.push(url.text.clone());
        let reply = match send(&method, &url, &fetch.headers, body.as_deref()) {
            Ok(reply) => reply,
            Err(message) => {
                return Response::json(
                    502,
                    &json!({ "code": "outbound_failed", "message": message, "hops": hops }),
                );
            }
        };
        let redirect = fetch.follow_redirects
            && hops.len() <= MAX_REDIRECTS
            && matches!(reply.status, 301 | 302 | 303 | 307 | 308);
        // Only absolute http(s) locations are followed; anything else ends
        // the chain with the 3xx as the final response.
        match reply.location.as_deref().map(Url::parse) {
            Some(Ok(next)) if redirect => {
                url = next;
                if reply.status == 303 {
                    method = default_method();
                    body = None;
                }
            }
            _ => {
                return Response::json(
                    200,
                    &json!({
                        "status": reply.status,
                        "body": String::from_utf8_lossy(&reply.body),
                        "hops": hops,
                    }),
                );
            }
        }
    }
}

/// An absolute http(s) URL split the way wasi:http wants it.
struct Url {
    text: String,
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(text: &str) -> Result<Url, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("not an absolute URL: {text:?}"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(format!("unsupported URL scheme {scheme:?}")),
        };
        let rest = rest.split_once('#').map_or(rest, |(rest, _fragment)| rest);
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(format!("no host in URL: {text:?}"));
        }
        Ok(Url {
            text: text.to_string(),
            scheme,
            authority: authority.to_string(),
            path_with_query: if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            },
        })
    }
}

/// What came back for one request.
struct Reply {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

/// Send one request through `wasi:http/outgoing-handler` and read the whole
/// response. Errors are the Debug form of the wasi:http `ErrorCode`, or a
/// description of what could not be set up.
fn send(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Reply, String> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| format!("cannot set header {name:?}: {e:?}"))?;
    }
    let data = body.unwrap_or_default().as_bytes();
    if body.is_some()
        && !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-length"))
    {
        fields
            .set("content-length", &[data.len().to_string().into_bytes()])
            .map_err(|e| format!("cannot set header \"content-length\": {e:?}"))?;
    }

    let request = OutgoingRequest::new(fields);
    request
        .set_method(&parse_method(method))
        .map_err(|()| format!("invalid method {method:?}"))?;
    request
        .set_scheme(Some(&url.scheme))
        .map_err(|()| format!("invalid scheme in {:?}", url.text))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| format!("invalid authority {:?}", url.authority))?;
    request
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| format!("invalid path {:?}", url.path_with_query))?;
    let outgoing_body = request
        .body()
        .map_err(|()| "request body already taken".to_string())?;

    // Hand the request over first, then stream the body. If the body cannot
    // be written the response future says why.
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let _ = write_body(outgoing_body, data);

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        Some(Err(())) | None => return Err("response already taken or not ready".to_string()),
    };
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .into_iter()
        .next()
        .and_then(|value| String::from_utf8(value).ok());
    let body = read_body(
        response
            .consume()
            .map_err(|()| "response body already consumed".to_string())?,
    )?;
    Ok(Reply {
        status,
        location,
        body,
    })
}

fn parse_method(method: &str) -> Method {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        _ => Method::Other(method.to_string()),
    }
}

fn write_body(body: OutgoingBody, data: &[u8]) -> Result<(), String> {
    {
        let stream = body
            .write()
            .map_err(|()| "body stream already taken".to_string())?;
        // blocking-write-and-flush accepts at most 4096 bytes per call.
        for chunk in data.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing body failed: {e:?}"))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))
}

fn read_body(body: IncomingBody) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    {
        // The stream is a child of the body and must be dropped first.
        let stream = body
            .stream()
            .map_err(|()| "response body stream already taken".to_string())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(match types::http_error_code(&e) {
                        Some(code) => format!("{code:?}"),
                        None => format!("reading response body failed: {}", e.to_debug_string()),
                    });
                }
            }
            if data.len() > MAX_BODY {
                return Err(format!("response body larger than {MAX_BODY} bytes"));
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(data)
}
