//! `hms-host new --lang rust|python|js NAME`: writes a service skeleton into
//! `components/NAME/` of an hms-host checkout, from templates built into the
//! binary (`components/sdk/template`, `components/sdk-python/template`,
//! `components/sdk-js/template`). Each skeleton builds with one command and
//! comes with one passing test; it uses the SDK beside it in `components/`.

use crate::core::names::validate_service_name;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// A skeleton's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The language of the service.
    #[arg(long)]
    lang: Lang,
    /// The service name (1-64 characters of a-z, 0-9 and '-'); also the
    /// directory written, `components/NAME`.
    name: String,
    /// The root of the hms-host checkout whose `components/` gets the
    /// service (default: the current directory).
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

/// A template file: its path in the skeleton and its text.
type File = (&'static str, &'static str);

macro_rules! template {
    ($dir:literal, [$($file:literal),* $(,)?]) => {
        &[$(($file, include_str!(concat!("../../../components/", $dir, "/template/", $file)))),*]
    };
}

const RUST: &[File] = template!("sdk", ["Cargo.toml", "src/lib.rs", "README.md"]);
const JS: &[File] = template!(
    "sdk-js",
    ["package.json", "app.js", "app.test.js", "README.md"]
);
const PYTHON: &[File] = template!(
    "sdk-python",
    [
        "app.py",
        "tests/test_app.py",
        "build.sh",
        "README.md",
        ".gitignore"
    ]
);
/// Skeleton files written executable.
const EXECUTABLE: &[&str] = &["build.sh"];

impl Lang {
    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    /// The SDK directory in `components/` the skeleton refers to.
    fn sdk(self) -> &'static str {
        match self {
            Lang::Rust => "sdk",
            Lang::Python => "sdk-python",
            Lang::Js => "sdk-js",
        }
    }

    /// What to run next, in the new directory.
    fn next_steps(self, name: &str) -> String {
        let krate = name.replace('-', "_");
        match self {
            Lang::Rust => format!(
                "cargo test && cargo build --release --target wasm32-wasip2\n  \
                 # -> components/{name}/target/wasm32-wasip2/release/{krate}.wasm"
            ),
            Lang::Python => format!("./build.sh\n  # -> components/{name}/{name}.wasm"),
            Lang::Js => format!(
                "(cd .. && npm install) && npm test && npm run build\n  # -> components/{name}.wasm"
            ),
        }
    }
}

/// The skeleton's files for service `name`, placeholders filled in:
/// `{{name}}` (the service name) and `{{crate}}` (it with `_` for `-`).
pub fn render(lang: Lang, name: &str) -> Vec<(&'static str, String)> {
    let krate = name.replace('-', "_");
    lang.files()
        .iter()
        .map(|(path, text)| {
            let text = text.replace("{{name}}", name).replace("{{crate}}", &krate);
            (*path, text)
        })
        .collect()
}

pub fn new(args: NewArgs) -> anyhow::Result<()> {
    validate_service_name(&args.name)?;
    let components = args.root.join("components");
    let sdk = components.join(args.lang.sdk());
    if !sdk.is_dir() {
        bail!(
            "{} is not there: run `hms-host new` at the root of an hms-host checkout (or give --root), whose components/ holds the SDKs",
            sdk.display()
        );
    }
    let dir = components.join(&args.name);
    if dir.exists() {
        bail!("{} already exists; nothing was written", dir.display());
    }
    write_all(&dir, &render(args.lang, &args.name))?;
    println!("wrote {}", dir.display());
    println!(
        "next, in {}:\n  {}",
        dir.display(),
        args.lang.next_steps(&args.name)
    );
    Ok(())
}

fn write_all(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<()> {
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if EXECUTABLE.iter().any(|e| path.ends_with(e)) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_in() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let files = render(lang, "tax-office");
            assert!(!files.is_empty());
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{lang:?} {path}: {text}");
                if *path != ".gitignore" {
                    assert!(text.contains("tax-office"), "{lang:?} {path}");
                }
            }
        }
    }
}
