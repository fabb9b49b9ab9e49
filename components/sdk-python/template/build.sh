#!/usr/bin/env bash
# Test and build {{name}}: runs tests/ with pytest, then writes {{name}}.wasm
# next to this script (and prints its path). Needs the hms Python SDK: set
# HMS_SDK to <hms-host checkout>/components/sdk-python, or keep this
# directory inside the checkout (it is found by walking up from here).
# The first build creates the SDK's venv (pip, network); later ones are offline.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="${HMS_SDK:-}"
if [ -z "$sdk" ]; then
    dir="$here"
    while [ "$dir" != / ]; do
        if [ -f "$dir/components/sdk-python/build.py" ]; then
            sdk="$dir/components/sdk-python"
            break
        fi
        dir="$(dirname "$dir")"
    done
fi
if [ -z "$sdk" ] || [ ! -f "$sdk/build.py" ]; then
    echo "build.sh: the hms Python SDK was not found; set HMS_SDK=<hms-host checkout>/components/sdk-python" >&2
    exit 1
fi

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
[ -n "$python" ] || { echo "build.sh: Python 3.11 or newer is needed (set PYTHON)" >&2; exit 1; }

exec "$python" "$sdk/build.py" --test --no-sdk-tests "$here=$here/{{name}}.wasm"
