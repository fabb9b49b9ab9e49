#!/usr/bin/env bash
# Benchmark harness: installs wrk, builds everything in release mode and runs
# bench/bench.py (arguments pass through, e.g. `bench/run.sh --seconds 5
# --only hello seed`). bench.py installs the other peers into bench/cache
# (git-ignored) only when a selected scenario needs them: wasmtime-cli for
# hello, the Flask venv for seed. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
scripts/build-components.sh >/dev/null
bench/polyglot/build.sh >/dev/null
cargo build --release --locked -p hms-host -p hms-bench-native
exec python3 bench/bench.py "$@"
