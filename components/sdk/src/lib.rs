//! # hms-guest: write an hms service in a few lines
//!
//! An hms service is a WebAssembly component of the `hms:core/service` world
//! (see `wit/world.wit`): a `wasi:http` request handler that may call Core
//! (auth, logging, registry) and tells the host its name and routes. This
//! crate is everything a service crate needs:
//!
//! * [`bindings`]: the Rust bindings `wit-bindgen` generates for that world,
//!   with the Core interfaces re-exported as [`auth`], [`logging`],
//!   [`registry`] and [`store`];
//! * [`Request`] and [`Response`]: a whole HTTP exchange as plain values
//!   (bodies are read and written in one piece), with JSON helpers and the
//!   project-wide error shape `{"code": "...", "message": "..."}`;
//! * [`post_json`]: call another service over `wasi:http/outgoing-handler`;
//! * the [`Service`] trait and the [`service!`] macro, which turn a type into
//!   the component's exports.
//!
//! ```ignore
//! use hms_guest::{Request, Response, Service, ServiceInfo};
//!
//! struct Hello;
//!
//! impl Service for Hello {
//!     fn info() -> ServiceInfo {
//!         ServiceInfo { name: "hello-service".into(), routes: vec!["/hello/...".into()] }
//!     }
//!     fn handle(_req: Request) -> Response {
//!         Response::json(200, &"hello")
//!     }
//! }
//!
//! hms_guest::service!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the crate must
//! be a `cdylib`.

mod body;
mod client;
mod http;
#[doc(hidden)]
pub mod server;

pub use client::post_json;
pub use http::{Request, Response};

/// Bindings generated from `wit/` for the world `hms:core/service`.
pub mod bindings {
    wit_bindgen::generate!({
        world: "hms:core/service",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "hms_guest::bindings",
        generate_all,
    });
}

/// A service's name and routes, returned by [`Service::info`].
pub use bindings::exports::hms::core::manifest::ServiceInfo;
/// Core authentication: `authenticate`, `own_token`, `verify`.
pub use bindings::hms::core::auth;
/// Core audit logging: `log_event(Level, &str)`.
pub use bindings::hms::core::logging;
/// Core service registry: `discover_service`, `register_service`.
pub use bindings::hms::core::registry;
/// The service's private durable store: `get`, `set`, `delete`,
/// `list_keys`, `compare_and_swap`, `increment`.
pub use bindings::hms::core::store;
/// Re-exported so services can build ad-hoc JSON with `serde_json::json!`.
pub use serde_json;

/// A service: its manifest and its request handler.
///
/// Implement it on a unit struct and pass that to [`service!`].
pub trait Service {
    /// Name and routes; the host calls this once when it loads the component.
    fn info() -> ServiceInfo;

    /// The services allowed to call this one through the host, or `None`
    /// (the default) for any. Others get 403 before [`Service::handle`] runs.
    fn callers() -> Option<Vec<String>> {
        None
    }

    /// Answer one request. Called once per incoming request, with the whole
    /// request body already read.
    fn handle(req: Request) -> Response;
}

/// Export a [`Service`] implementation as this component's
/// `wasi:http/incoming-handler` and `hms:core/manifest`.
///
/// Use it once per crate, at the top level: `hms_guest::service!(MyService);`
#[macro_export]
macro_rules! service {
    ($service:ty) => {
        #[doc(hidden)]
        struct __HmsGuestExports;

        impl $crate::bindings::exports::wasi::http::incoming_handler::Guest for __HmsGuestExports {
            fn handle(
                request: $crate::bindings::wasi::http::types::IncomingRequest,
                response_out: $crate::bindings::wasi::http::types::ResponseOutparam,
            ) {
                $crate::server::serve::<$service>(request, response_out)
            }
        }

        impl $crate::bindings::exports::hms::core::manifest::Guest for __HmsGuestExports {
            fn describe() -> $crate::ServiceInfo {
                <$service as $crate::Service>::info()
            }

            fn callers() -> Option<Vec<String>> {
                <$service as $crate::Service>::callers()
            }
        }

        $crate::bindings::export!(__HmsGuestExports with_types_in $crate::bindings);
    };
}
