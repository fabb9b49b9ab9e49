//! Outgoing HTTP calls through `wasi:http/outgoing-handler`.
//!
//! Every call is made in full: the request body is sent whole, and the
//! response body read whole (up to 16 MiB). Any HTTP status, 4xx and 5xx
//! included, is an `Ok(`[`ClientResponse`]`)`; a [`CallError`] means there
//! was no response to read.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Method;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{Fields, OutgoingRequest, Scheme};
use crate::body::{self, BodyError};

/// The wasi:http error code of a call that got no response, e.g.
/// `HttpRequestDenied` when the host's outbound policy refused it.
pub use crate::bindings::wasi::http::types::ErrorCode;

/// The answer to an outgoing call, body included.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    /// Header names (lower-case, as wasi:http delivers them) and raw values.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header (name matched case-insensitively), if it
    /// is present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Why an outgoing call got no response.
#[derive(Debug)]
pub enum CallError {
    /// The URL is not absolute (`scheme://host[:port][/path]`) or wasi:http
    /// refuses one of its parts.
    InvalidUrl(String),
    /// The method or a header was refused by wasi:http, or the body could
    /// not be encoded, before anything was sent.
    InvalidRequest(String),
    /// `outgoing-handler` refused the request outright, e.g. with
    /// `HttpRequestDenied` from the host's outbound policy.
    Refused(ErrorCode),
    /// The request was handed over but no response came back: the
    /// connection failed or was refused, DNS failed, the destination is
    /// prohibited, a timeout...
    Failed(ErrorCode),
    /// The response body could not be read (or the request body written),
    /// with the wasi:http error behind it when the stream names one.
    Body {
        code: Option<ErrorCode>,
        message: String,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::InvalidUrl(message) | CallError::InvalidRequest(message) => {
                f.write_str(message)
            }
            CallError::Refused(code) => write!(f, "request refused: {code:?}"),
            CallError::Failed(code) => write!(f, "request failed: {code:?}"),
            CallError::Body { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for CallError {}

impl From<BodyError> for CallError {
    fn from(e: BodyError) -> CallError {
        CallError::Body {
            code: e.code,
            message: e.message,
        }
    }
}

/// Send `method` to `url` + `path` with `headers` and, if given, `body`,
/// and read the whole response.
///
/// `url` is a base URL such as a registry endpoint's `http://127.0.0.1:8080`;
/// a path in it is kept as a prefix of `path` (e.g. `/identity/verify`,
/// which may carry a query). With an empty `path`, `url` is used as it is,
/// query included. A body gets a `content-length` unless `headers` has one.
/// A header wasi:http forbids (such as `host`) is an
/// [`CallError::InvalidRequest`], never silently dropped.
pub fn send(
    method: Method,
    url: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<ClientResponse, CallError> {
    let target = Target::new(url, path)?;

    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).map_err(|e| {
            CallError::InvalidRequest(format!("invalid request header {name:?}: {e:?}"))
        })?;
    }
    let has_length = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
    if let Some(data) = body
        && !has_length
    {
        fields
            .set("content-length", &[data.len().to_string().into_bytes()])
            .map_err(|e| CallError::InvalidRequest(format!("cannot set content-length: {e:?}")))?;
    }

    let request = OutgoingRequest::new(fields);
    request
        .set_method(&(&method).into())
        .map_err(|()| CallError::InvalidRequest(format!("invalid method {method}")))?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| CallError::InvalidUrl(format!("invalid scheme in {url}")))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| CallError::InvalidUrl(format!("invalid authority: {}", target.authority)))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| CallError::InvalidUrl(format!("invalid path: {}", target.path_with_query)))?;
    let Ok(outgoing_body) = request.body() else {
        unreachable!("fresh request has a body")
    };

    // Hand the request over first, then stream the body: the host may only
    // start reading the body once it has the request.
    let future = outgoing_handler::handle(request, None).map_err(CallError::Refused)?;
    // If the body cannot be written, either the request failed (and the
    // response future says why) or the server answered without reading it
    // all; either way the response future has the outcome.
    let _ = body::write_all(outgoing_body, body.unwrap_or_default());

    // Wait (without spinning) until the response head has arrived.
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(CallError::Failed(code)),
        Some(Err(())) | None => {
            return Err(CallError::Failed(ErrorCode::InternalError(Some(
                "response already taken or not ready".into(),
            ))));
        }
    };
    let status = response.status();
    let headers = response.headers().entries();
    let Ok(incoming_body) = response.consume() else {
        unreachable!("fresh response has a body")
    };
    let body = body::read_to_end(incoming_body)?;
    Ok(ClientResponse {
        status,
        headers,
        body,
    })
}

