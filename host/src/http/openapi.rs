//! The OpenAPI 3 document of the Core API, generated (utoipa) from the
//! handlers and the contract types in [`crate::api::types`], served at
//! `GET /_hms/openapi.json` and committed as `docs/openapi.json`; a test
//! fails when the two drift apart (`HMS_UPDATE_OPENAPI=1` rewrites the file).

use std::sync::OnceLock;
use utoipa::OpenApi;

/// The document as pretty-printed JSON (built once).
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut json = super::core_api::ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        json.push('\n');
        json
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn committed() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
    }

    #[test]
    fn the_committed_document_matches_the_code() {
        let path = committed();
        if std::env::var_os("HMS_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, document()).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == document(),
            "docs/openapi.json is not what the code generates; run \
             `HMS_UPDATE_OPENAPI=1 cargo test -p hms-host openapi` and commit it"
        );
    }

    #[test]
    fn every_route_in_the_readme_is_documented_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut documented: Vec<String> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        documented.sort();
        let readme =
            std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        // Rows of the Core API table: | `METHOD /_hms/path...` | ...
        let mut listed: Vec<String> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(route, _)| route))
            .filter(|r| r.contains(" /_hms/"))
            .map(|r| {
                let (method, rest) = r.split_once(' ').unwrap();
                let path = rest.split(['?', ' ']).next().unwrap();
                format!("{method} {path}")
            })
            .collect();
        listed.sort();
        listed.dedup();
        assert_eq!(listed, documented);
    }
}
