//! Outgoing HTTP calls through `wasi:http/outgoing-handler`.

use serde::Serialize;

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
use crate::body;

/// POST `body` as JSON to `url` + `path` and return the status and whole
/// response body.
///
/// `url` is a base URL such as a registry endpoint's `http://127.0.0.1:8080`
/// (a path in it is kept as a prefix); `path` is e.g. `/identity/verify`.
/// With `bearer`, the request carries `Authorization: Bearer <token>`.
/// Transport failures (no connection, refused request, broken body) are
/// `Err`; any HTTP status, 4xx and 5xx included, is `Ok`.
pub fn post_json(
    url: &str,
    path: &str,
    body: &impl Serialize,
    bearer: Option<&str>,
) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not an absolute URL: {url}"))?;
    let (authority, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(format!("no host in URL: {url}"));
    }
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let path = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let data = serde_json::to_vec(body).map_err(|e| format!("cannot encode request body: {e}"))?;

    let mut headers = vec![
        ("content-type".to_string(), b"application/json".to_vec()),
        (
            "content-length".to_string(),
            data.len().to_string().into_bytes(),
        ),
    ];
    if let Some(token) = bearer {
        headers.push((
            "authorization".to_string(),
            format!("Bearer {token}").into_bytes(),
        ));
    }
    let headers =
        Fields::from_list(&headers).map_err(|e| format!("invalid request header: {e:?}"))?;

    let request = OutgoingRequest::new(headers);
    request
        .set_method(&Method::Post)
        .map_err(|()| "invalid method")?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("invalid authority: {authority}"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| format!("invalid path: {path}"))?;
    let Ok(outgoing_body) = request.body() else {
        unreachable!("fresh request has a body")
    };

    // Hand the request over first, then stream the body: the host may only
    // start reading the body once it has the request.
    let future =
        outgoing_handler::handle(request, None).map_err(|e| format!("request refused: {e:?}"))?;
    // If the body cannot be written, either the request failed (and the
    // response future says why) or the server answered without reading it
    // all; either way the response future has the outcome.
    let _ = body::write_all(outgoing_body, &data);

    // Wait (without spinning) until the response head has arrived.
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(format!("request failed: {e:?}")),
        Some(Err(())) | None => return Err("response already taken or not ready".to_string()),
    };
    let status = response.status();
    let data = body::read_to_end(
        response
            .consume()
            .map_err(|()| "response body already consumed")?,
    )?;
    Ok((status, data))
}
