//! Test guest (hostile): `endless-loop-service`, routes `/endless-loop/...`.
//! Every request spins forever in pure wasm: no host calls inside the loop,
//! so nothing but the engine can interrupt it.
//!
//! The host must stop it with its epoch deadline (epoch interruption checks
//! loop back-edges), answer the request with a timeout error, throw the
//! instance away and keep serving; the spinning must not hold up other
//! requests or the host's worker threads for longer than the deadline.

use std::hint::black_box;

use hms_guest::{Request, Response, Service, ServiceInfo};

struct EndlessLoop;

impl Service for EndlessLoop {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "endless-loop-service".into(),
            routes: vec!["/endless-loop/...".into()],
        }
    }

    fn handle(_req: Request) -> Response {
        let mut spins: u64 = 0;
        loop {
            // `black_box` keeps the otherwise effect-free loop from being
            // optimised away.
            spins = black_box(spins.wrapping_add(1));
        }
    }
}

hms_guest::service!(EndlessLoop);
