//! HTTP request methods.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::bindings::wasi::http::types::Method as WasiMethod;

/// An HTTP request method.
///
/// Methods are case-sensitive (RFC 9110): `"GET"` is [`Method::Get`], while
/// `"get"` is `Other("get")`. Two methods are equal when their names are, so
/// `Other("GET".into()) == Method::Get`.
#[derive(Debug, Clone, Default, Eq)]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Trace,
    /// Any other method, by its name.
    Other(String),
}

impl Method {
    /// The method's name as sent on the wire, e.g. `"POST"`.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Method {
    fn eq(&self, other: &Method) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Hash for Method {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl From<&str> for Method {
    fn from(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            other => Method::Other(other.to_string()),
        }
    }
}

impl From<WasiMethod> for Method {
    fn from(method: WasiMethod) -> Method {
        match method {
            WasiMethod::Get => Method::Get,
            WasiMethod::Head => Method::Head,
            WasiMethod::Post => Method::Post,
            WasiMethod::Put => Method::Put,
            WasiMethod::Delete => Method::Delete,
            WasiMethod::Patch => Method::Patch,
            WasiMethod::Options => Method::Options,
            WasiMethod::Connect => Method::Connect,
            WasiMethod::Trace => Method::Trace,
            // wasi:http may hand a standard name over as `other`.
            WasiMethod::Other(name) => Method::from(name.as_str()),
        }
    }
}

impl From<&Method> for WasiMethod {
    fn from(method: &Method) -> WasiMethod {
        match method {
            Method::Get => WasiMethod::Get,
            Method::Head => WasiMethod::Head,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Delete => WasiMethod::Delete,
            Method::Patch => WasiMethod::Patch,
            Method::Options => WasiMethod::Options,
            Method::Connect => WasiMethod::Connect,
            Method::Trace => WasiMethod::Trace,
            Method::Other(name) => WasiMethod::Other(name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for method in [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Patch,
            Method::Options,
            Method::Connect,
            Method::Trace,
            Method::Other("PURGE".into()),
        ] {
            assert_eq!(Method::from(method.as_str()), method);
            assert_eq!(method.to_string(), method.as_str());
        }
        assert!(matches!(Method::from("DELETE"), Method::Delete));
        assert_eq!(Method::from("get"), Method::Other("get".into()));
        assert_ne!(Method::from("get"), Method::Get);
        assert_eq!(Method::Other("GET".into()), Method::Get);
    }
}
