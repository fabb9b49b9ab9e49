//! Test guest: identity-service, next version. It is identity's own logic
//! (`identity-core`), so it serves the same routes and the same stored
//! citizens, but an active citizen is answered `{"status": "confirmed", ...}`
//! instead of `verified`: hot-swap tests can tell the versions apart.

struct Confirmed;

impl identity_core::Variant for Confirmed {
    const ACTIVE_STATUS: &'static str = "confirmed";
}

hms_guest::service!(identity_core::Identity<Confirmed>);
