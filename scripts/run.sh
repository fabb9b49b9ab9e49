#!/usr/bin/env bash
# README command 1: build everything and serve the example services.
#   scripts/run.sh [extra `hms-host run` flags...]
# Serves identity-service and report-service on http://127.0.0.1:8080 with the
# data directory ./hms-data, until Ctrl-C. identity-service's store is loaded
# with the demo citizens (demo/citizens.jsonl; C12345 among them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-components.sh --rust-only
cargo build --release --locked -p hms-host
exec target/release/hms-host run --import identity-service=demo/citizens.jsonl "$@" \
    components/identity.wasm components/report.wasm
