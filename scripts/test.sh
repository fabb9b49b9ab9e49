#!/usr/bin/env bash
# README command 2: build everything and run every test (unit and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
# The cluster tests talk to a real PostgreSQL: a private server for this run
# (Debian's postgresql package is installed when missing), stopped at the end.
source scripts/pg.sh
trap 'pg_stop; rm -f "$log"' EXIT
# Every component, and the JavaScript and Python SDKs' and services' own
# tests (node --test, pytest) on their Core stand-ins.
scripts/build-components.sh --test 2>&1 | tee "$log"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
(unset CARGO_TARGET_DIR; cargo fmt --manifest-path components/Cargo.toml --all -- --check)
(unset CARGO_TARGET_DIR; cargo clippy --locked --manifest-path components/Cargo.toml --target wasm32-wasip2 -- -D warnings)
# The console test drives the web console in Debian's Chromium with the
# pinned playwright-core of tests/console: the browser is installed when
# missing (unless HMS_CHROMIUM names another), the package from the lockfile.
if [ -z "${HMS_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
    echo "installing Chromium (Debian package chromium)" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
fi
npm ci --prefix tests/console --no-audit --no-fund --loglevel=error
[ -n "${HMS_TEST_PG:-}" ] || pg_start
cargo test --locked --workspace 2>&1 | tee -a "$log"
# The guest SDK's and identity-core's unit tests run on the build host: they
# never reach a Core import.
(unset CARGO_TARGET_DIR; cargo test --locked --manifest-path components/Cargo.toml -p hms-guest -p identity-core) 2>&1 | tee -a "$log"
# One closing line over every test run: cargo's `test result:` lines, node's
# `# pass`/`# fail` and pytest's `N passed, M failed in Ts` (-q).
awk '
    /^test result:/ { p += $4; f += $6; next }
    /^# pass / { p += $3 }
    /^# fail / { f += $3 }
    /^[0-9]+ (passed|failed).* in [0-9.]+s/ {
        for (i = 1; i < NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
        }
    }
    END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
