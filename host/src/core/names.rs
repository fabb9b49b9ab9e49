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

/// The service name of a plain component file, from its file stem: ASCII
/// letters lowercased, every run of other characters (`_`, `.`, spaces)
/// turned into one `-`, leading and trailing `-` dropped, cut to
/// [`MAX_NAME_LEN`]. `p2_api_proxy.wasm` is served as `p2-api-proxy`. A
/// stem with nothing left (`___.wasm`) keeps its invalid name, which
/// [`validate_service_name`] then refuses with its reason.
pub fn name_from_file_stem(stem: &str) -> String {
    let mut name = String::with_capacity(stem.len());
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(MAX_NAME_LEN);
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        stem.to_string()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_become_service_names() {
        for (stem, name) in [
            ("hello", "hello"),
            ("p2_api_proxy", "p2-api-proxy"),
            ("My Service.v2", "my-service-v2"),
            ("__x__", "x"),
            ("a--b", "a-b"),
            ("ümlaut", "mlaut"),
        ] {
            assert_eq!(name_from_file_stem(stem), name, "{stem}");
            assert!(validate_service_name(name).is_ok());
        }
        let long = name_from_file_stem(&format!("{}_tail", "x".repeat(63)));
        assert_eq!(long, "x".repeat(63));
        assert!(validate_service_name(&name_from_file_stem("___")).is_err());
    }

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
