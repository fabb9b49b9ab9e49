//! Test guest: identity-service doing everything `components/identity` does
//! (it is identity's own logic, `identity-core`) except logging the outcome
//! of a verify, so the benchmark can price the audit log (identity vs this).

struct Quiet;

impl identity_core::Variant for Quiet {
    const LOG_VERIFY: bool = false;
}

hms_guest::service!(identity_core::Identity<Quiet>);
