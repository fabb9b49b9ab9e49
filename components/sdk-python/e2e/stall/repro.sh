#!/usr/bin/env bash
# Reproduce the stall of in-process calls between two Python components:
# ping-a (Python) calls ping-b (Python) through the host; now and then a
# call hangs until the request deadline (10 s: 504 to the client), much more
# often with 2+ requests in flight. Nothing is busy meanwhile (every tokio
# worker is parked), so it looks like a lost wake-up; with HMS_LOG=trace it
# does not happen. Rust->Python and Python->Rust calls do not stall.
#
#   components/sdk-python/e2e/stall/repro.sh HMS_HOST_BINARY [REQUESTS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
host="${1:?usage: repro.sh HMS_HOST_BINARY [REQUESTS]}"
n="${2:-200}"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 "$here/../../build.py" "$here/ping-a=$work/ping-a.wasm" "$here/ping-b=$work/ping-b.wasm" >/dev/null
"$host" run --listen 127.0.0.1:0 --data-dir "$work/data" --no-watch "$work/ping-a.wasm" "$work/ping-b.wasm" >"$work/host.log" 2>&1 &
pid=$!
until grep -q listening "$work/host.log"; do sleep 0.2; done
url="$(grep -o 'http://[0-9.:]*' "$work/host.log" | head -1)"
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/_hms/health")" = 200 ]; do sleep 0.2; done
stalled=0
for i in $(seq 1 "$n"); do
    code="$(curl -s -o /dev/null -m 15 -w '%{http_code}' "$url/a/call")"
    [ "$code" = 200 ] || { stalled=$((stalled + 1)); echo "request $i: $code"; }
done
echo "$stalled of $n sequential calls stalled"
if command -v wrk >/dev/null; then
    echo "2 connections for 5 s (Rust services: hundreds of requests, none over 100 ms):"
    wrk -t1 -c2 -d5s "$url/a/call" | grep -E "Latency|requests in|Socket errors|Non-2xx" || true
fi