/// [`send`] `body` as JSON (`content-type: application/json`), with
/// `Authorization: Bearer <token>` if `bearer` is given.
pub fn send_json(
    method: Method,
    url: &str,
    path: &str,
    body: &impl Serialize,
    bearer: Option<&str>,
) -> Result<ClientResponse, CallError> {
    let data = serde_json::to_vec(body)
        .map_err(|e| CallError::InvalidRequest(format!("cannot encode request body: {e}")))?;
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(value) = &authorization {
        headers.push(("authorization", value.as_str()));
    }
    send(method, url, path, &headers, Some(&data))
}

/// POST `body` as JSON: [`send_json`] with [`Method::Post`].
pub fn post_json(
    url: &str,
    path: &str,
    body: &impl Serialize,
    bearer: Option<&str>,
) -> Result<ClientResponse, CallError> {
    send_json(Method::Post, url, path, body, bearer)
}

/// GET without a body, with `Authorization: Bearer <token>` if `bearer` is
/// given.
pub fn get(url: &str, path: &str, bearer: Option<&str>) -> Result<ClientResponse, CallError> {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    send(Method::Get, url, path, &headers, None)
}

/// Where a call goes, split the way wasi:http wants it.
#[derive(Debug)]
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn new(url: &str, path: &str) -> Result<Target, CallError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| CallError::InvalidUrl(format!("not an absolute URL: {url}")))?;
        let rest = rest.split_once('#').map_or(rest, |(rest, _fragment)| rest);
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(CallError::InvalidUrl(format!("no host in URL: {url}")));
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        let path_with_query = if path.is_empty() {
            if tail.starts_with('/') {
                tail.to_string()
            } else {
                format!("/{tail}")
            }
        } else {
            let base = tail.split_once('?').map_or(tail, |(base, _query)| base);
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                path.trim_start_matches('/')
            )
        };
        Ok(Target {
            scheme,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, path: &str) -> (String, String, String) {
        let t = Target::new(url, path).unwrap();
        let scheme = match t.scheme {
            Scheme::Http => "http".to_string(),
            Scheme::Https => "https".to_string(),
            Scheme::Other(other) => other,
        };
        (scheme, t.authority, t.path_with_query)
    }

    fn strings(parts: (&str, &str, &str)) -> (String, String, String) {
        (parts.0.into(), parts.1.into(), parts.2.into())
    }

    #[test]
    fn urls_and_paths_join() {
        assert_eq!(
            target("http://127.0.0.1:8080", "/identity/verify"),
            strings(("http", "127.0.0.1:8080", "/identity/verify"))
        );
        assert_eq!(
            target("HTTPS://svc.example/base/", "identity/verify?x=1"),
            strings(("https", "svc.example", "/base/identity/verify?x=1"))
        );
        assert_eq!(
            target("http://h/base?q=1#frag", "/p"),
            strings(("http", "h", "/base/p"))
        );
        assert_eq!(
            target("http://h:1/ok?q=1#frag", ""),
            strings(("http", "h:1", "/ok?q=1"))
        );
        assert_eq!(target("http://h?q", ""), strings(("http", "h", "/?q")));
        assert_eq!(target("http://h", ""), strings(("http", "h", "/")));
        assert_eq!(target("ftp://h/x", ""), strings(("ftp", "h", "/x")));
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in ["127.0.0.1:8080", "http://", "http:///path", "/relative"] {
            match Target::new(url, "/x") {
                Err(CallError::InvalidUrl(_)) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn errors_say_what_failed() {
        let e = CallError::Refused(ErrorCode::HttpRequestDenied);
        assert!(e.to_string().starts_with("request refused: "), "{e}");
        assert!(e.to_string().contains("HttpRequestDenied"), "{e}");
        let e = CallError::Failed(ErrorCode::ConnectionRefused);
        assert!(e.to_string().starts_with("request failed: "), "{e}");
        assert!(e.to_string().contains("ConnectionRefused"), "{e}");
        let response = ClientResponse {
            status: 404,
            headers: vec![("Content-Type".into(), b"application/json".to_vec())],
            body: br#"{"status":"not_found"}"#.to_vec(),
        };
        assert!(!response.is_success());
        assert_eq!(response.header("content-type"), Some("application/json"));
        let v: serde_json::Value = response.json().unwrap();
        assert_eq!(v["status"], "not_found");
        assert_eq!(response.text(), r#"{"status":"not_found"}"#);
    }
}
