//! Test guest: identity-service doing everything `components/identity` does
//! (it mounts identity's own logic, `components/identity/src/service.rs`)
//! except logging the outcome of a verify, so the benchmark can price the
//! audit log (identity vs this).

#[path = "../../../identity/src/service.rs"]
mod service;

const ACTIVE_STATUS: &str = "verified";
const LOG_VERIFY: bool = false;

hms_guest::service!(service::Identity);
