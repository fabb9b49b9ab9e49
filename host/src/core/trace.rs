//! Trace context: one id shared by every event and nested call of an incoming
//! request, following W3C Trace Context (`traceparent`) where the client sent it.

use rand::RngCore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Response header that carries the trace id back to the client.
pub const TRACE_ID_HEADER: &str = "x-trace-id";
/// W3C Trace Context request header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// How many in-process hops one request may take before it is treated as a
/// loop (report → identity is one hop). A deliberate chain of services is far
/// shorter; a service calling itself forever is not.
pub const MAX_CALL_DEPTH: u32 = 16;

/// State shared by every component invocation that serves one client request.
#[derive(Debug)]
pub struct Trace {
    id: String,
    /// The client's span (the `traceparent` parent id), if it sent one.
    parent: Option<String>,
    /// Set once anything of this request was sent to the audit log, so the
    /// response only waits for durability when there is something to wait for.
    logged: AtomicBool,
}

impl Trace {
    /// A trace continuing the client's `traceparent`, or a fresh one.
    pub fn from_traceparent(header: Option<&str>) -> Arc<Trace> {
        let (id, parent) = match header.and_then(parse_traceparent) {
            Some((id, parent)) => (id, Some(parent)),
            None => (new_trace_id(), None),
        };
        Arc::new(Trace {
            id,
            parent,
            logged: AtomicBool::new(false),
        })
    }

    /// The span id (16 hex digits) the client's `traceparent` named.
    pub fn parent(&self) -> Option<&str> {
        self.parent.as_deref()
    }

    /// The 32-hex-digit trace id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records that an event of this trace went to the audit log.
    pub fn mark_logged(&self) {
        self.logged.store(true, Ordering::Relaxed);
    }

    /// Whether any event of this trace went to the audit log.
    pub fn logged(&self) -> bool {
        self.logged.load(Ordering::Relaxed)
    }

    /// A `traceparent` value for a call made on behalf of this trace from
    /// span `span` (16 hex digits; a random one when traces are not
    /// exported).
    pub fn traceparent(&self, span: Option<&str>) -> String {
        match span {
            Some(span) => format!("00-{}-{span}-01", self.id),
            None => {
                let mut span = [0u8; 8];
                rand::thread_rng().fill_bytes(&mut span);
                format!("00-{}-{}-01", self.id, hex::encode(span))
            }
        }
    }
}

/// Extracts the trace id and parent span id of a `traceparent` header
/// (`00-<32 hex>-<16 hex>-<2 hex>`). Invalid values are ignored, as the
/// W3C spec asks, and a new trace starts.
fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let is_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if !is_hex(version, 2)
        || version == "ff"
        || !is_hex(trace, 32)
        || !is_hex(parent, 16)
        || !is_hex(flags, 2)
    {
        return None;
    }
    if trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
        return None;
    }
    Some((trace.to_string(), parent.to_string()))
}

/// A fresh trace id: the current Unix time in milliseconds (48 bits, big
/// endian) followed by 80 random bits. Ids therefore sort by start time, which
/// keeps the audit log's trace index appending at its end instead of touching
/// a random page per event (the README's "What changed" has the figures);
/// the rightmost 10 bytes stay random, as W3C Trace Context asks of the
/// rightmost 7.
fn new_trace_id() -> String {
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&crate::base::clock::unix_millis().to_be_bytes()[2..]);
    rand::thread_rng().fill_bytes(&mut id[6..]);
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_traceparent() {
        let t = Trace::from_traceparent(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        assert_eq!(t.id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent(), Some("00f067aa0ba902b7"));
        let child = t.traceparent(None);
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_eq!(parse_traceparent(&child).unwrap().0, t.id());
        assert_eq!(
            t.traceparent(Some("b7ad6b7169203331")),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
        );
    }

    #[test]
    fn starts_a_new_trace_on_bad_input() {
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        let a = Trace::from_traceparent(Some("garbage"));
        let b = Trace::from_traceparent(None);
        assert_eq!(a.id().len(), 32);
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn new_ids_start_with_the_time_and_sort_by_it() {
        let before = crate::base::clock::unix_millis();
        let first = new_trace_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_trace_id();
        let millis = u64::from_str_radix(&first[..12], 16).unwrap();
        assert!(millis >= before && millis <= crate::base::clock::unix_millis());
        assert!(first < second, "{first} then {second}");
        assert_ne!(first[12..], second[12..]);
        assert!(parse_traceparent(&format!("00-{first}-00f067aa0ba902b7-01")).is_some());
    }

    #[test]
    fn remembers_logging() {
        let t = Trace::from_traceparent(None);
        assert!(!t.logged());
        t.mark_logged();
        assert!(t.logged());
    }
}
