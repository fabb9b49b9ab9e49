//! Routing requests to handlers by method and path.
//!
//! A pattern is a path of `/`-separated segments, each one of
//!
//! * a literal, matched exactly (`identity`);
//! * a parameter `{name}`, matching any one non-empty segment, available to
//!   the handler as `params["name"]`;
//!
//! optionally ending in `/...`, which matches the path so far and anything
//! below it (`/files/...` matches `/files`, `/files/` and `/files/a/b`); what
//! it matched is [`Params::rest`]. Matching is on the path without the query,
//! exactly as sent: nothing is percent-decoded, and `/a/` is not `/a`.
//!
//! When several patterns match a path, the most specific one whose method
//! matches wins: segment by segment, a literal beats a parameter, and a
//! parameter beats `/...`; between equals, the first registered. A path no
//! pattern matches is a 404 `not_found` (`no route for <path>`); a path some
//! pattern matches, but none for the request's method, is a 405
//! `method_not_allowed` with an `Allow` header naming those patterns'
//! methods in the order they were registered (`use <methods>`). `HEAD` is not
//! implied by `GET`, nor `OPTIONS` answered: register them if wanted.

use std::fmt::Write;
use std::ops::Index;

use crate::{IntoResponse, Method, Request, Response};

type Handler = Box<dyn Fn(&Request, &Params) -> Response>;

/// Handlers by method and path pattern (see the [module docs](self)).
///
/// ```ignore
/// Router::new()
///     .post("/identity/verify", verify)
///     .get("/identity/citizens/{id}", show_citizen)
///     .put("/identity/citizens/{id}", put_citizen)
/// ```
///
/// A handler takes `(&Request, &Params)` and returns a [`Response`] or a
/// `Result` of responses such as [`Answer`](crate::Answer).
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

struct Route {
    method: Method,
    pattern: Pattern,
    handler: Handler,
}

/// What a pattern's parameters (and its `/...`) matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    named: Vec<(String, String)>,
    rest: Option<String>,
}

impl Params {
    /// The segment the parameter `{name}` matched.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What a trailing `/...` matched, without its leading `/`: `"a/b"` for
    /// `/files/a/b` against `/files/...`, `""` for `/files`. `None` if the
    /// pattern has no `/...`.
    pub fn rest(&self) -> Option<&str> {
        self.rest.as_deref()
    }
}

/// `params["name"]`: the segment `{name}` matched; panics if the pattern has
/// no such parameter.
impl Index<&str> for Params {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("the route has no parameter {{{name}}}"))
    }
}

impl Router {
    /// A router without routes: it answers every request 404.
    pub fn new() -> Router {
        Router::default()
    }

    /// Route `method` requests for paths matching `pattern` to `handler`.
    ///
    /// Panics if `pattern` is malformed: not starting with `/`, a `{` or `}`
    /// that is not a whole `{name}` segment, `...` anywhere but at the end,
    /// or a parameter name used twice.
    pub fn route<H, R>(mut self, method: Method, pattern: &str, handler: H) -> Router
    where
        H: Fn(&Request, &Params) -> R + 'static,
        R: IntoResponse,
    {
        self.routes.push(Route {
            method,
            pattern: Pattern::parse(pattern),
            handler: Box::new(move |req, params| handler(req, params).into_response()),
        });
        self
    }

