//! Where each Core API endpoint lives, for clients and tests. The server
//! mounts its routes under [`PREFIX`] with the same templates.

/// Every Core API path starts with this; no component may claim it.
pub const PREFIX: &str = "/_hms";

pub const HEALTH: &str = "/_hms/health";
pub const TOKEN: &str = "/_hms/auth/token";
pub const JWKS: &str = "/_hms/auth/jwks";
pub const KEYS: &str = "/_hms/keys";
pub const SERVICES: &str = "/_hms/services";
pub const EVENTS: &str = "/_hms/events";
pub const AUDIT_EXPORT: &str = "/_hms/audit/export";
pub const METRICS: &str = "/_hms/metrics";
pub const OPENAPI: &str = "/_hms/openapi.json";
pub const CLUSTER: &str = "/_hms/cluster";
pub const PLACEMENT: &str = "/_hms/placement";

/// `/_hms/placement/{service}`.
pub fn placement(service: &str) -> String {
    format!("{PLACEMENT}/{}", escape(service))
}

/// `/_hms/keys/{id}`.
pub fn key(id: &str) -> String {
    format!("{KEYS}/{}", escape(id))
}

/// `/_hms/services/{name}`.
pub fn service(name: &str) -> String {
    format!("{SERVICES}/{}", escape(name))
}

/// `/_hms/services/{name}/versions`.
pub fn versions(name: &str) -> String {
    format!("{}/versions", service(name))
}

/// `/_hms/services/{name}/rollback`.
pub fn rollback(name: &str) -> String {
    format!("{}/rollback", service(name))
}

/// `/_hms/services/{name}/stats`.
pub fn stats(name: &str) -> String {
    format!("{}/stats", service(name))
}

/// `/_hms/data/{service}`.
pub fn data(service: &str) -> String {
    format!("{PREFIX}/data/{}", escape(service))
}

/// `/_hms/events?...` with the given filters.
pub fn events(q: &super::types::EventQuery) -> String {
    let mut query = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            query.push(format!("{k}={}", escape(&v)));
        }
    };
    push("service", q.service.clone());
    push("trace", q.trace.clone());
    push("level", q.level.map(|l| l.as_str().to_string()));
    push("host", q.host.clone());
    push("cursor", q.cursor.clone());
    push("after", q.after.map(|n| n.to_string()));
    push("limit", q.limit.map(|n| n.to_string()));
    push("wait", q.wait.map(|n| n.to_string()));
    if query.is_empty() {
        EVENTS.to_string()
    } else {
        format!("{EVENTS}?{}", query.join("&"))
    }
}

/// `/_hms/audit/export?...` for the given range.
pub fn audit_export(q: &super::types::AuditExportQuery) -> String {
    let query: Vec<String> = [
        ("host", q.host.clone()),
        ("from_seq", q.from_seq.map(|n| n.to_string())),
        ("to_seq", q.to_seq.map(|n| n.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some(format!("{k}={}", escape(&v?))))
    .collect();
    if query.is_empty() {
        AUDIT_EXPORT.to_string()
    } else {
        format!("{AUDIT_EXPORT}?{}", query.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::EventQuery;

    #[test]
    fn paths_are_built_and_escaped() {
        assert_eq!(
            versions("identity-service"),
            "/_hms/services/identity-service/versions"
        );
        assert_eq!(key("a/b"), "/_hms/keys/a%2Fb");
        let q = EventQuery {
            service: Some("report-service".into()),
            trace: Some("a b".into()),
            after: Some(7),
            ..EventQuery::default()
        };
        assert_eq!(
            events(&q),
            "/_hms/events?service=report-service&trace=a%20b&after=7"
        );
        assert_eq!(events(&EventQuery::default()), "/_hms/events");
    }
}
