//! Test guest (hostile): `trap-service`, routes `/trap/...`. Every request
//! executes an explicit wasm `unreachable` instruction in the handler.
//!
//! The host must turn the trap into a 5xx for this request only, throw the
//! trapped instance away, and keep serving (this and every other service).

use hms_guest::{Request, Response, Service, ServiceInfo};

struct Trap;

impl Service for Trap {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "trap-service".into(),
            routes: vec!["/trap/...".into()],
        }
    }

    fn handle(_req: Request) -> Response {
        core::arch::wasm32::unreachable()
    }
}

hms_guest::service!(Trap);
