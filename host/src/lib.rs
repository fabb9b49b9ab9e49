//! hms-host: runs microservices as sandboxed WebAssembly components next to a
//! native Core (auth, audit logging, registry, private stores) that they
//! import through WIT.
//!
//! Table of contents, bottom layer first; a module uses only modules of its
//! own layer or below:
//! - [`base`]: files, SQLite connections, locks and clocks, shared by all.
//! - [`core`]: Core — [`core::auth`], [`core::audit`], [`core::registry`],
//!   [`core::store`], and the rules they share.
//! - [`config`]: the configuration of a run (limits, grants, defaults).
//! - [`api`]: the Core HTTP API's contract — request/response types, paths,
//!   the error shape — shared by server, client and tests.
//! - [`runtime`]: the engine, loading, deploying and invoking components in
//!   their sandbox, outgoing-request policy, routing, and the WIT host glue.
//! - [`http`]: the HTTP front — server, the Core API under `/_hms`, errors.
//! - [`startup`]: assembles all of the above into a serving host ([`run`]).
//! - [`cli`]: the `hms-host` command line and its typed client.

pub mod api;
pub mod base;
pub mod cli;
pub mod config;
pub mod core;
pub mod http;
pub mod runtime;
pub mod startup;

pub use startup::{ISSUER, run};

#[cfg(test)]
mod layering {
    //! The table of contents above as a rule: each module uses only modules
    //! of its own layer or below, so there are no import circles between
    //! the layers and none from Core up to the runtime or the HTTP front.

    use std::path::Path;

    /// Bottom first.
    const LAYERS: &[&str] = &[
        "base", "core", "config", "api", "runtime", "http", "startup", "cli",
    ];

    fn rank(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| *l == module)
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn modules_use_only_their_own_layer_or_below() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut upward = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap();
            let top = relative.iter().next().unwrap().to_string_lossy();
            let Some(own) = rank(top.trim_end_matches(".rs")) else {
                continue; // lib.rs and main.rs
            };
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (i, _) in line.match_indices("crate::") {
                    let used: String = line[i + "crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if let Some(r) = rank(&used)
                        && r > own
                    {
                        upward.push(format!("{}:{}: uses {used}", relative.display(), n + 1));
                    }
                }
            }
        }
        assert!(upward.is_empty(), "upward edges:\n{}", upward.join("\n"));
        assert!(files.len() > 30, "the sources were found");
    }
}
