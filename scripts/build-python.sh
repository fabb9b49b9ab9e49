#!/usr/bin/env bash
# Build the Python services (components/identity-py, components/report-py)
# into components/identity-py.wasm and components/report-py.wasm with the
# Python SDK (components/sdk-python), and print their paths.
#
#   scripts/build-python.sh          # build (skips outputs whose inputs are unchanged)
#   scripts/build-python.sh --test   # run the SDK's and the services' pytest suites first
#
# The first run creates components/target/python/venv and pip-installs
# components/sdk-python/requirements.txt (componentize-py, pytest; pinned);
# later runs reuse it until that file changes, and need no network. Every
# run copies wit/ into the SDK and regenerates its bindings (git-ignored
# build outputs). Details: components/sdk-python/build.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
components="$root/components"

python="${PYTHON:-}"
if [ -z "$python" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python="$candidate"
            break
        fi
    done
fi
[ -n "$python" ] || { echo "build-python.sh: Python 3.11 or newer is needed (set PYTHON)" >&2; exit 1; }

exec "$python" "$components/sdk-python/build.py" "$@" \
    "$components/identity-py=$components/identity-py.wasm" \
    "$components/report-py=$components/report-py.wasm"
