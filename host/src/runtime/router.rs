//! Routing is pure code: a request path maps to the service that serves it.
//! No wasm here, so every rule is unit-tested directly.

use std::fmt;

/// Path prefix reserved for Core's own HTTP API; no component may claim it.
pub const RESERVED_PREFIX: &str = crate::api::paths::PREFIX;

/// One route a service serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `/a/b`: exactly that path.
    Exact(String),
    /// `/a/...`: `/a` and everything below it; `/...` is everything.
    Prefix(String),
}

/// Why a route was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("route {0:?} must start with '/'")]
    NotAbsolute(String),
    #[error(
        "route {0:?} is invalid: only a trailing '/...' may be a wildcard, with no '?', '#', '*', '//' or '..'"
    )]
    Invalid(String),
    #[error("route {0:?} is reserved for the host's Core API")]
    Reserved(String),
    #[error("route {route:?} is already served by {owner}")]
    Conflict { route: String, owner: String },
}

impl Pattern {
    /// Parses `/exact/path` or `/prefix/...`.
    pub fn parse(route: &str) -> Result<Pattern, RouteError> {
        if !route.starts_with('/') {
            return Err(RouteError::NotAbsolute(route.to_string()));
        }
        let (base, prefix) = match route.strip_suffix("/...") {
            Some(base) => (base, true),
            None => (route, false),
        };
        let base = if base.len() > 1 {
            base.trim_end_matches('/')
        } else {
            base
        };
        let bad = base.contains(['?', '#', '*', ' '])
            || base.contains("//")
            || base.contains("...")
            || base.split('/').any(|seg| seg == "..");
        if bad {
            return Err(RouteError::Invalid(route.to_string()));
        }
        let reserved = base == RESERVED_PREFIX || base.starts_with(&format!("{RESERVED_PREFIX}/"));
        if reserved {
            return Err(RouteError::Reserved(route.to_string()));
        }
        Ok(if prefix {
            Pattern::Prefix(base.to_string())
        } else {
            Pattern::Exact(base.to_string())
        })
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(p) => path == p,
            Pattern::Prefix(p) => {
                p.is_empty()
                    || path == p
                    || (path.starts_with(p.as_str()) && path.as_bytes()[p.len()] == b'/')
            }
        }
    }

    /// The part of `path` below this prefix route (`/a/...` takes `/a/b` to
    /// `/b` and `/a` to `/`), if it is a prefix route `path` matches.
    pub fn strip<'a>(&self, path: &'a str) -> Option<&'a str> {
        match self {
            Pattern::Prefix(p) if self.matches(path) => Some(
                path.get(p.len()..)
                    .filter(|rest| !rest.is_empty())
                    .unwrap_or("/"),
            ),
            _ => None,
        }
    }

    /// Longer, exact routes win over shorter or wildcard ones.
    fn specificity(&self) -> (usize, bool) {
        match self {
            Pattern::Exact(p) => (p.len(), true),
            Pattern::Prefix(p) => (p.len(), false),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(p) => f.write_str(p),
            Pattern::Prefix(p) => write!(f, "{p}/..."),
        }
    }
}

/// Routes of every deployed service, most specific first.
#[derive(Clone, Debug)]
pub struct RouteTable<T> {
    routes: Vec<(Pattern, String, T)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<T: Clone> RouteTable<T> {
    /// Adds `pattern` for service `owner`; a pattern already owned by another
    /// service is a conflict (two services may not both claim `/x/...`).
    pub fn add(&mut self, pattern: Pattern, owner: &str, target: T) -> Result<(), RouteError> {
        if let Some((_, other, _)) = self.routes.iter().find(|(p, _, _)| *p == pattern) {
            return Err(RouteError::Conflict {
                route: pattern.to_string(),
                owner: other.clone(),
            });
        }
        self.routes.push((pattern, owner.to_string(), target));
        self.routes
            .sort_by_key(|(p, _, _)| std::cmp::Reverse(p.specificity()));
        Ok(())
    }

    /// Removes every route of `owner`.
    pub fn remove_owner(&mut self, owner: &str) {
        self.routes.retain(|(_, o, _)| o != owner);
    }

    /// The target serving `path` (query string ignored), if any.
    pub fn lookup(&self, path: &str) -> Option<&T> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        self.routes
            .iter()
            .find(|(p, _, _)| p.matches(path))
            .map(|(_, _, t)| t)
    }

