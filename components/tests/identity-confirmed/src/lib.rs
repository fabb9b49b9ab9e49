//! Test guest: identity-service, next version. It mounts identity's own
//! logic (`components/identity/src/service.rs`), so it serves the same
//! routes and the same stored citizens, but an active citizen is answered
//! `{"status": "confirmed", ...}` instead of `verified`: hot-swap tests can
//! tell the versions apart.

#[path = "../../../identity/src/service.rs"]
mod service;

const ACTIVE_STATUS: &str = "confirmed";
const LOG_VERIFY: bool = true;

hms_guest::service!(service::Identity);
