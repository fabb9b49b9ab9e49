//! The HTTP front: the accept loop and routing ([`server`]), the shared
//! state ([`app`]), Core's own
//! API under `/_hms` ([`core_api`]), the web console it serves at
//! `/_hms/console` ([`console`]) and the error shape of every answer the
//! host gives itself ([`error`]).

pub mod app;
pub mod console;
pub mod core_api;
pub mod error;
pub mod openapi;
pub mod server;
