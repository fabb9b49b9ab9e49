//! Test guest: identity-service doing everything `components/identity` does
//! except logging, so the benchmark can price the audit log (identity vs this).

const STATUS: &str = "verified";
const LOGS: bool = false;

include!("../../identity-confirmed/src/variant.rs");
