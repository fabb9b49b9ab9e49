//! Test guest (hostile): `panic-service`, routes `/panic/...`. Every request
//! panics in the handler (wasm32-wasip2 panics abort, i.e. the instance traps
//! after writing the panic message to stderr).
//!
//! The host must turn the trap into a 5xx for this request only, throw the
//! trapped instance away, and keep serving (this and every other service).

use hms_guest::{Request, Response, Service, ServiceInfo};

struct Panic;

impl Service for Panic {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "panic-service".into(),
            routes: vec!["/panic/...".into()],
        }
    }

    fn handle(req: Request) -> Response {
        panic!(
            "panic-service panics on purpose ({} {})",
            req.method, req.path
        )
    }
}

hms_guest::service!(Panic);
