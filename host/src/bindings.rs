//! Host bindings for the Core contract in `wit/`: the one `bindgen!`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "hms:core/imports",
});

pub use hms::core::{auth, logging, registry};
