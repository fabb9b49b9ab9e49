//! The naming rule shared by services, API keys and tokens.

/// Longest service name accepted; names appear in URLs, logs and tokens.
pub const MAX_NAME_LEN: usize = 64;

/// A name that breaks the rule; the text says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid service name {0}")]
pub struct InvalidName(pub String);

/// Checks the naming rule: 1-64 characters of `a-z`, `0-9` and `-`, not
/// starting or ending with `-`.
pub fn validate_service_name(name: &str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(InvalidName(format!(
            "{name:?}: service names are 1-{MAX_NAME_LEN} characters of a-z, 0-9 and '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["identity-service", "a", "r2d2", &"x".repeat(64)] {
            assert!(validate_service_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Identity",
            "a_b",
            "-a",
            "a-",
            "a b",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(validate_service_name(bad).is_err(), "{bad}");
        }
    }
}