    /// Every route as `(pattern, owner)`.
    pub fn iter(&self) -> impl Iterator<Item = (&Pattern, &str)> {
        self.routes.iter().map(|(p, o, _)| (p, o.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable<String> {
        let mut t = RouteTable::default();
        for (r, owner) in routes {
            t.add(Pattern::parse(r).unwrap(), owner, owner.to_string())
                .unwrap();
        }
        t
    }

    #[test]
    fn a_prefix_route_strips_itself_from_the_path() {
        let p = Pattern::parse("/echo-svc/...").unwrap();
        assert_eq!(p.strip("/echo-svc/echo"), Some("/echo"));
        assert_eq!(p.strip("/echo-svc"), Some("/"));
        assert_eq!(p.strip("/echo-svc/"), Some("/"));
        assert_eq!(p.strip("/echo-svcx"), None);
        assert_eq!(Pattern::parse("/...").unwrap().strip("/a/b"), Some("/a/b"));
        assert_eq!(Pattern::parse("/echo").unwrap().strip("/echo"), None);
    }

    #[test]
    fn parses_exact_and_prefix() {
        assert_eq!(
            Pattern::parse("/a/b").unwrap(),
            Pattern::Exact("/a/b".into())
        );
        assert_eq!(
            Pattern::parse("/a/...").unwrap(),
            Pattern::Prefix("/a".into())
        );
        assert_eq!(Pattern::parse("/...").unwrap(), Pattern::Prefix("".into()));
        assert_eq!(Pattern::parse("/a/").unwrap(), Pattern::Exact("/a".into()));
        assert_eq!(Pattern::parse("/").unwrap(), Pattern::Exact("/".into()));
        assert_eq!(Pattern::parse("/a/...").unwrap().to_string(), "/a/...");
    }

    #[test]
    fn rejects_bad_routes() {
        assert!(matches!(
            Pattern::parse("a"),
            Err(RouteError::NotAbsolute(_))
        ));
        for bad in ["/a/*", "/a?x", "/a//b", "/a/../b", "/a/.../b", "/a b"] {
            assert!(
                matches!(Pattern::parse(bad), Err(RouteError::Invalid(_))),
                "{bad}"
            );
        }
        for reserved in ["/_hms", "/_hms/...", "/_hms/health"] {
            assert!(
                matches!(Pattern::parse(reserved), Err(RouteError::Reserved(_))),
                "{reserved}"
            );
        }
        assert!(Pattern::parse("/_hmsx").is_ok());
    }

    #[test]
    fn prefix_matches_itself_and_below_only() {
        let t = table(&[("/identity/...", "identity")]);
        assert_eq!(t.lookup("/identity").map(String::as_str), Some("identity"));
        assert_eq!(
            t.lookup("/identity/verify").map(String::as_str),
            Some("identity")
        );
        assert_eq!(
            t.lookup("/identity/verify?x=1").map(String::as_str),
            Some("identity")
        );
        assert_eq!(t.lookup("/identityx"), None);
        assert_eq!(t.lookup("/"), None);
    }

    #[test]
    fn most_specific_route_wins() {
        let t = table(&[
            ("/...", "catchall"),
            ("/a/...", "a"),
            ("/a/b/...", "ab"),
            ("/a/b", "exact"),
        ]);
        assert_eq!(t.lookup("/a/b").map(String::as_str), Some("exact"));
        assert_eq!(t.lookup("/a/b/c").map(String::as_str), Some("ab"));
        assert_eq!(t.lookup("/a/x").map(String::as_str), Some("a"));
        assert_eq!(t.lookup("/zzz").map(String::as_str), Some("catchall"));
    }

    #[test]
    fn conflicts_and_removal() {
        let mut t = table(&[("/a/...", "a")]);
        let err = t
            .add(Pattern::parse("/a/...").unwrap(), "b", "b".into())
            .unwrap_err();
        assert_eq!(
            err,
            RouteError::Conflict {
                route: "/a/...".into(),
                owner: "a".into()
            }
        );
        t.add(Pattern::parse("/a").unwrap(), "b", "b".into())
            .unwrap();
        t.remove_owner("a");
        assert_eq!(t.lookup("/a/x"), None);
        assert_eq!(t.lookup("/a").map(String::as_str), Some("b"));
        assert_eq!(t.iter().count(), 1);
    }
}
