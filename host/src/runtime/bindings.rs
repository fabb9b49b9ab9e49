//! Host bindings for the Core contract in `wit/`: the one `bindgen!`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "hms:core/imports",
    // Store writes wait for their group commit without blocking a thread.
    imports: { "hms:core/store": async },
});

pub use hms::core::{auth, logging, registry, store};
