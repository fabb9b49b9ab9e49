//! hms-host: runs microservices as sandboxed WebAssembly components next to a
//! native Core (auth, audit logging, registry, private stores) that they
//! import through WIT.
//!
//! Table of contents, bottom layer first; a module uses only modules of its
//! own layer or below:
//! - [`base`]: files, SQLite connections, locks and clocks, shared by all.
//! - [`core`]: Core — [`core::auth`], [`core::audit`], [`core::registry`],
//!   [`core::store`], and the rules they share.
//! - [`config`]: the configuration of a run (limits, grants, defaults).
//! - [`api`]: the Core HTTP API's contract — request/response types, paths,
//!   the error shape — shared by server, client and tests.
//! - [`runtime`]: the engine, loading, deploying and invoking components in
//!   their sandbox, outgoing-request policy, routing, and the WIT host glue.
//! - [`http`]: the HTTP front — server, the Core API under `/_hms`, errors.
//! - [`startup`]: assembles all of the above into a serving host ([`run`]).
//! - [`cli`]: the `hms-host` command line and its typed client.

pub mod api;
pub mod base;
pub mod cli;
pub mod config;
pub mod core;
pub mod http;
pub mod runtime;
pub mod startup;

pub use startup::{ISSUER, run};
