#!/usr/bin/env bash
# Build the guest components (components/ workspace) for wasm32-wasip2 and
# place the deployable service components at components/identity.wasm and
# components/report.wasm. The plain wasi:http example stays at
# components/target/wasm32-wasip2/release/hello.wasm.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
components="$root/components"

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
