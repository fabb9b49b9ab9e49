#!/usr/bin/env python3
"""Differential test: the same requests to two hms-hosts, answers compared.

    python3 components/sdk-python/e2e/compare.py --host target/release/hms-host \\
        --baseline components/identity.wasm components/report.wasm \\
        --candidate components/identity-py.wasm components/report-py.wasm

Each side gets a fresh host (port 0, a temporary data dir) serving the given
components, the demo citizens imported, and API keys for ``identity-admin``
and ``citizen-portal``; then every case below is sent to both, in order
(some write), and the status, the JSON body, ``Allow`` and ``Content-Type``
must be equal. The wording after ``invalid JSON body: `` may differ (serde's
and Python's parse errors). Stdlib only; exit status 1 on any difference.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CITIZENS = REPO / "demo" / "citizens.jsonl"

V, R, C = "/identity/verify", "/reports/identity-check", "/identity/citizens/"

# (method, path, token, body); token: None, "admin", "portal", "junk", "basic"
CASES = [
    ("POST", R, None, '{"id":"C12345"}'),
    ("POST", R, None, '{"id":"C99999"}'),
    ("POST", R, None, '{"id":"X1"}'),
    ("POST", R, None, '{"id":""}'),
    ("POST", R, None, '{"id":"  "}'),
    ("POST", R, None, '{"id":"\\u001c"}'),
    ("POST", R, None, '{"id":"C 1"}'),
    ("POST", R, None, '{"id":5}'),
    ("POST", R, None, "{"),
    ("POST", R, None, '["C12345"]'),
    ("POST", R, None, '{"id":"C12345","more":[1,{"x":null}]}'),
    ("POST", R, None, '{"id":"' + "a" * 65 + '"}'),
    ("GET", R, None, ""),
    ("POST", "/reports/other", None, ""),
    ("POST", "/reports", None, ""),
    ("POST", V, None, '{"id":"C12345"}'),
    ("POST", V, "basic", '{"id":"C12345"}'),
    ("POST", V, "junk", '{"id":"C12345"}'),
    ("POST", V, "portal", '{"id":"C12345"}'),
    ("POST", V, "portal", '{"id":"C99999"}'),
    ("POST", V, "portal", '{"id":"NOPE-1"}'),
    ("POST", V, "portal", '{"id":"C/1"}'),
    ("POST", V, "portal", '{"id":"Ç1"}'),
    ("POST", V, "portal", '["C12345"]'),
    ("POST", V, "portal", '["C12345",1]'),
    ("POST", V, "portal", "[]"),
    ("POST", V, "portal", "{}"),
    ("POST", V, "portal", '{"id":null}'),
    ("POST", V, "portal", '{"id":"a","id":"b"}'),
    ("POST", V, "portal", '{"x":1,"x":2,"id":"C12345"}'),
    ("POST", V, "portal", '{"id":"C12345","x":NaN}'),
    ("POST", V, "portal", '{"id":"C12345","x":1e400}'),
    ("POST", V, "portal", '{"id":"C12345","x":"\\ud800"}'),
    ("POST", V, "portal", b'{"id":"C12345","x":"\xff"}'),
    ("POST", V, "portal", b'\xef\xbb\xbf{"id":"C12345"}'),
    ("POST", V, "portal", '{"id":"C12345"} x'),
    ("POST", V, "portal", '{"id":"C12345","deep":' + "[" * 500 + "]" * 500 + "}"),
    ("POST", V, "portal", ""),
    ("GET", V, "portal", ""),
    ("PUT", V, "portal", ""),
    ("POST", V + "/", "portal", ""),
    ("POST", V + "?x=1", "portal", '{"id":"C12345"}'),
    ("GET", C + "C12345", "admin", ""),
    ("GET", C + "C12345", "portal", ""),
    ("GET", C + "C12345", None, ""),
    ("GET", C + "C77777", "admin", ""),
    ("GET", C + "C%201", "admin", ""),
    ("GET", C + "C%201", "portal", ""),
    ("GET", C, "admin", ""),
    ("GET", C + "C1/x", "admin", ""),
    ("DELETE", C + "C12345", "admin", ""),
    ("HEAD", C + "C12345", "admin", ""),
    ("PUT", C + "C40004", "admin", '{"status":"active","name":"Grace Example","x":1}'),
    ("GET", C + "C40004", "admin", ""),
    ("POST", R, None, '{"id":"C40004"}'),
    ("PUT", C + "C40004", "admin", '["revoked"]'),
    ("GET", C + "C40004", "admin", ""),
    ("POST", R, None, '{"id":"C40004"}'),
    ("PUT", C + "C40004", "admin", '{"status":{"active":null}}'),
    ("PUT", C + "C40004", "admin", '{"status":"gone"}'),
    ("PUT", C + "C40004", "admin", '{"status":"active","status":"revoked"}'),
    ("PUT", C + "C40004", "admin", '{"status":"active","name":5}'),
    ("PUT", C + "C40004", "admin", '{"status":"active","name":"\\ud800"}'),
    ("PUT", C + "C40004", "admin", '{"name":"x"}'),
    ("PUT", C + "C40004", "admin", "null"),
    ("PUT", C + "C40004", "admin", '["active","Ada",1]'),
    ("PUT", C + "C40004", "admin", '{"status":"active","name":null}'),
    ("PUT", C + "C40004", "portal", '{"status":"active"}'),
    ("PUT", C + "C%20", "admin", "{"),
    ("PUT", C + "C50005", "admin", '{"status":"revoked","name":"Zoë \\"Q\\" \\u2603"}'),
    ("GET", C + "C50005", "admin", ""),
    ("POST", R, None, '{"id":"C50005"}'),
    ("GET", "/identity/other", None, ""),
    ("GET", "/identity", None, ""),
]


def start(host, components, work):
    data = Path(tempfile.mkdtemp(prefix="hms-compare-", dir=work))
    log = open(data / "host.log", "w")
    proc = subprocess.Popen(
        [host, "run", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--no-watch",
         *map(str, components)],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    url = None
    while time.monotonic() < deadline and url is None:
        m = re.search(r"listening on (http://\S+)", (data / "host.log").read_text())
        url = m.group(1) if m else None
        time.sleep(0.1)
    started = time.monotonic()
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_hms/health") as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, TypeError):
            pass
        time.sleep(0.2)
    ready = time.monotonic() - started
    cli = [host, "--url", url, "--data-dir", str(data)]
    subprocess.run(cli + ["data", "import", "identity-service", str(CITIZENS)], check=True,
                   capture_output=True)
    tokens = {}
    for kind, subject in [("admin", "identity-admin"), ("portal", "citizen-portal")]:
        key = subprocess.run(cli + ["keys", "create", subject], check=True, capture_output=True,
                             text=True).stdout.strip()
        tokens[kind] = subprocess.run(cli + ["token", key], check=True, capture_output=True,
                                      text=True).stdout.strip()
    return proc, url, tokens, data, ready


def send(url, tokens, method, path, token, body):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url + path, data=data or None, method=method)
    if token == "basic":
        req.add_header("Authorization", "Basic x")
    elif token == "junk":
        req.add_header("Authorization", "Bearer not.a.token")
    elif token:
        req.add_header("Authorization", "Bearer " + tokens[token])
    try:
        with urllib.request.urlopen(req) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        value = raw
    if isinstance(value, dict) and str(value.get("message", "")).startswith("invalid JSON body: "):
        value = dict(value, message="invalid JSON body: ...")
    if isinstance(value, dict) and "refused the ID: " in str(value.get("message", "")):
        inner = value["message"].split("refused the ID: ", 1)[1]
        if "invalid JSON body: " in inner:
            value = dict(value, message=value["message"].split("invalid JSON body: ")[0] + "...")
    return status, value, raw, headers.get("allow"), headers.get("content-type")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", required=True)
    p.add_argument("--baseline", nargs=2, required=True, metavar=("IDENTITY", "REPORT"))
    p.add_argument("--candidate", nargs=2, required=True, metavar=("IDENTITY", "REPORT"))
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show the cases answered alike but not byte for byte")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="hms-compare-")
    procs = []
    try:
        sides = []
        for name, components in [("baseline", args.baseline), ("candidate", args.candidate)]:
            proc, url, tokens, data, ready = start(args.host, components, work)
            procs.append(proc)
            print(f"{name}: {url} ({data}), ready {ready:.1f} s after listening", file=sys.stderr)
            sides.append((url, tokens))
        failures = 0
        same_bytes = 0
        for method, path, token, body in CASES:
            a, b = (send(url, tokens, method, path, token, body) for url, tokens in sides)
            if a[:2] + a[3:] != b[:2] + b[3:]:
                failures += 1
                print(f"DIFF {method} {path} {body!r:.60}\n  baseline:  {a[0]} {a[2]!r:.200} allow={a[3]}\n"
                      f"  candidate: {b[0]} {b[2]!r:.200} allow={b[3]}")
            elif a[2] == b[2]:
                same_bytes += 1
            elif args.verbose:
                print(f"alike {method} {path} {body!r:.60}\n  baseline:  {a[2]!r:.300}\n"
                      f"  candidate: {b[2]!r:.300}")
        print(f"{len(CASES) - failures}/{len(CASES)} cases answered alike"
              f" ({same_bytes} byte for byte)")
        return 1 if failures else 0
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