    /// [`Router::route`] for `GET`.
    pub fn get<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(&Request, &Params) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Method::Get, pattern, handler)
    }

    /// [`Router::route`] for `HEAD`.
    pub fn head<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(&Request, &Params) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Method::Head, pattern, handler)
    }

    /// [`Router::route`] for `POST`.
    pub fn post<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(&Request, &Params) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Method::Post, pattern, handler)
    }

    /// [`Router::route`] for `PUT`.
    pub fn put<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(&Request, &Params) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Method::Put, pattern, handler)
    }

    /// [`Router::route`] for `DELETE`.
    pub fn delete<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(&Request, &Params) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Method::Delete, pattern, handler)
    }

    /// [`Router::route`] for `PATCH`.
    pub fn patch<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(&Request, &Params) -> R + 'static,
        R: IntoResponse,
    {
        self.route(Method::Patch, pattern, handler)
    }

    /// Answer `req` with the handler of the best matching route, or with a
    /// 404 or 405 (see the [module docs](self)).
    pub fn handle(&self, req: &Request) -> Response {
        let path = req.path_only();
        // A path not in origin form (e.g. `*`) matches nothing.
        let segments: Option<Vec<&str>> = path.strip_prefix('/').map(|p| p.split('/').collect());
        let mut best: Option<(&Route, Params)> = None;
        let mut allowed: Vec<&Method> = Vec::new();
        for route in &self.routes {
            let Some(params) = segments.as_ref().and_then(|s| route.pattern.matches(s)) else {
                continue;
            };
            if !allowed.contains(&&route.method) {
                allowed.push(&route.method);
            }
            let better = best
                .as_ref()
                .is_none_or(|(b, _)| route.pattern.rank > b.pattern.rank);
            if route.method == req.method && better {
                best = Some((route, params));
            }
        }
        match best {
            Some((route, params)) => (route.handler)(req, &params),
            None if allowed.is_empty() => {
                Response::error(404, "not_found", format_args!("no route for {path}"))
            }
            None => {
                let mut allow = String::new();
                for (i, method) in allowed.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    let _ = write!(allow, "{sep}{method}");
                }
                Response::error(405, "method_not_allowed", format_args!("use {allow}"))
                    .with_header("allow", allow)
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route pattern.
struct Pattern {
    segments: Vec<Segment>,
    /// Ends in `/...`.
    rest: bool,
    /// Specificity, compared lexicographically: per segment 2 for a literal
    /// and 1 for a parameter, then 0 for `/...` or 3 for an exact end.
    rank: Vec<u8>,
}

impl Pattern {
    fn parse(pattern: &str) -> Pattern {
        let Some(body) = pattern.strip_prefix('/') else {
            panic!("route pattern {pattern:?} must start with '/'");
        };
        let (body, rest) = if body == "..." {
            (None, true)
        } else if let Some(body) = body.strip_suffix("/...") {
            (Some(body), true)
        } else {
            (Some(body), false)
        };
        let mut segments = Vec::new();
        for segment in body.into_iter().flat_map(|b| b.split('/')) {
            let parsed = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !name.is_empty() && !name.contains(['{', '}']) => {
                    if segments.contains(&Segment::Param(name.to_string())) {
                        panic!("route pattern {pattern:?} names {{{name}}} twice");
                    }
                    Segment::Param(name.to_string())
                }
                _ if segment.contains(['{', '}']) || segment == "..." => {
                    panic!("route pattern {pattern:?} has a malformed segment {segment:?}")
                }
                _ => Segment::Literal(segment.to_string()),
            };
            segments.push(parsed);
        }
        let mut rank: Vec<u8> = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 2,
                Segment::Param(_) => 1,
            })
            .collect();
        rank.push(if rest { 0 } else { 3 });
        Pattern {
            segments,
            rest,
            rank,
        }
    }

    /// The parameters, if `path` (the request path's segments, after the
    /// leading `/`) matches.
    fn matches(&self, path: &[&str]) -> Option<Params> {
        let fits = if self.rest {
            path.len() >= self.segments.len()
        } else {
            path.len() == self.segments.len()
        };
        if !fits {
            return None;
        }
        let mut params = Params::default();
        for (segment, &value) in self.segments.iter().zip(path) {
            match segment {
                Segment::Literal(literal) if literal == value => {}
                Segment::Param(name) if !value.is_empty() => {
                    params.named.push((name.clone(), value.to_string()));
                }
                _ => return None,
            }
        }
        if self.rest {
            params.rest = Some(path[self.segments.len()..].join("/"));
        }
        Some(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request {
        Request {
            method,
            path: path.into(),
            ..Request::default()
        }
    }

    fn body(response: &Response) -> serde_json::Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    /// A handler answering 200 with its name and what it was given.
    fn echo(name: &'static str) -> impl Fn(&Request, &Params) -> Response {
        move |req, params| {
            Response::json(
                200,
                &serde_json::json!({
                    "route": name,
                    "method": req.method.as_str(),
                    "named": params.named,
                    "rest": params.rest(),
                }),
            )
        }
    }

    fn router() -> Router {
        Router::new()
            .post("/identity/verify", echo("verify"))
            .get("/identity/citizens/{id}", echo("show"))
            .put("/identity/citizens/{id}", echo("put"))
            .get("/identity/citizens/new", echo("new"))
            .delete("/files/...", echo("files"))
            .get("/files/{name}", echo("file"))
            .route(Method::Other("PURGE".into()), "/", echo("root"))
            .get("/pairs/{a}/{b}", echo("pair"))
    }

    fn call(method: Method, path: &str) -> Response {
        router().handle(&request(method, path))
    }

    #[test]
    fn literal_paths_match_exactly() {
        let r = call(Method::Post, "/identity/verify?trace=1");
        assert_eq!(r.status, 200);
        assert_eq!(body(&r)["route"], "verify");
        assert_eq!(body(&r)["rest"], serde_json::Value::Null);
        assert_eq!(
            body(&call(Method::Other("PURGE".into()), "/"))["route"],
            "root"
        );
        for path in [
            "/identity/verify/",
            "/identity",
            "/identity/verify/x",
            "/Identity/verify",
            "identity/verify",
            "",
            "*",
        ] {
            assert_eq!(call(Method::Post, path).status, 404, "{path}");
        }
    }

    #[test]
    fn parameters_capture_one_segment() {
        let r = call(Method::Get, "/identity/citizens/C12345");
        assert_eq!(body(&r)["route"], "show");
        assert_eq!(body(&r)["named"], serde_json::json!([["id", "C12345"]]));
        let r = call(Method::Put, "/identity/citizens/C%2012?x=y");
        assert_eq!(body(&r)["route"], "put");
        assert_eq!(body(&r)["named"], serde_json::json!([["id", "C%2012"]]));
        let r = call(Method::Get, "/pairs/1/2");
        assert_eq!(
            body(&r)["named"],
            serde_json::json!([["a", "1"], ["b", "2"]])
        );
        // Neither an empty segment nor two segments.
        for path in ["/identity/citizens/", "/identity/citizens/a/b", "/pairs//2"] {
            assert_eq!(call(Method::Get, path).status, 404, "{path}");
        }

        let params = Params {
            named: vec![("id".into(), "C1".into())],
            rest: None,
        };
        assert_eq!(&params["id"], "C1");
        assert_eq!(params.get("other"), None);
    }

    #[test]
    fn literals_beat_parameters_beat_rest() {
        // Registered after {id}, still preferred.
        assert_eq!(
            body(&call(Method::Get, "/identity/citizens/new"))["route"],
            "new"
        );
        assert_eq!(body(&call(Method::Get, "/files/a"))["route"], "file");
        // Only the rest pattern is registered for DELETE.
        let r = call(Method::Delete, "/files/a");
        assert_eq!(body(&r)["route"], "files");
        assert_eq!(body(&r)["rest"], "a");
    }

    #[test]
    fn rest_matches_the_prefix_and_below() {
        for (path, rest) in [
            ("/files", ""),
            ("/files/", ""),
            ("/files/a", "a"),
            ("/files/a/b/", "a/b/"),
        ] {
            let r = call(Method::Delete, path);
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(body(&r)["rest"], rest, "{path}");
        }
        assert_eq!(call(Method::Delete, "/filesystem").status, 404);

        let all = Router::new().get("/...", echo("all"));
        for path in ["/", "/a", "/a/b"] {
            assert_eq!(all.handle(&request(Method::Get, path)).status, 200);
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        let r = call(Method::Get, "/nowhere?x=1");
        assert_eq!(r.status, 404);
        assert_eq!(
            body(&r),
            serde_json::json!({"code": "not_found", "message": "no route for /nowhere"})
        );
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(Router::new().handle(&request(Method::Get, "/")).status, 404);
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        let r = call(Method::Get, "/identity/verify");
        assert_eq!(r.status, 405);
        assert_eq!(
            body(&r),
            serde_json::json!({"code": "method_not_allowed", "message": "use POST"})
        );
        assert_eq!(header(&r, "allow"), Some("POST"));

        // Registration order, each method once; HEAD is not implied by GET.
        let r = call(Method::Head, "/identity/citizens/C1");
        assert_eq!(r.status, 405);
        assert_eq!(header(&r, "allow"), Some("GET, PUT"));
        assert_eq!(body(&r)["message"], "use GET, PUT");
        let r = call(Method::Delete, "/identity/citizens/new");
        assert_eq!(header(&r, "allow"), Some("GET, PUT"));

        // Every pattern matching the path counts.
        let r = call(Method::Put, "/files/a");
        assert_eq!(header(&r, "allow"), Some("DELETE, GET"));
        // Methods compare by name.
        let r = call(Method::Other("POST".into()), "/identity/verify");
        assert_eq!(r.status, 200);
    }

    #[test]
    fn handlers_may_answer_early_with_errors() {
        fn strict(req: &Request, params: &Params) -> crate::Answer {
            #[derive(serde::Deserialize)]
            struct Body {
                n: u32,
            }
            let body: Body = req.json()?;
            if &params["id"] == "x" {
                return Err(Response::error(403, "forbidden", "not x"));
            }
            Ok(Response::json(200, &body.n))
        }
        let router = Router::new().post("/n/{id}", strict);
        let mut req = request(Method::Post, "/n/a");
        req.body = br#"{"n": 7}"#.to_vec();
        assert_eq!(router.handle(&req).body, b"7");
        req.path = "/n/x".into();
        assert_eq!(router.handle(&req).status, 403);
        req.body = b"{".to_vec();
        assert_eq!(router.handle(&req).status, 400);
    }

    #[test]
    #[should_panic(expected = "must start with '/'")]
    fn patterns_start_with_a_slash() {
        Router::new().get("identity", echo("x"));
    }

    #[test]
    fn malformed_patterns_panic() {
        for pattern in ["/a/{}", "/a/{id", "/a/x{id}", "/.../a", "/a/{id}/{id}"] {
            let result = std::panic::catch_unwind(|| Pattern::parse(pattern));
            assert!(result.is_err(), "{pattern}");
        }
        assert!(Pattern::parse("/").segments == vec![Segment::Literal(String::new())]);
    }
}
