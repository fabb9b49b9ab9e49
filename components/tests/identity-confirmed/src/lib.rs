//! Test guest: identity-service, next version. Same contract as
//! `components/identity`, but verified citizens are reported as `confirmed`.

const STATUS: &str = "confirmed";
const LOGS: bool = true;

include!("variant.rs");
