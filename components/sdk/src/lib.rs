//! # hms-guest: write an hms service in a few lines
//!
//! An hms service is a WebAssembly component of the `hms:core/service` world
//! (see `wit/world.wit`): a `wasi:http` request handler that may call Core
//! (auth, logging, registry, store) and tells the host its name and routes.
//! This crate is everything a service crate needs:
//!
//! * the [`Service`] trait and the [`service!`] macro, which turn a type into
//!   the component's exports;
//! * [`Router`]: handlers by method and path pattern
//!   (`/identity/citizens/{id}`, `/files/...`), with the 404 and the 405 +
//!   `Allow` answered for you;
//! * [`Request`], [`Response`] and [`Method`]: a whole HTTP exchange as plain
//!   values (bodies are read and written in one piece), with JSON helpers and
//!   the project-wide error shape `{"code": "...", "message": "..."}`;
//!   [`Answer`] lets a handler answer early with `?`;
//! * [`client`]: calls to other services over `wasi:http/outgoing-handler`
//!   ([`client::send`] for any method, [`post_json`] and friends), with a
//!   typed [`client::CallError`];
//! * [`store`]: the service's private store, with [`store::get_json`] and
//!   [`store::set_json`] for JSON values;
//! * [`auth`], [`logging`] and [`registry`]: the other Core interfaces, and
//!   [`bindings`], everything `wit-bindgen` generates for the world (for
//!   guests that need raw `wasi:http`).
//!
//! ```no_run
//! use hms_guest::{Answer, Params, Request, Response, Router, Service, ServiceInfo};
//! use serde::Deserialize;
//!
//! struct Greeter;
//!
//! #[derive(Deserialize)]
//! struct Hello {
//!     name: String,
//! }
//!
//! impl Service for Greeter {
//!     fn info() -> ServiceInfo {
//!         ServiceInfo { name: "greeter".into(), routes: vec!["/greet/...".into()] }
//!     }
//!
//!     fn router() -> Router {
//!         Router::new()
//!             .post("/greet/hello", hello)
//!             .get("/greet/{name}", |_: &Request, params: &Params| {
//!                 Response::json(200, &format!("Hello, {}", &params["name"]))
//!             })
//!     }
//! }
//!
//! /// `POST /greet/hello` `{"name": "Ada"}`; a bad body is a JSON 400.
//! fn hello(req: &Request, _: &Params) -> Answer {
//!     let hello: Hello = req.json()?;
//!     Ok(Response::json(200, &format!("Hello, {}", hello.name)))
//! }
//!
//! hms_guest::service!(Greeter);
//! ```
//!
//! A service that wants no router implements [`Service::handle`] instead.
//! Build with `cargo build --release --target wasm32-wasip2`; the crate must
//! be a `cdylib`.

mod body;
pub mod client;
mod http;
mod method;
mod router;
#[doc(hidden)]
pub mod server;
pub mod store;

pub use client::post_json;
pub use http::{Answer, IntoResponse, Request, Response};
pub use method::Method;
pub use router::{Params, Router};

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
/// Re-exported so services can build ad-hoc JSON with `serde_json::json!`.
pub use serde_json;

/// A service: its manifest and how it answers requests.
///
/// Implement it on a type (a unit struct, or a generic one such as
/// `Identity<V>`) and pass that to [`service!`]. Give either a
/// [`Service::router`] (the usual way) or a [`Service::handle`] of your own.
pub trait Service {
    /// Name and routes; the host calls this once when it loads the component.
    /// The routes are the host-level prefixes sent to this service
    /// (`/identity/...`); [`Service::router`] then picks a handler.
    fn info() -> ServiceInfo;

    /// The services allowed to call this one through the host, or `None`
    /// (the default) for any. Others get 403 before the service sees the
    /// request.
    fn callers() -> Option<Vec<String>> {
        None
    }

    /// The service's routes. Built for each request (that is cheap); the
    /// default has none, so every request is a 404.
    fn router() -> Router {
        Router::new()
    }

    /// Answer one request. Called once per incoming request, with the whole
    /// request body already read. The default dispatches through
    /// [`Service::router`].
    fn handle(req: Request) -> Response {
        Self::router().handle(&req)
    }
}

/// Export a [`Service`] implementation as this component's
/// `wasi:http/incoming-handler` and `hms:core/manifest`.
///
/// Use it once per crate, at the top level: `hms_guest::service!(MyService);`
/// (any type path works, e.g. `hms_guest::service!(identity_core::Identity<Standard>);`).
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
