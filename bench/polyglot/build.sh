#!/usr/bin/env bash
# Builds the polyglot benchmark's plain wasi:http hello components, which
# `wasmtime serve` runs as they are: bench/polyglot/hello.py ->
# components/target/polyglot/hello-py.wasm (componentize-py from the venv
# scripts/build-python.sh keeps) and hello.js -> hello-js.wasm
# (componentize-js from the npm workspace scripts/build-js.sh installs), both
# pinned there. Run scripts/build-components.sh first (bench/run.sh does).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/components/target/polyglot"
mkdir -p "$out"
"$root/components/target/python/venv/bin/componentize-py" -d "$root/wit" -w wasi:http/proxy@0.2.12 \
    componentize -p "$root/bench/polyglot" hello -o "$out/hello-py.wasm" >&2
# StarlingMonkey is built against WASI 0.2.10: the SDK's copy of the world.
cd "$root/components"
node -e 'import("./sdk-js/src/build.js").then((b) => b.writeWorldCopy(process.argv[1], process.argv[2]))' \
    "$root/wit" "$out/wit-0.2.10"
node_modules/.bin/componentize-js "$root/bench/polyglot/hello.js" --wit "$out/wit-0.2.10" \
    --world-name wasi:http/proxy@0.2.10 -o "$out/hello-js.wasm" >&2
echo "$out/hello-py.wasm"
echo "$out/hello-js.wasm"
