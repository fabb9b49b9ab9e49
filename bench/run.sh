#!/usr/bin/env bash
# Benchmark harness: installs its peers into bench/cache (git-ignored), builds
# everything in release mode and runs bench/bench.py (arguments pass through,
# e.g. `bench/run.sh --seconds 5 --only hello seed`). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=bench/cache
WASMTIME_VERSION=48.0.8   # the wasmtime the host is built on (see Cargo.lock)

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
if ! "$cache/bin/wasmtime" --version 2>/dev/null | grep -q "$WASMTIME_VERSION"; then
    echo "installing wasmtime-cli $WASMTIME_VERSION into $cache (about 7 minutes on 2 cores)"
    cargo install --locked --root "$cache" "wasmtime-cli@$WASMTIME_VERSION"
fi
if [ ! -x "$cache/venv/bin/gunicorn" ]; then
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install -q flask==3.1.3 gunicorn==27.0.1 pyjwt==2.15.1 requests==2.34.2
fi
scripts/build-components.sh >/dev/null
cargo build --release --locked -p hms-host -p hms-bench-native
exec python3 bench/bench.py "$@"
