//! Test guest (hostile): `no-response-service`, routes `/no-response/...`.
//! Every request blocks inside the handler for an hour on a wasi:clocks
//! monotonic-clock pollable and never sets a response (after the hour it
//! returns without one).
//!
//! The guest sits in a host call the whole time, so epoch interruption (which
//! only fires while wasm code runs) cannot stop it: the host's wall-clock
//! request timeout must answer the client (504 or similar), cancel the call
//! and throw the instance away.
//!
//! The exports are written by hand (not with `hms_guest::service!`) so that no
//! response is ever set, even if the block were to end.

use hms_guest::ServiceInfo;
use hms_guest::bindings::exports::hms::core::manifest;
use hms_guest::bindings::exports::wasi::http::incoming_handler;
use hms_guest::bindings::wasi::clocks::monotonic_clock;
use hms_guest::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};

const ONE_HOUR_NS: u64 = 60 * 60 * 1_000_000_000;

struct NoResponse;

impl incoming_handler::Guest for NoResponse {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        monotonic_clock::subscribe_duration(ONE_HOUR_NS).block();
        // Dropped without `ResponseOutparam::set`: no response at all.
        drop(response_out);
    }
}

impl manifest::Guest for NoResponse {
    fn describe() -> ServiceInfo {
        ServiceInfo {
            name: "no-response-service".into(),
            routes: vec!["/no-response/...".into()],
        }
    }

    fn callers() -> Option<Vec<String>> {
        None
    }
}

hms_guest::bindings::export!(NoResponse with_types_in hms_guest::bindings);
