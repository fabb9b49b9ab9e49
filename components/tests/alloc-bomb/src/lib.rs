//! Test guest (hostile): `alloc-bomb-service`, routes `/alloc-bomb/...`.
//! Every request allocates 1 MiB chunks forever, writes every byte of each
//! (so every page is really touched) and keeps them all alive.
//!
//! The host must stop it with its per-instance memory limit: `memory.grow`
//! fails (or traps), the allocator's failure aborts the instance, and the
//! host answers 5xx for this request only, throws the instance away (its
//! memory with it) and keeps serving.

use std::hint::black_box;

use hms_guest::{Request, Response, Service, ServiceInfo};

const CHUNK: usize = 1024 * 1024;

struct AllocBomb;

impl Service for AllocBomb {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "alloc-bomb-service".into(),
            routes: vec!["/alloc-bomb/...".into()],
        }
    }

    fn handle(_req: Request) -> Response {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.resize(CHUNK, 0xA5);
            hoard.push(black_box(chunk));
            black_box(&mut hoard);
        }
    }
}

hms_guest::service!(AllocBomb);
