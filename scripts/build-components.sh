#!/usr/bin/env bash
# Build the guest components and place the deployable ones in components/:
#   Rust (components/ cargo workspace, wasm32-wasip2): identity.wasm,
#     report.wasm; the plain wasi:http example stays at
#     components/target/wasm32-wasip2/release/hello.wasm
#   Python (scripts/build-python.sh, pinned componentize-py in a venv under
#     components/target/python): identity-py.wasm, report-py.wasm
#   JavaScript (npm workspace, scripts/build-js.sh): notice-js.wasm
#
#   scripts/build-components.sh              everything
#   scripts/build-components.sh --rust-only  only the Rust components (what
#                                            README command 1 serves)
#   scripts/build-components.sh --test       everything, and the Python and
#                                            JavaScript SDKs' and services'
#                                            own tests (pytest, node --test)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
components="$root/components"

rust_only=0 test=()
for arg in "$@"; do
    case "$arg" in
        --rust-only) rust_only=1 ;;
        --test) test=(--test) ;;
        *) echo "build-components.sh: unknown argument $arg (use --rust-only or --test)" >&2; exit 2 ;;
    esac
done

rustup target list --installed | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2

# The components workspace has its own target dir and flags; don't inherit
# the host build's (e.g. from cargo running this script, or CI settings).
env -u CARGO_TARGET_DIR -u CARGO_ENCODED_RUSTFLAGS -u RUSTFLAGS \
    cargo build --release --target wasm32-wasip2 --manifest-path "$components/Cargo.toml"

out="$components/target/wasm32-wasip2/release"
for name in identity report; do
    cp "$out/$name.wasm" "$components/$name.wasm"
    echo "$components/$name.wasm"
done
echo "$out/hello.wasm"

[[ $rust_only == 1 ]] && exit 0
"$root/scripts/build-python.sh" "${test[@]}"
"$root/scripts/build-js.sh" "${test[@]}"
