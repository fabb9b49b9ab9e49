//! Test guest (hostile): `stack-overflow-service`, routes
//! `/stack-overflow/...`. Every request recurses without bound. Each frame
//! holds a "stack buffer" of 32 opaque 64-bit values that are all still
//! needed after the recursive call returns, so the recursion can be neither
//! removed nor turned into a loop (it is not a tail call).
//!
//! The buffer is kept in wasm locals on purpose, not in an array: an array
//! would live on Rust's 1 MiB shadow stack in linear memory, whose overflow
//! (after about a thousand 1 KiB frames) is just an out-of-bounds memory
//! access. Values live across a call are instead spilled by wasmtime into
//! the native frame, so this recursion exhausts wasmtime's wasm stack limit
//! (`max_wasm_stack`) long before its 16 bytes of shadow stack per frame add
//! up to 1 MiB.
//!
//! The host must get the stack-overflow trap, answer 5xx for this request
//! only, throw the instance away and keep serving; its own stack must never
//! overflow.

use std::hint::black_box;

use hms_guest::{Request, Response, Service, ServiceInfo};

struct StackOverflow;

impl Service for StackOverflow {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "stack-overflow-service".into(),
            routes: vec!["/stack-overflow/...".into()],
        }
    }

    fn handle(_req: Request) -> Response {
        let result = recurse(0);
        Response::json(200, &result)
    }
}

/// Binds each name to an opaque value derived from `$seed`, evaluates `$call`
/// and folds every binding into the call's result afterwards, so all of them
/// stay live across the call.
macro_rules! keep_live_across {
    ($seed:expr, $call:expr; $($name:ident),*) => {{
        let mut shift = 0u32;
        $(
            shift += 1;
            let $name = black_box($seed.rotate_left(shift));
        )*
        let mut acc: u64 = $call;
        $(acc = acc.rotate_left(5) ^ $name;)*
        acc
    }};
}

/// Recurses until the stack runs out. The base case exists only so the
/// function is not statically endless; `black_box` hides that it is never
/// reached.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let seed = black_box(depth);
    if seed == u64::MAX {
        return 0;
    }
    keep_live_across!(
        seed, recurse(seed + 1);
        v01, v02, v03, v04, v05, v06, v07, v08, v09, v10, v11, v12, v13, v14, v15, v16,
        v17, v18, v19, v20, v21, v22, v23, v24, v25, v26, v27, v28, v29, v30, v31, v32
    )
}

hms_guest::service!(StackOverflow);
