//! The Core HTTP API's contract: the request and response types of every
//! `/_hms` endpoint, shared by the server, the client, the CLI and the
//! end-to-end tests, its [`paths`], and the [`error`] shape. The OpenAPI
//! document served at `/_hms/openapi.json` is generated from these types.

pub mod error;
pub mod paths;
pub mod types;
