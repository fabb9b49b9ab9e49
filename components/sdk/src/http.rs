//! Buffered HTTP request and response values.

use std::fmt::Display;

use serde::{Serialize, de::DeserializeOwned};

use crate::Method;

/// An incoming request, read in full.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: Method,
    /// Path and query as sent, e.g. `/identity/verify?x=1`.
    pub path: String,
    /// Header names (lower-case, as wasi:http delivers them) and raw values.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query string.
    pub fn path_only(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(&self.path, |(path, _)| path)
    }

    /// The first value of a header (name matched case-insensitively), if it
    /// is present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// Parse the body as JSON; on failure the error is a ready 400
    /// `bad_request` response.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Response> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Response::error(400, "bad_request", format_args!("invalid JSON body: {e}"))
        })
    }
}

/// A response to send, body included.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with the given status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `value` serialized as JSON, with `content-type: application/json`.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(e) => Response::error(500, "internal", format_args!("cannot encode response: {e}")),
        }
    }

    /// The project-wide error shape: `{"code":"<code>","message":"<message>"}`.
    /// `code` is a stable, machine-readable snake_case identifier.
    pub fn error(status: u16, code: &str, message: impl Display) -> Self {
        Response::json(
            status,
            &serde_json::json!({ "code": code, "message": message.to_string() }),
        )
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Replace the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A handler's answer: `Err` is a response too, so `?` can answer early
/// (e.g. with the 400 of [`Request::json`]). `Answer<T>` suits helpers that
/// produce a `T` or the response to give up with.
pub type Answer<T = Response> = Result<T, Response>;

/// What a handler may return: a [`Response`], or a `Result` whose both sides
/// turn into one (such as [`Answer`]).
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<E: Into<Response>> IntoResponse for Result<Response, E> {
    fn into_response(self) -> Response {
        self.unwrap_or_else(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: Method::Post,
            path: "/identity/verify?x=1".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.into(),
        }
    }

    #[test]
    fn path_and_headers() {
        let req = request(&[("authorization", "Bearer abc")], "");
        assert_eq!(req.path_only(), "/identity/verify");
        assert_eq!(req.header("Authorization"), Some("Bearer abc"));
        assert_eq!(req.bearer_token(), Some("abc"));
        assert_eq!(
            request(&[("authorization", "Basic abc")], "").bearer_token(),
            None
        );
        assert_eq!(
            request(&[("authorization", "Bearer ")], "").bearer_token(),
            None
        );
        assert_eq!(request(&[], "").bearer_token(), None);
    }

    #[test]
    fn json_body_and_errors() {
        #[derive(Debug, serde::Deserialize)]
        struct Id {
            id: String,
        }
        assert_eq!(
            request(&[], r#"{"id":"C1"}"#).json::<Id>().unwrap().id,
            "C1"
        );
        let bad = request(&[], "{").json::<Id>().unwrap_err();
        assert_eq!(bad.status, 400);
        let body: serde_json::Value = serde_json::from_slice(&bad.body).unwrap();
        assert_eq!(body["code"], "bad_request");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON body")
        );
        assert!(
            bad.headers
                .contains(&("content-type".into(), b"application/json".to_vec()))
        );
    }
}
