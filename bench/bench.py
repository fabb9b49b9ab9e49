#!/usr/bin/env python3
"""Benchmark harness: hms-host against wasmtime serve, native axum and Flask,
side by side in one run.

Run through bench/run.sh, which installs wrk and builds everything; the
other peers are installed into bench/cache (git-ignored) here, and only when
a selected scenario needs them: wasmtime-cli for hello, the Flask venv for
seed.
Every comparison starts all its contenders, then alternates them (A B A B ...)
for --reps rounds of wrk at each connection count, and reports medians and
ratios, so machine noise hits every contender alike. Results go to
bench/results/<UTC time>.json and bench/results/latest.md (--out: elsewhere).

Scenarios: hello, identity, logging, seed, swap, startup (against peers or
variants of hms-host); attack (the seed flow's latency while hostile
components are hammered beside it); store (durable store operations through
the store-probe test guest, against a request that touches no store);
scale (resident memory and start-up time with 1, 10 and 100 distinct
components loaded; memory per idle component); baseline (hello and the seed
flow against another hms-host binary given with --baseline, e.g. the
previous main: not in the default set); cluster (a cluster host, stores in
a private PostgreSQL, against a standalone host: the seed flow and store
calls; time from kill -9 of a host to its leaving discovery; a cross-host
call, the seed flow with identity placed on another host, against the same
call in-process).
"""
import argparse
import collections
import concurrent.futures
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPConnection, HTTPException  # (`http` is the helper below)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
CACHE = os.path.join(BENCH, "cache")
HOST_BIN = os.path.join(ROOT, "target", "release", "hms-host")
NATIVE_BIN = os.path.join(ROOT, "target", "release", "hms-bench-native")
WASMTIME = os.path.join(CACHE, "bin", "wasmtime")
VENV_BIN = os.path.join(CACHE, "venv", "bin")
WASMTIME_VERSION = "48.0.8"  # the wasmtime the host is built on (see Cargo.lock)
VENV_PACKAGES = ["flask==3.1.3", "gunicorn==27.0.1", "pyjwt==2.15.1", "requests==2.34.2"]
WASM = os.path.join(ROOT, "components", "target", "wasm32-wasip2", "release")
LUA = os.path.join(BENCH, "wrk", "request.lua")
STORE_LUA = os.path.join(BENCH, "wrk", "store.lua")
ID_BODY = '{"id":"C12345"}'
# Citizen records for identity's store; loaded into a host whose identity
# does not know C12345 (see ensure_citizens).
CITIZENS = os.path.join(ROOT, "demo", "citizens.jsonl")


# ---------------------------------------------------------------- peers

def ensure_wasmtime():
    """wasmtime-cli WASMTIME_VERSION in bench/cache (for hello's `wasmtime
    serve`), installed with `cargo install` unless it is there already."""
    try:
        version = subprocess.run([WASMTIME, "--version"], capture_output=True, text=True).stdout
    except OSError:
        version = ""
    if WASMTIME_VERSION not in version:
        print(f"installing wasmtime-cli {WASMTIME_VERSION} into {CACHE} (about 15 minutes on 2 cores)", flush=True)
        subprocess.run(["cargo", "install", "--locked", "--root", CACHE, f"wasmtime-cli@{WASMTIME_VERSION}"],
                       cwd=ROOT, check=True)


def ensure_venv():
    """The Flask contenders' venv in bench/cache (for seed), unless it is
    there already."""
    if not os.access(os.path.join(VENV_BIN, "gunicorn"), os.X_OK):
        venv = os.path.join(CACHE, "venv")
        print(f"installing Flask, gunicorn, PyJWT and requests into {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(VENV_BIN, "pip"), "install", "-q", *VENV_PACKAGES], check=True)


# What each scenario needs besides hms-host, hms-bench-native and wrk.
PEERS = {"hello": [ensure_wasmtime], "seed": [ensure_venv], "polyglot": [ensure_wasmtime, ensure_venv]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=5):
    data = body if isinstance(body, bytes) else (body.encode() if body else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body and not isinstance(body, bytes):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    """A server process; stopped (its whole process group) by stop(). Its
    stderr goes to the file `log` if given, else nowhere."""

    def __init__(self, name, argv, url, env=None, read_lines=0, cwd=None, log=None):
        self.name, self.url = name, url
        with open(log, "w") if log else open(os.devnull, "w") as err:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=err, text=True,
                env=dict(os.environ, **(env or {})), cwd=cwd, start_new_session=True)
        self.lines = [self.proc.stdout.readline().strip() for _ in range(read_lines)]

    def wait_ready(self, probe, method="GET", body=None, headers=None, timeout=120, ok=(200,)):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited early with {self.proc.returncode}")
            try:
                status, _ = http(method, self.url + probe, body, headers, timeout=2)
                if status in ok:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit(f"{self.name} did not become ready on {self.url}{probe}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_hms(components, tmp, tag, extra=(), binary=HOST_BIN):
    """Starts hms-host (`binary`), waits until it is healthy and, if it
    serves identity, makes sure identity knows citizen C12345
    (ensure_citizens)."""
    data = os.path.join(tmp, f"hms-{tag}")
    argv = [binary, "run", "--listen", "127.0.0.1:0", "--data-dir", data, *extra, *components]
    s = Server(f"hms-host {tag}", argv, None, read_lines=1)
    s.url = s.lines[0].rsplit(" ", 1)[-1]
    s.data_dir = data
    s.token = None
    try:
        s.wait_ready("/_hms/health")
    except SystemExit:
        s.stop()  # if it hangs rather than exits
        raise
    ensure_citizens(s, components)
    return s


def hms_token(server):
    """A token for a fresh API key; one per host, reused."""
    if server.token:
        return server.token
    env = dict(os.environ, HMS_URL=server.url, HMS_DATA_DIR=server.data_dir)
    key = subprocess.check_output([HOST_BIN, "keys", "create", "bench-client"], env=env, text=True,
                                  stderr=subprocess.DEVNULL).strip()
    server.token = subprocess.check_output([HOST_BIN, "token", key], env=env, text=True).strip()
    return server.token


def identity_knows_c12345(server, components):
    """Whether the host answers C12345 as verified: through report when it is
    deployed, else straight from identity with a token."""
    try:
        if "report.wasm" in components:
            status, body = http("POST", server.url + "/reports/identity-check", ID_BODY)
            return status == 200 and b"ID C12345 is verified" in body
        status, body = http("POST", server.url + "/identity/verify", ID_BODY,
                            {"Authorization": f"Bearer {hms_token(server)}"})
        return status == 200 and json.loads(body).get("status") == "verified"
    except (OSError, ValueError):
        return False


def ensure_citizens(server, components):
    """Once identity keeps its citizens in its own store, a fresh data
    directory knows none: load demo/citizens.jsonl into it (only if C12345 is
    not verified already, and only if that file exists)."""
    components = [os.path.basename(c) for c in components]
    if not any(c.startswith("identity") for c in components) or identity_knows_c12345(server, components):
        return
    if not os.path.exists(CITIZENS):
        print(f"  WARNING: {server.name} does not answer C12345 as verified and {CITIZENS} does not exist; "
              f"its identity requests will not take the verified path", flush=True)
        return
    argv = [HOST_BIN, "data", "import", "identity-service", CITIZENS, "--url", server.url,
            "--data-dir", server.data_dir]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not identity_knows_c12345(server, components):
        print(f"  WARNING: {' '.join(argv)} exited {done.returncode} "
              f"({(done.stderr or done.stdout).strip()[-300:]!r}) and C12345 is not verified: "
              f"its identity requests will not take the verified path", flush=True)


def start_native(mode, tmp, *extra):
    data = os.path.join(tmp, "native")
    s = Server(f"native {mode}", [NATIVE_BIN, mode, "127.0.0.1:0", data, *extra], None, read_lines=2)
    s.url = s.lines[0].rsplit(" ", 1)[-1]
    s.token = s.lines[1].split(" ", 1)[1]
    return s


def gunicorn(app, port, env, workers):
    argv = [os.path.join(VENV_BIN, "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", app]
    return Server(f"flask {app}", argv, f"http://127.0.0.1:{port}", env=env, cwd=os.path.join(BENCH, "flask"))


# ---------------------------------------------------------------- wrk

def group_stats(pgid):
    """The /proc/<pid>/stat fields (after the command name) of every live
    process in a process group, with their pids."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: pgrp
            yield pid, fields


def group_cpu_seconds(pgid):
    """User+system CPU seconds of every live process in a process group."""
    total = sum(int(fields[11]) + int(fields[12]) for _, fields in group_stats(pgid))  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(url, conns, seconds, method="GET", body="", auth="", servers=(), script=LUA, env=None):
    """One wrk run; `servers` are the contender's processes, whose CPU time
    per request is reported as cpu_us. `script` shapes the requests, from
    WRK_METHOD, WRK_BODY, WRK_AUTH and whatever else `env` sets."""
    env = dict(os.environ, WRK_METHOD=method, WRK_BODY=body, WRK_AUTH=auth, **(env or {}))
    cpu0 = sum(group_cpu_seconds(s.proc.pid) for s in servers)
    threads = min(2, conns)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url],
                         env=env, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {m.group(1): float(m.group(2)) * UNITS[m.group(3)]
           for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    cpu = sum(group_cpu_seconds(s.proc.pid) for s in servers) - cpu0
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "requests": total, "errors": errors,
            "cpu_us": cpu / total * 1e6 if servers and total else None}


def wrk_split(urls, conns, seconds, servers=(), **shape):
    """wrk against every URL of `urls` at once, the connections split among
    them: throughput and requests summed, latency the worst of the runs,
    CPU per request over all `servers`."""
    cpu0 = sum(group_cpu_seconds(s.proc.pid) for s in servers)
    share = max(1, conns // len(urls))
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        runs = list(pool.map(lambda u: wrk(u, share, seconds, **shape), urls))
    total = sum(r["requests"] for r in runs)
    cpu = sum(group_cpu_seconds(s.proc.pid) for s in servers) - cpu0
    return {"rps": sum(r["rps"] for r in runs), "p50_ms": max(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs), "requests": total,
            "errors": sum(r["errors"] for r in runs), "cpu_us": cpu / total * 1e6 if servers and total else None}


def summarize(scenario, conns, contender, rs):
    """One result row: medians of the runs `rs`, failures summed."""
    return {"scenario": scenario, "conns": conns, "contender": contender, "runs": rs,
            "rps": statistics.median(r["rps"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "cpu_us": statistics.median(r["cpu_us"] or 0 for r in rs),
            "errors": sum(r["errors"] for r in rs)}


def compare(results, scenario, contenders, conns_list, args, method="GET", body=""):
    """contenders: list of (name, url, auth header, server processes), each
    optionally followed by a dict overriding wrk()'s method, body, script
    and env for that contender."""
    for conns in conns_list:
        runs = {name: [] for name, *_ in contenders}
        for rep in range(args.reps):
            for name, url, auth, servers, *opts in contenders:
                shape = dict({"method": method, "body": body}, **(opts[0] if opts else {}))
                if isinstance(url, (list, tuple)):  # the load split among several hosts
                    r = wrk_split(url, conns, args.seconds, auth=auth, servers=servers, **shape)
                else:
                    r = wrk(url, conns, args.seconds, auth=auth, servers=servers, **shape)
                runs[name].append(r)
                print(f"  {scenario:<10} c={conns:<3} rep {rep + 1}/{args.reps} {name:<28} "
                      f"{r['rps']:>10.0f} req/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
                      f"cpu {r['cpu_us'] or 0:.0f} us/req  errors {r['errors']}",
                      flush=True)
        for name, *_ in contenders:
            results.append(summarize(scenario, conns, name, runs[name]))


# ---------------------------------------------------------------- scenarios

def bench_hello(results, tmp, args):
    hello = os.path.join(WASM, "hello.wasm")
    hms = start_hms([hello], tmp, "hello")
    port = free_port()
    # `-S cli=y`: Rust std guests import wasi:cli (environment, exit, ...),
    # which wasmtime serve links only on request; hms-host links it, empty.
    wt = Server("wasmtime serve", [WASMTIME, "serve", "-S", "cli=y", "--addr", f"127.0.0.1:{port}", hello],
                f"http://127.0.0.1:{port}").wait_ready("/hello")
    native = start_native("hello", tmp).wait_ready("/hello")
    try:
        compare(results, "hello", [("hms-host", hms.url + "/hello", "", [hms]),
                                   ("wasmtime serve", wt.url + "/hello", "", [wt]),
                                   ("native axum", native.url + "/hello", "", [native])], args.conns, args)
    finally:
        for s in (hms, wt, native):
            s.stop()


def bench_identity(results, tmp, args):
    hms = start_hms([os.path.join(WASM, "identity.wasm")], tmp, "identity")
    native = start_native("identity", tmp)
    hms_auth, native_auth = f"Bearer {hms_token(hms)}", f"Bearer {native.token}"
    native.wait_ready("/identity/verify", "POST", ID_BODY, {"Authorization": native_auth})
    try:
        compare(results, "identity", [("hms-host", hms.url + "/identity/verify", hms_auth, [hms]),
                                      ("native axum", native.url + "/identity/verify", native_auth, [native])],
                args.conns, args, "POST", ID_BODY)
    finally:
        for s in (hms, native):
            s.stop()


def bench_logging(results, tmp, args):
    """The price of the audit log: identity (one durable event per request)
    against the same service without its log call."""
    servers = {}
    try:
        for name, wasm, extra in (("hms-host, identity logging", "identity.wasm", []),
                                  ("hms-host, identity logging, process durability", "identity.wasm",
                                   ["--audit-durability", "process"]),
                                  ("hms-host, identity not logging", "identity_quiet.wasm", [])):
            tag = f"{wasm.split('.')[0]}-{len(servers)}"
            s = start_hms([os.path.join(WASM, wasm)], tmp, tag, extra)
            servers[name] = (s, f"Bearer {hms_token(s)}")
        compare(results, "logging", [(n, s.url + "/identity/verify", auth, [s]) for n, (s, auth) in servers.items()],
                args.conns, args, "POST", ID_BODY)
    finally:
        for s, _ in servers.values():
            s.stop()


def start_flask(tmp, args, tag):
    """The seed's Flask design (bench/flask): Core, identity and report under
    gunicorn, each ready; report last. Its log goes to TMP/TAG.jsonl."""
    cport, iport, rport = free_port(), free_port(), free_port()
    env = {"HMS_BENCH_CORE": f"http://127.0.0.1:{cport}", "HMS_BENCH_LOG": os.path.join(tmp, f"{tag}.jsonl")}
    procs = []
    try:
        # Core keeps the registry in memory: one worker, so all see it.
        procs.append(gunicorn("core:app", cport, env, 1).wait_ready("/discover/none", ok=(404,)))
        procs.append(gunicorn("identity:app", iport, dict(env, HMS_BENCH_PORT=str(iport)), args.flask_workers)
                     .wait_ready("/identity/verify", "POST", ID_BODY, ok=(401,)))
        procs.append(gunicorn("report:app", rport, env, args.flask_workers)
                     .wait_ready("/reports/identity-check", "POST", ID_BODY))
    except BaseException:
        for p in procs:
            p.stop()
        raise
    return procs


def bench_seed(results, tmp, args):
    comps = [os.path.join(WASM, "identity.wasm"), os.path.join(WASM, "report.wasm")]
    hms = start_hms(comps, tmp, "seed")
    native_id = start_native("identity", tmp)
    native_id.wait_ready("/identity/verify", "POST", ID_BODY, {"Authorization": f"Bearer {native_id.token}"})
    native_rp = start_native("report", tmp, native_id.url).wait_ready("/reports/identity-check", "POST", ID_BODY)
    native_in = start_native("seed", tmp).wait_ready("/reports/identity-check", "POST", ID_BODY)
    flask = []
    try:
        flask = start_flask(tmp, args, "flask")
        compare(results, "seed", [("hms-host", hms.url + "/reports/identity-check", "", [hms]),
                                  ("flask+gunicorn (3 procs)", flask[-1].url + "/reports/identity-check", "", flask),
                                  ("native axum, 2 procs", native_rp.url + "/reports/identity-check", "",
                                   [native_id, native_rp]),
                                  ("native in-process", native_in.url + "/reports/identity-check", "", [native_in])],
                args.conns, args, "POST", ID_BODY)
    finally:
        for s in (hms, native_id, native_rp, native_in, *flask):
            s.stop()


def bench_baseline(results, tmp, args):
    """This build against another hms-host binary (--baseline, e.g. a build
    of the previous main) on the same components: hello and the seed flow,
    alternated, so a change is judged by its ratio in one run."""
    if not args.baseline:
        sys.exit("the baseline scenario needs --baseline PATH (another hms-host binary)")
    seed = [os.path.join(WASM, "identity.wasm"), os.path.join(WASM, "report.wasm")]
    for scenario, comps, path, method, body in (
            ("baseline hello", [os.path.join(WASM, "hello.wasm")], "/hello", "GET", ""),
            ("baseline seed", seed, "/reports/identity-check", "POST", ID_BODY)):
        tag = scenario.split()[-1]
        this = start_hms(comps, tmp, f"{tag}-this")
        base = start_hms(comps, tmp, f"{tag}-base", binary=args.baseline)
        try:
            compare(results, scenario, [("hms-host", this.url + path, "", [this]),
                                        ("baseline", base.url + path, "", [base])],
                    args.conns, args, method, body)
        finally:
            for s_ in (this, base):
                s_.stop()


def bench_swap(results, tmp, args):
    """p99 of a steady seed stream with and without identity being swapped
    every second, and the time from upload to the first request served by
    the new version."""
    comps = [os.path.join(WASM, "identity.wasm"), os.path.join(WASM, "report.wasm")]
    versions = [open(os.path.join(WASM, f), "rb").read() for f in ("identity_confirmed.wasm", "identity.wasm")]
    answers = ["confirmed", "verified"]
    hms = start_hms(comps, tmp, "swap", ["--no-watch"])
    admin = open(os.path.join(hms.data_dir, "admin.token")).read().strip()
    url = hms.url + "/reports/identity-check"
    swap_ms = []

    def swap_loop(stop):
        i = 0
        while not stop.wait(1.0):
            t0 = time.perf_counter()
            req = urllib.request.Request(hms.url + "/_hms/services/identity-service/versions", data=versions[i % 2],
                                         method="POST", headers={"Authorization": f"Bearer {admin}"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 201
            _, body = http("POST", url, ID_BODY)
            swap_ms.append((time.perf_counter() - t0) * 1e3)
            assert answers[i % 2] in body.decode(), body
            i += 1

    try:
        for conns in args.conns:
            runs = {"no swaps": [], "swap every 1 s": []}
            for rep in range(args.reps):
                for name in runs:
                    stop = threading.Event()
                    t = threading.Thread(target=swap_loop, args=(stop,)) if name != "no swaps" else None
                    if t:
                        t.start()
                    r = wrk(url, conns, args.seconds, "POST", ID_BODY, "", [hms])
                    if t:
                        stop.set()
                        t.join()
                    runs[name].append(r)
                    print(f"  swap       c={conns:<3} rep {rep + 1}/{args.reps} {name:<28} {r['rps']:>10.0f} req/s  "
                          f"p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  errors {r['errors']}", flush=True)
            for name, rs in runs.items():
                results.append(summarize("swap", conns, f"hms-host, {name}", rs))
    finally:
        hms.stop()
    summary = {"upload_to_served_ms": statistics.median(swap_ms), "swaps": len(swap_ms), "max_ms": max(swap_ms)}
    print(f"  swap       upload to first request on the new version: median {summary['upload_to_served_ms']:.1f} ms, "
          f"max {summary['max_ms']:.1f} ms over {len(swap_ms)} swaps", flush=True)
    return summary


def bench_startup(tmp, args):
    """Process start to the first answered seed request, cold and warm cache."""
    comps = [os.path.join(WASM, "identity.wasm"), os.path.join(WASM, "report.wasm")]
    out = {"cold_ms": [], "warm_ms": []}
    for rep in range(args.startup_reps):
        data = os.path.join(tmp, f"startup-{rep}")
        for kind in ("cold_ms", "warm_ms"):  # cold: empty data dir; warm: same dir again
            t0 = time.perf_counter()
            s = Server("hms-host startup", [HOST_BIN, "run", "--listen", "127.0.0.1:0", "--data-dir", data, *comps],
                       None, read_lines=1)
            s.url = s.lines[0].rsplit(" ", 1)[-1]
            while True:
                try:
                    if http("POST", s.url + "/reports/identity-check", ID_BODY)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.002)
            out[kind].append((time.perf_counter() - t0) * 1e3)
            s.stop()
    summary = {k: statistics.median(v) for k, v in out.items()}
    print(f"  startup    cold {summary['cold_ms']:.0f} ms  warm {summary['warm_ms']:.0f} ms "
          f"(medians of {args.startup_reps})", flush=True)
    return {"runs": out, **summary}


# ---------------------------------------------------------------- polyglot

POLYGLOT = os.path.join(ROOT, "components", "target", "polyglot")  # bench/polyglot/build.sh
COMPONENTS = os.path.join(ROOT, "components")


def start_wasmtime(wasm):
    port = free_port()
    # `-S cli=y`: componentize-py and StarlingMonkey import wasi:cli.
    return Server("wasmtime serve", [WASMTIME, "serve", "-S", "cli=y", "--addr", f"127.0.0.1:{port}", wasm],
                  f"http://127.0.0.1:{port}").wait_ready("/")


def polyglot_start(wasm, tmp, tag, probe):
    """Seconds from process start to a healthy host serving `wasm`, with an
    empty compile cache (cold) then the same data directory again (warm),
    and the host's resident memory (KiB) after one request to `probe` in
    each case."""
    data = os.path.join(tmp, f"start-{tag}")
    out = {}
    for kind in ("cold", "warm"):
        t0 = time.perf_counter()
        s = Server(f"hms-host {tag}", [HOST_BIN, "run", "--listen", "127.0.0.1:0", "--data-dir", data, wasm],
                   None, read_lines=1)
        s.url = s.lines[0].rsplit(" ", 1)[-1]
        s.wait_ready("/_hms/health", timeout=600)
        out[f"{kind}_s"] = time.perf_counter() - t0
        http("GET", s.url + probe)
        time.sleep(0.5)
        out[f"{kind}_rss_kb"] = group_memory_kb(s.proc.pid)["VmRSS"]
        s.stop()
    return out


KEPT = "hms-host, instances kept"  # requests_per_instance = REQUESTS_PER_INSTANCE


def kept_config(tmp):
    """A config file that lets every service's instances serve many requests
    (`requests_per_instance`): the opt-in that trades isolation between a
    service's own requests for the cost of instantiating."""
    path = os.path.join(tmp, "kept.toml")
    with open(path, "w") as f:
        f.write(f"[defaults]\nrequests_per_instance = {REQUESTS_PER_INSTANCE}\n")
    return path


REQUESTS_PER_INSTANCE = 10000


def bench_polyglot(results, tmp, args):
    """Python and JavaScript on hms-host: the same hello .wasm against
    wasmtime serve (which runs each wasi:http 0.2 request in a fresh
    instance, as hms-host does by default), with hms-host also keeping
    instances between requests; the seed flow all-Python against the seed's
    Flask design, both ways; and start-up time and memory of one Python and
    one JavaScript service."""
    conns = args.polyglot_conns
    kept = ["--config", kept_config(tmp)]
    for lang in ("py", "js"):
        wasm = os.path.join(POLYGLOT, f"hello-{lang}.wasm")
        hms = start_hms([wasm], tmp, f"hello-{lang}")
        warm = start_hms([wasm], tmp, f"hello-{lang}-kept", extra=kept)
        wt = start_wasmtime(wasm)
        try:
            compare(results, f"hello-{lang}", [("hms-host", hms.url + f"/hello-{lang}/", "", [hms]),
                                             (KEPT, warm.url + f"/hello-{lang}/", "", [warm]),
                                             ("wasmtime serve", wt.url + "/", "", [wt])], conns, args)
        finally:
            for s in (hms, warm, wt):
                s.stop()

    comps = [os.path.join(COMPONENTS, "identity-py.wasm"), os.path.join(COMPONENTS, "report-py.wasm")]
    hms = start_hms(comps, tmp, "seed-py")
    warm = start_hms(comps, tmp, "seed-py-kept", extra=kept)
    flask = []
    try:
        flask = start_flask(tmp, args, "flask-py")
        compare(results, "seed-py", [("hms-host", hms.url + "/reports/identity-check", "", [hms]),
                                     (KEPT, warm.url + "/reports/identity-check", "", [warm]),
                                     ("flask+gunicorn (3 procs)", flask[-1].url + "/reports/identity-check", "",
                                      flask)],
                conns, args, "POST", ID_BODY)
    finally:
        for s in (hms, warm, *flask):
            s.stop()

    starts = {}
    for tag, wasm, probe in (("rust", os.path.join(WASM, "hello.wasm"), "/hello/"),
                             ("python", os.path.join(COMPONENTS, "identity-py.wasm"), "/identity/verify"),
                             ("js", os.path.join(COMPONENTS, "notice-js.wasm"), "/notices")):
        starts[tag] = polyglot_start(wasm, tmp, tag, probe)
        st = starts[tag]
        print(f"  start {tag:<7} cold {st['cold_s']:.1f} s ({st['cold_rss_kb'] // 1024} MiB)  "
              f"warm {st['warm_s']:.2f} s ({st['warm_rss_kb'] // 1024} MiB)", flush=True)
    return starts


# ---------------------------------------------------------------- scale

SCALE_COUNTS = (1, 10, 100)  # components loaded at once
SCALE_SECTION = "hms-bench-scale"  # the custom section that tells the copies apart


def leb128(n):
    """Unsigned LEB128, as wasm encodes sizes."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def with_custom_section(wasm, name, payload):
    """`wasm` with a custom section (id 0: size, name length, name, payload)
    appended: still the same valid component, with another content digest."""
    name = name.encode()
    body = leb128(len(name)) + name + payload
    return wasm + b"\x00" + leb128(len(body)) + body


def scale_copies(tmp, n):
    """n distinct copies of hello.wasm, scale-000.wasm ...: each a plain
    wasi:http component served as service scale-NNN under /scale-NNN/...,
    each with its own digest, so the host compiles and keeps each apart."""
    hello = open(os.path.join(WASM, "hello.wasm"), "rb").read()
    folder = os.path.join(tmp, "scale-components")
    os.makedirs(folder, exist_ok=True)
    files = []
    for i in range(n):
        path = os.path.join(folder, f"scale-{i:03}.wasm")
        with open(path, "wb") as f:
            f.write(with_custom_section(hello, SCALE_SECTION, f"copy {i}".encode()))
        files.append(path)
    return files


def group_memory_kb(pgid):
    """VmRSS and its parts (RssAnon, RssFile, RssShmem), in KiB, summed over
    every live process of a process group."""
    keys = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    total = dict.fromkeys(keys, 0)
    for pid, _ in group_stats(pgid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in total:
                        total[key] += int(value.split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


class ScaleFailure(Exception):
    pass


def scale_start(files, data, log, timeout=600):
    """Starts hms-host on `files` with data directory `data` and waits until
    every one of them answers 200 (polled in deploy order, on one keep-alive
    connection). Returns the server, the ms from process start to the
    listening line and the ms to the last service's first 200."""
    t0 = time.perf_counter()
    s = Server(f"hms-host scale ({len(files)})", [HOST_BIN, "run", "--listen", "127.0.0.1:0", "--data-dir", data,
                                                  *files], None, read_lines=1, log=log)
    listening_ms = (time.perf_counter() - t0) * 1e3

    def fail(why):
        s.stop()
        with open(log) as f:
            tail = f.read().strip()[-2000:]
        raise ScaleFailure(f"{why}; its stderr ends with: {tail}" if tail else why)

    if not s.lines[0].startswith("hms-host listening on "):
        s.proc.wait(10)
        fail(f"hms-host exited with {s.proc.returncode} before listening")
    s.url = s.lines[0].rsplit(" ", 1)[-1]
    u = urllib.parse.urlsplit(s.url)
    conn, deadline = None, time.time() + timeout
    for f in files:
        path = f"/{os.path.splitext(os.path.basename(f))[0]}/"
        while True:
            if s.proc.poll() is not None:
                fail(f"hms-host exited with {s.proc.returncode} while {path} did not answer yet")
            if time.time() > deadline:
                fail(f"{path} did not answer 200 within {timeout} s")
            try:
                conn = conn or HTTPConnection(u.hostname, u.port, timeout=timeout)
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    break
            except (OSError, HTTPException):
                conn.close()
                conn = None
            time.sleep(0.002)
    all_ms = (time.perf_counter() - t0) * 1e3
    if conn:
        conn.close()
    return s, listening_ms, all_ms


def bench_scale(tmp, args):
    """Resident memory and start-up time with 1, 10 and 100 distinct
    components (copies of hello.wasm) on one host: start-up to every one of
    them answering, with an empty data directory (cold: compiling all) and
    with the same directory again (warm: compile cache hits); RSS of the host
    idle right after that, and after a short wrk run against one of them.
    Memory per idle component: (RSS at the most - RSS at 1) / (most - 1)."""
    files = scale_copies(tmp, max(SCALE_COUNTS))
    conns = max(args.conns)
    load_avg = os.getloadavg()
    runs, failed = [], None
    mib = lambda kb: kb / 1024  # noqa: E731
    counts = list(SCALE_COUNTS)
    for rep in range(args.startup_reps):
        for n in SCALE_COUNTS:
            if n not in counts:
                continue  # failed at fewer components already
            data = os.path.join(tmp, f"scale-{n}-{rep}")
            for kind in ("cold", "warm"):  # cold: empty data dir; warm: same dir again
                log = os.path.join(tmp, f"scale-{n}-{rep}-{kind}.log")
                try:
                    s, listening_ms, start_ms = scale_start(files[:n], data, log)
                except ScaleFailure as e:
                    failed = {"components": n, "kind": kind, "rep": rep + 1, "error": str(e)}
                    print(f"  scale      N={n:<3} rep {rep + 1}/{args.startup_reps} {kind}: FAILED: {e}", flush=True)
                    counts = [c for c in counts if c < n]
                    break
                try:
                    time.sleep(0.5)  # idle: the last answers are out, instances recycled
                    idle = group_memory_kb(s.proc.pid)
                    run = {"components": n, "kind": kind, "rep": rep + 1, "listening_ms": listening_ms,
                           "start_ms": start_ms, "idle_kb": idle}
                    loaded = ""
                    if kind == "warm" and args.scale_load_seconds:
                        r = wrk(s.url + "/scale-000/", conns, args.scale_load_seconds, servers=[s])
                        time.sleep(0.5)
                        run["load"] = {"conns": conns, "seconds": args.scale_load_seconds, "rps": r["rps"],
                                       "errors": r["errors"], "kb": group_memory_kb(s.proc.pid)}
                        loaded = (f"  after wrk c={conns} ({r['rps']:.0f} req/s, errors {r['errors']}) "
                                  f"RSS {mib(run['load']['kb']['VmRSS']):.1f} MiB")
                finally:
                    s.stop()
                runs.append(run)
                print(f"  scale      N={n:<3} rep {rep + 1}/{args.startup_reps} {kind}  all {n} answered after "
                      f"{start_ms:7.0f} ms (listening after {listening_ms:.0f} ms)  idle RSS "
                      f"{mib(idle['VmRSS']):.1f} MiB (anon {mib(idle['RssAnon']):.1f}, "
                      f"file {mib(idle['RssFile']):.1f}){loaded}", flush=True)
    by_n = {}
    for n in SCALE_COUNTS:
        mine = [r for r in runs if r["components"] == n]
        cold = [r for r in mine if r["kind"] == "cold"]
        warm = [r for r in mine if r["kind"] == "warm"]
        if not (cold and warm):
            continue
        med = statistics.median
        by_n[n] = {"cold_ms": med(r["start_ms"] for r in cold), "warm_ms": med(r["start_ms"] for r in warm),
                   "cold_rss_mib": med(mib(r["idle_kb"]["VmRSS"]) for r in cold),
                   "warm_rss_mib": med(mib(r["idle_kb"]["VmRSS"]) for r in warm),
                   "warm_anon_mib": med(mib(r["idle_kb"]["RssAnon"]) for r in warm),
                   "warm_file_mib": med(mib(r["idle_kb"]["RssFile"]) for r in warm),
                   "loaded_rss_mib": med(mib(r["load"]["kb"]["VmRSS"]) for r in warm) if "load" in warm[0] else None,
                   "starts": len(cold)}
    per = None
    if 1 in by_n and max(by_n) > 1:
        top = max(by_n)
        a, b, k = by_n[1], by_n[top], top - 1
        per = {"between": [1, top],
               "idle_rss_mib": (b["warm_rss_mib"] - a["warm_rss_mib"]) / k,
               "idle_anon_mib": (b["warm_anon_mib"] - a["warm_anon_mib"]) / k,
               "idle_file_mib": (b["warm_file_mib"] - a["warm_file_mib"]) / k,
               "idle_rss_mib_after_cold_start": (b["cold_rss_mib"] - a["cold_rss_mib"]) / k,
               "cold_ms": (b["cold_ms"] - a["cold_ms"]) / k, "warm_ms": (b["warm_ms"] - a["warm_ms"]) / k}
        print(f"  scale      per idle component (N={top} vs 1): RSS {per['idle_rss_mib'] * 1024:.0f} KiB "
              f"(anon {per['idle_anon_mib'] * 1024:.0f}, file {per['idle_file_mib'] * 1024:.0f}; "
              f"{per['idle_rss_mib_after_cold_start'] * 1024:.0f} KiB after a cold start); start-up "
              f"cold {per['cold_ms']:.1f} ms, warm {per['warm_ms']:.2f} ms", flush=True)
    return {"component": "hello.wasm", "counts": list(SCALE_COUNTS), "reps": args.startup_reps,
            "load": {"conns": conns, "seconds": args.scale_load_seconds}, "loadavg_before": load_avg,
            "by_components": {str(n): v for n, v in by_n.items()}, "per_component": per, "failed": failed,
            "runs": runs}


# ---------------------------------------------------------------- attack

# The hostile test guests (components/tests), served beside identity and report.
HOSTILE = ["trap", "panic", "stack_overflow", "endless_loop", "alloc_bomb", "resource_bomb", "no_response",
           "stream_forever", "ignore_body"]
# Tight limits for them, shared with tests/e2e/sandbox.rs; identity and
# report keep the defaults.
ATTACK_LIMITS = open(os.path.join(ROOT, "tests", "e2e", "hostile-limits.toml")).read()
# What the attackers send: (method, path, body, client timeout in seconds).
# The body of ignore-body is over its 64 KiB limit; an endless stream is read
# until the host cuts it off (256 KiB) or the short timeout strikes.
ATTACKS = [("GET", "/trap/x", None, 5), ("GET", "/panic/x", None, 5), ("GET", "/stack-overflow/x", None, 5),
           ("GET", "/endless-loop/x", None, 5), ("GET", "/alloc-bomb/x", None, 5), ("GET", "/resource-bomb/x", None, 5),
           ("GET", "/no-response/x", None, 5), ("GET", "/stream-forever/x", None, 2),
           ("POST", "/ignore-body/x", b"x" * (100 << 10), 5)]
# An answer body longer than this was not cut off by the host.
STREAM_CAP = 8 << 20


def hostile_request(host, port, method, path, body, timeout):
    """One hostile request on a fresh connection; its outcome as a short
    string: the status ("500"), "200 cut off" (the body broke off), "client
    timeout" or "error <exception>"."""
    conn = HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": "application/octet-stream"} if body else {})
        except OSError:
            pass  # the host may answer (413) and close before the body is sent; read that answer
        r = conn.getresponse()
        read = 0
        try:
            while True:
                chunk = r.read(64 << 10)
                if not chunk:
                    break
                read += len(chunk)
                if read > STREAM_CAP:
                    return f"{r.status} not cut off"
        except socket.timeout:
            return f"{r.status} client timeout in body"
        except (OSError, HTTPException):
            return f"{r.status} cut off"
        return str(r.status)
    except socket.timeout:
        return "client timeout"
    except (OSError, HTTPException) as e:
        return f"error {type(e).__name__}"
    except Exception as e:  # counted, so an attacker never dies unseen
        return f"error {type(e).__name__}: {e}"
    finally:
        conn.close()


class HostileLoad:
    """`clients` threads, each sending ATTACKS in turn (each from its own
    starting point, so every hostile route is hit at once), one request at a
    time, until stop()."""

    def __init__(self, url, clients):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.outcomes = {path: collections.Counter() for _, path, _, _ in ATTACKS}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.t0 = time.perf_counter()
        self.threads = [threading.Thread(target=self.attack, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def attack(self, i):
        while not self.done.is_set():
            method, path, body, timeout = ATTACKS[i % len(ATTACKS)]
            outcome = hostile_request(self.host, self.port, method, path, body, timeout)
            with self.lock:
                self.outcomes[path][outcome] += 1
            i += 1

    def stop(self):
        """Stops the clients (each finishes its request) and returns what
        they did: requests, requests/s, outcome counts overall and by path."""
        self.done.set()
        for t in self.threads:
            t.join()
        seconds = time.perf_counter() - self.t0
        statuses = collections.Counter()
        for counts in self.outcomes.values():
            statuses.update(counts)
        total = sum(statuses.values())
        return {"requests": total, "seconds": seconds, "rps": total / seconds, "statuses": dict(statuses),
                "by_path": {path: dict(c) for path, c in self.outcomes.items()}}


def service_stats(server, admin, name):
    _, body = http("GET", f"{server.url}/_hms/services/{name}/stats", headers={"Authorization": f"Bearer {admin}"})
    return json.loads(body)


def wait_idle(server, admin, services, timeout=15):
    """Waits until no request of `services` is in flight (the host has
    thrown away the last hostile instance), so the next run starts clean."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(service_stats(server, admin, s).get("in_flight", 0) == 0 for s in services):
            return
        time.sleep(0.05)
    print(f"  attack     WARNING: hostile requests still in flight after {timeout} s", flush=True)


def add_counts(total, counts):
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v


def bench_attack(results, tmp, args):
    """p50/p99 and req/s of a steady seed stream with the host quiet, and
    with `--attackers` clients hammering the hostile components beside it
    (alternated). The normal stream must not fail a single request."""
    comps = [os.path.join(WASM, f"{n}.wasm") for n in ["identity", "report", *HOSTILE]]
    missing = [c for c in comps if not os.path.exists(c)]
    if missing:
        print(f"  attack     skipped: missing {', '.join(missing)} (scripts/build-components.sh builds them)",
              flush=True)
        return None
    config = os.path.join(tmp, "attack.toml")
    with open(config, "w") as f:
        f.write(ATTACK_LIMITS)
    hms = start_hms(comps, tmp, "attack", ["--config", config])
    admin = open(os.path.join(hms.data_dir, "admin.token")).read().strip()
    services = [f"{n.replace('_', '-')}-service" for n in HOSTILE]
    url = hms.url + "/reports/identity-check"
    try:
        for conns in args.attack_conns:
            runs = {"quiet": [], "under attack": []}
            for rep in range(args.reps):
                for name in runs:
                    load = HostileLoad(hms.url, args.attackers) if name == "under attack" else None
                    if load:
                        time.sleep(1)  # let the slow hostile requests pile up before measuring
                    r = wrk(url, conns, args.seconds, "POST", ID_BODY, "", [hms])
                    hostile = ""
                    if load:
                        r["hostile"] = load.stop()
                        wait_idle(hms, admin, services)
                        hostile = f"  hostile {r['hostile']['requests']} ({r['hostile']['rps']:.0f}/s)"
                        if not r["hostile"]["requests"]:
                            print("  attack     WARNING: the attackers made no requests", flush=True)
                    else:
                        time.sleep(0.5)  # same pause before the next run as after an attack
                    runs[name].append(r)
                    print(f"  attack     c={conns:<3} rep {rep + 1}/{args.reps} {name:<28} {r['rps']:>10.0f} req/s  "
                          f"p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  errors {r['errors']}{hostile}",
                          flush=True)
            for name, rs in runs.items():
                row = summarize("attack", conns, name, rs)
                if name == "under attack":
                    statuses, by_path = {}, {}
                    for r in rs:
                        add_counts(statuses, r["hostile"]["statuses"])
                        for path, counts in r["hostile"]["by_path"].items():
                            add_counts(by_path.setdefault(path, {}), counts)
                    row["hostile"] = {"clients": args.attackers,
                                      "requests": sum(r["hostile"]["requests"] for r in rs),
                                      "rps": statistics.median(r["hostile"]["rps"] for r in rs),
                                      "statuses": statuses, "by_path": by_path}
                results.append(row)
        # Afterwards: the host still answers the normal flow correctly; what
        # each service's limits counted over the whole scenario.
        status, body = http("POST", url, ID_BODY)
        counters = {}
        for name in services + ["identity-service", "report-service"]:
            c = service_stats(hms, admin, name).get("counters", {})
            counters[name] = {k: v for k, v in c.items() if v}
    finally:
        hms.stop()
    summary = {"limits": ATTACK_LIMITS, "clients": args.attackers, "host_counters": counters,
               "after": {"status": status, "body": body.decode(errors="replace")}}
    print(f"  attack     afterwards the seed flow answers {status} {summary['after']['body']}", flush=True)
    for name, c in counters.items():
        print(f"  attack     host counters {name}: {c}", flush=True)
    return summary


# ---------------------------------------------------------------- store

STORE_KEYS = 1000        # set and get pick a random key of these
STORE_VALUE = "x" * 100  # what set writes


def bench_store(results, tmp, args):
    """Store operations through the store-probe guest (one store call per
    request) against hello on the same host (a request that touches no
    store): read, durable write on a random key, increment of one hot key."""
    probe = os.path.join(WASM, "store_probe.wasm")
    if not os.path.exists(probe):
        print(f"  store      skipped: {probe} does not exist (the store-probe test guest; "
              f"scripts/build-components.sh builds it once components/tests/store-probe is in)", flush=True)
        return None
    try:
        hms = start_hms([os.path.join(WASM, "hello.wasm"), probe], tmp, "store")
    except SystemExit as e:
        print(f"  store      skipped: {e} (does this hms-host have the store feature?)", flush=True)
        return None
    op_url = hms.url + "/store-probe/op"
    try:
        def op(**body):
            status, answer = http("POST", op_url, json.dumps(body))
            return status, json.loads(answer) if answer else None

        checks = [(op(op="set", key="bench-check", value="v"), {"ok": True}),
                  (op(op="get", key="bench-check"), {"value": "v"}),
                  (op(op="increment", key="bench-check-n", delta=1), {"value": 1})]
        for (status, answer), want in checks:
            if status != 200 or answer != want:
                print(f"  store      skipped: store-probe answered {status} {answer}, expected 200 {want}",
                      flush=True)
                return None
        # Every key get and set pick exists, so get always finds a value.
        keys = [f"key-{i}" for i in range(STORE_KEYS)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            loaded = list(pool.map(lambda k: op(op="set", key=k, value=STORE_VALUE)[0], keys))
        if any(s != 200 for s in loaded):
            print(f"  store      skipped: loading {STORE_KEYS} keys failed: {collections.Counter(loaded)}", flush=True)
            return None
        store_env = {"STORE_KEYS": str(STORE_KEYS), "STORE_VALUE": STORE_VALUE}
        increment = "increment (one hot key)"
        contenders = [
            ("hello (no store call)", hms.url + "/hello", "", [hms], {"method": "GET", "body": ""}),
            (f"get (random key of {STORE_KEYS})", op_url, "", [hms],
             {"script": STORE_LUA, "env": dict(store_env, STORE_OP="get")}),
            (f"set (random key of {STORE_KEYS})", op_url, "", [hms],
             {"script": STORE_LUA, "env": dict(store_env, STORE_OP="set")}),
            (increment, op_url, "", [hms],
             {"method": "POST", "body": '{"op":"increment","key":"hot","delta":1}'}),
        ]
        compare(results, "store", contenders, args.conns, args)
        # Every counted increment must be in the hot key (a few more may
        # have been in flight when wrk stopped).
        counted = sum(run["requests"] for r in results if r["scenario"] == "store" and r["contender"] == increment
                      for run in r["runs"])
        hot = int(op(op="get", key="hot")[1]["value"] or 0)
    finally:
        hms.stop()
    summary = {"keys": STORE_KEYS, "value_bytes": len(STORE_VALUE), "increments_counted": counted,
               "hot_key_value": hot}
    print(f"  store      hot key {hot} after {counted} increments counted by wrk", flush=True)
    return summary


def start_pg(tmp):
    """A private PostgreSQL (scripts/pg.sh) for the cluster scenario: its
    URL and a function that stops it."""
    pg = os.path.join(ROOT, "scripts", "pg.sh")
    out = subprocess.run(["bash", pg, "start"], capture_output=True, text=True, check=True)
    url, data = out.stdout.split()[:2]

    def stop():
        subprocess.run(["bash", pg, "stop", data], capture_output=True)
    return url, stop


def another_database(url, name):
    """A second database on the server of `url` (postgres://USER@HOST:PORT/DB),
    for a second cluster: its URL."""
    userinfo, rest = url.split("://", 1)[1].rsplit("@", 1)
    hostport = rest.split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    psql = shutil.which("psql") or (sorted(glob.glob("/usr/lib/postgresql/*/bin/psql")) or ["psql"])[-1]
    subprocess.run([psql, "-q", "-h", host, "-p", port, "-U", userinfo, "-d", "postgres",
                    "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return url.rsplit("/", 1)[0] + "/" + name


def wait_placed(via, service, served_by, timeout=30):
    """Waits until exactly the hosts `served_by` (ids) advertise `service`."""
    admin = {"Authorization": "Bearer " + open(os.path.join(via.data_dir, "admin.token")).read().strip()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = http("GET", via.url + "/_hms/cluster", headers=admin)
        hosts = json.loads(body)["hosts"]
        if all((service in h["services"]) == (h["id"] in served_by) for h in hosts if h["alive"]):
            return
        time.sleep(0.1)
    sys.exit(f"{service} was not served by exactly {served_by} within {timeout} s")


def bench_cluster(results, tmp, args):
    """A cluster host (stores in PostgreSQL, every write committed there)
    against a standalone host (SQLite), alternated: the seed flow and one
    store call per request; then how long a host killed with -9 takes to
    leave discovery with the default heartbeat and lease; and a cross-host
    call (the seed flow with identity placed on another host of a second
    cluster) against the same call in-process on a cluster host."""
    url, stop_pg = start_pg(tmp)
    comps = [os.path.join(WASM, "identity.wasm"), os.path.join(WASM, "report.wasm"),
             os.path.join(WASM, "store_probe.wasm")]
    servers = []
    summary = {}
    try:
        alone = start_hms(comps, tmp, "cluster-alone")
        servers.append(alone)
        member = start_hms(comps, tmp, "cluster-member", ["--cluster", url, "--host-id", "b1"])
        servers.append(member)
        keys = [f"key-{i}" for i in range(STORE_KEYS)]
        for server in (alone, member):
            op_url = server.url + "/store-probe/op"
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                loaded = list(pool.map(lambda k: http("POST", op_url, json.dumps(
                    {"op": "set", "key": k, "value": STORE_VALUE}))[0], keys))
            if any(st != 200 for st in loaded):
                sys.exit(f"loading the store keys failed on {server.name}: {collections.Counter(loaded)}")
        member2 = start_hms(comps, tmp, "cluster-member-2", ["--cluster", url, "--host-id", "b2"])
        servers.append(member2)
        seed = "/reports/identity-check"
        compare(results, "cluster seed", [("hms-host", alone.url + seed, "", [alone]),
                                          ("hms-host, cluster", member.url + seed, "", [member]),
                                          ("2 cluster hosts, load split", [member.url + seed, member2.url + seed],
                                           "", [member, member2])],
                args.conns, args, "POST", ID_BODY)
        store_env = {"STORE_KEYS": str(STORE_KEYS), "STORE_VALUE": STORE_VALUE}
        for name, shape in (("get", {"script": STORE_LUA, "env": dict(store_env, STORE_OP="get")}),
                            ("set", {"script": STORE_LUA, "env": dict(store_env, STORE_OP="set")}),
                            ("increment", {"method": "POST", "body": '{"op":"increment","key":"hot","delta":1}'})):
            compare(results, f"cluster {name}",
                    [("hms-host", alone.url + "/store-probe/op", "", [alone], shape),
                     ("hms-host, cluster", member.url + "/store-probe/op", "", [member], shape)],
                    args.conns, args)
        # A cross-host call: report on x1 calls identity on x2 (placed there,
        # in a second cluster), against the seed flow in-process on b1.
        cross_url = another_database(url, "hms_cross")
        x1 = start_hms(comps[:2], tmp, "cluster-cross-1", ["--cluster", cross_url, "--host-id", "x1"])
        servers.append(x1)
        x2 = start_hms(comps[:2], tmp, "cluster-cross-2", ["--cluster", cross_url, "--host-id", "x2"])
        servers.append(x2)
        x_admin = {"Authorization": "Bearer " + open(os.path.join(x1.data_dir, "admin.token")).read().strip()}
        st, body = http("PUT", x1.url + "/_hms/placement/identity-service", json.dumps({"hosts": ["x2"]}),
                        headers=x_admin)
        if st != 200:
            sys.exit(f"placing identity on x2 failed: {st} {body!r}")
        wait_placed(x1, "identity-service", ["x2"])
        # x1 knows what x2 serves from its own view, at most a heartbeat later.
        deadline = time.monotonic() + 30
        while True:
            st, body = http("POST", x1.url + seed, ID_BODY)
            if st == 200 and b"verified" in body:
                break
            if time.monotonic() > deadline:
                sys.exit(f"the cross-host seed flow failed: {st} {body!r}")
            time.sleep(0.1)
        compare(results, "cluster cross-host",
                [("in-process (identity on this host)", member.url + seed, "", [member]),
                 ("cross-host (identity on another host)", x1.url + seed, "", [x1, x2])],
                args.conns, args, "POST", ID_BODY)
        cross = {}
        for conns in args.conns:
            cross[conns] = {k: ratio(results, "cluster cross-host", conns, "cross-host (identity on another host)",
                                     "in-process (identity on this host)", k)
                            for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
            c = cross[conns]
            print(f"  cluster    cross-host ÷ in-process c={conns}: req/s {c['rps']:.2f}×, p50 {c['p50_ms']:.2f}×, "
                  f"p99 {c['p99_ms']:.2f}×, CPU per request {c['cpu_us'] or 0:.2f}×", flush=True)
        summary["cross_host_vs_in_process"] = cross
        admin = {"Authorization": "Bearer " + open(os.path.join(member.data_dir, "admin.token")).read().strip()}
        summary.update(propagation(member, member2, admin, args.reps))
        # kill -9 of a host to its leaving discovery (defaults: 2 s heartbeat, 10 s lease).
        gone = []
        for rep_ in range(args.reps):
            victim = start_hms([os.path.join(WASM, "hello.wasm")], tmp, f"cluster-victim-{rep_}",
                               ["--cluster", url, "--host-id", "victim"])
            time.sleep(0.5)
            os.killpg(victim.proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            victim.proc.wait()
            while True:
                _, body = http("GET", member.url + "/_hms/cluster", headers=admin)
                if not [h for h in json.loads(body)["hosts"] if h["id"] == "victim" and h["alive"]]:
                    gone.append(time.monotonic() - killed)
                    break
                time.sleep(0.05)
            # The next victim reuses the id once this lease has run out.
        summary.update({"kill9_to_gone_s": gone, "heartbeat_ms": 2000, "lease_ms": 10000})
        print(f"  cluster    kill -9 to leaving discovery: {', '.join(f'{g:.2f}' for g in gone)} s", flush=True)
    finally:
        for server in servers:
            server.stop()
        stop_pg()
    return summary


def propagation(a, b, admin, reps):
    """How long what one cluster host does takes to hold on another: a key
    revoked through `a` until `b` refuses it at the token endpoint, and a
    version uploaded through `a` until `b` serves it (fetched, digest
    checked, compiled the first time, swapped)."""
    def until(done, what, timeout=120):
        start = time.monotonic()
        while not done():
            if time.monotonic() - start > timeout:
                sys.exit(f"{what} did not happen within {timeout} s")
            time.sleep(0.01)
        return time.monotonic() - start

    revocations = []
    for _ in range(reps):
        st, body = http("POST", a.url + "/_hms/keys", json.dumps({"service": "bench-client"}), headers=admin)
        created = json.loads(body)
        key = json.dumps({"api_key": created["api_key"]})
        until(lambda: http("POST", b.url + "/_hms/auth/token", key)[0] == 200, "the new key reaching b")
        http("DELETE", a.url + f"/_hms/keys/{created['id']}", headers=admin)
        revocations.append(until(lambda: http("POST", b.url + "/_hms/auth/token", key)[0] == 401,
                                 "the revocation reaching b"))

    def serving(server, version):
        _, body = http("GET", server.url + "/_hms/services")
        return any(e["name"] == "identity-service" and e["version"] == version
                   for e in json.loads(body)["services"])

    deploys = []
    # Two versions b has never compiled, then back to the first (cached by then).
    for name, first in (("identity_confirmed.wasm", True), ("identity_quiet.wasm", True),
                        ("identity_confirmed.wasm", False)):
        wasm = open(os.path.join(WASM, name), "rb").read()
        st, body = http("POST", a.url + "/_hms/services/identity-service/versions", wasm, headers=admin,
                        timeout=120)
        if st not in (200, 201):
            sys.exit(f"deploying {name} through {a.name} failed: {st} {body!r}")
        version = json.loads(body)["version"]
        deploys.append({"component": name, "compiled_on_b": first,
                        "seconds": until(lambda: serving(b, version), f"{name} reaching b")})
    rev = ", ".join(f"{t * 1000:.0f}" for t in revocations)
    dep = ", ".join(f"{d['component']} {'(compiled)' if d['compiled_on_b'] else '(cached)'} {d['seconds']:.2f} s"
                    for d in deploys)
    print(f"  cluster    revocation on one host to refused on another: {rev} ms", flush=True)
    print(f"  cluster    upload on one host to served on another: {dep}", flush=True)
    return {"revocation_to_refused_s": revocations, "deploy_to_served_s": deploys}


# ---------------------------------------------------------------- report

def ratio(results, scenario, conns, a, b, key="rps"):
    get = {(r["scenario"], r["conns"], r["contender"]): r for r in results}
    ra, rb = get.get((scenario, conns, a)), get.get((scenario, conns, b))
    return ra[key] / rb[key] if ra and rb and rb[key] else None


def times(x):
    return "—" if x is None else f"{x:.2f}×"


def markdown(results, startup, swap, meta, attack=None, store=None, scale=None, polyglot=None):
    lines = [f"Run {meta['time']} on {meta['machine']}; wrk {meta['seconds']} s per run, "
             f"{meta['reps']} alternating rounds, medians."]
    own_tables = ("attack", "store")
    if any(r["scenario"] not in own_tables for r in results):
        lines += ["",
                  "| scenario | conns | contender | req/s | p50 ms | p99 ms | server CPU µs/req | failed | req/s vs hms-host |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r["scenario"] in own_tables:
            continue
        base = {"swap": "hms-host, no swaps", "logging": "hms-host, identity logging",
                "cluster cross-host": "in-process (identity on this host)"}.get(r["scenario"], "hms-host")
        rel = ratio(results, r["scenario"], r["conns"], r["contender"], base)
        lines.append(f"| {r['scenario']} | {r['conns']} | {r['contender']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | "
                     f"{r['p99_ms']:.3f} | {r['cpu_us']:.0f} | {r['errors']} | {times(rel)} |")
    cross = [r for r in results if r["scenario"] == "cluster cross-host" and r["contender"].startswith("cross")]
    if cross:
        lines += ["", "Cross-host call (seed flow, identity placed on another cluster host) ÷ the same call "
                      "in-process on a cluster host:", "",
                  "| conns | req/s | p50 | p99 | server CPU per request (both hosts) |", "|---:|---:|---:|---:|---:|"]
        for r in cross:
            q = lambda k: times(ratio(results, r["scenario"], r["conns"], r["contender"],
                                      "in-process (identity on this host)", k))
            lines.append(f"| {r['conns']} | {q('rps')} | {q('p50_ms')} | {q('p99_ms')} | {q('cpu_us')} |")
    rows = [r for r in results if r["scenario"] == "attack"]
    if rows:
        lines += ["", f"Seed flow (wrk) while {attack['clients'] if attack else '?'} clients hammer the hostile "
                      "components on the same host, alternated with a quiet host. Server CPU counts the hostile "
                      "work too; \"failed\" is normal requests only (non-2xx and socket errors).", "",
                  "| conns | contender | req/s | p50 ms | p99 ms | server CPU µs/req | failed | hostile req/s | "
                  "req/s vs quiet | p99 vs quiet |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            h = f"{r['hostile']['rps']:.0f}" if r.get("hostile") else "—"
            lines.append(f"| {r['conns']} | {r['contender']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                         f"{r['cpu_us']:.0f} | {r['errors']} | {h} | "
                         f"{times(ratio(results, 'attack', r['conns'], r['contender'], 'quiet'))} | "
                         f"{times(ratio(results, 'attack', r['conns'], r['contender'], 'quiet', 'p99_ms'))} |")
        for r in rows:
            if r.get("hostile"):
                by_path = "; ".join(f"`{path}` " + ", ".join(f"{k}×{v}" for k, v in sorted(c.items()))
                                    for path, c in r["hostile"]["by_path"].items())
                lines += ["", f"Hostile requests at c={r['conns']} ({r['hostile']['requests']} in "
                              f"{len(r['runs'])} runs): {by_path}."]
    rows = [r for r in results if r["scenario"] == "store"]
    if rows:
        base = rows[0]["contender"]
        lines += ["", f"Store operations through store-probe (one store call per request; {STORE_KEYS} keys of "
                      f"{len(STORE_VALUE)} bytes) against `{base}` on the same host.", "",
                  "| conns | operation | ops/s | p50 ms | p99 ms | server CPU µs/op | failed | ops/s vs no store |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['conns']} | {r['contender']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | "
                         f"{r['p99_ms']:.3f} | {r['cpu_us']:.0f} | {r['errors']} | "
                         f"{times(ratio(results, 'store', r['conns'], r['contender'], base))} |")
        if store:
            lines += ["", f"Hot key after the increment runs: {store['hot_key_value']}, "
                          f"{store['increments_counted']} increments counted by wrk (requests still in flight "
                          f"when wrk stops may add a few)."]
    if swap:
        lines += ["", f"Hot swap: upload of a new identity version to the first request served by it, median "
                      f"{swap['upload_to_served_ms']:.1f} ms (max {swap['max_ms']:.1f} ms, {swap['swaps']} swaps)."]
    if startup:
        lines += ["", f"Start-up to first seed request (2 components, median of {len(startup['runs']['cold_ms'])}): "
                      f"cold cache {startup['cold_ms']:.0f} ms, warm cache {startup['warm_ms']:.0f} ms."]
    if scale:
        lines += ["", f"Scale: N distinct copies of {scale['component']} (one custom section apart) on one host, "
                      f"median of {scale['reps']} starts each. Start-up: process start to every one of the N "
                      f"answering 200, with an empty data directory (cold: compiling all N) and with the same "
                      f"directory again (warm: compile cache). RSS: the host idle right after that (VmRSS), "
                      f"and after {scale['load']['seconds']} s of wrk c={scale['load']['conns']} against one "
                      f"of them (warm starts).", "",
                  "| components | cold start ms | warm start ms | idle RSS MiB (after cold / warm start) | "
                  "of which anon / file MiB (warm) | RSS after wrk MiB |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for n, r in scale["by_components"].items():
            loaded = "—" if r["loaded_rss_mib"] is None else f"{r['loaded_rss_mib']:.1f}"
            lines.append(f"| {n} | {r['cold_ms']:.0f} | {r['warm_ms']:.0f} | {r['cold_rss_mib']:.1f} / "
                         f"{r['warm_rss_mib']:.1f} | {r['warm_anon_mib']:.1f} / {r['warm_file_mib']:.1f} | "
                         f"{loaded} |")
        per = scale["per_component"]
        if per:
            lo, hi = per["between"]
            lines += ["", f"Per idle component (N={hi} vs N={lo}): {per['idle_rss_mib'] * 1024:.0f} KiB RSS "
                          f"(anon {per['idle_anon_mib'] * 1024:.0f} KiB, file {per['idle_file_mib'] * 1024:.0f} KiB; "
                          f"{per['idle_rss_mib_after_cold_start'] * 1024:.0f} KiB after a cold start); start-up "
                          f"{per['cold_ms']:.1f} ms cold, {per['warm_ms']:.2f} ms warm."]
        if scale["failed"]:
            f = scale["failed"]
            lines += ["", f"FAILED with {f['components']} components ({f['kind']} start, rep {f['rep']}): "
                          f"`{f['error']}`"]
    if polyglot:
        lines += ["", "Start-up of one service (process start to healthy) and the host's resident memory after "
                      "one request: cold (empty compile cache) and warm (the same data directory again).", "",
                  "| service | cold start s | warm start s | RSS after cold start MiB | RSS after warm start MiB |",
                  "|---|---:|---:|---:|---:|"]
        for tag, st in polyglot.items():
            lines.append(f"| {tag} | {st['cold_s']:.1f} | {st['warm_s']:.2f} | {st['cold_rss_kb'] / 1024:.0f} | "
                         f"{st['warm_rss_kb'] / 1024:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    p.add_argument("--reps", type=int, default=3, help="alternating rounds per comparison")
    p.add_argument("--conns", type=int, nargs="+", default=[1, 32], help="connection counts")
    scenarios = ["hello", "identity", "logging", "seed", "swap", "startup", "attack", "store", "scale", "cluster",
                 "polyglot", "baseline"]
    p.add_argument("--only", nargs="+", default=scenarios[:-1], choices=scenarios, metavar="SCENARIO",
                   help=f"scenarios to run, of: {' '.join(scenarios)}")
    p.add_argument("--polyglot-conns", type=int, nargs="+", default=[1, 8],
                   help="connection counts of the polyglot scenario")
    p.add_argument("--flask-workers", type=int, default=2, help="gunicorn workers per Flask service")
    p.add_argument("--startup-reps", type=int, default=5, help="starts per measurement in startup and scale")
    p.add_argument("--scale-load-seconds", type=int, default=3,
                   help="wrk run against one component after each warm start in scale (0: none)")
    p.add_argument("--attack-conns", type=int, nargs="+", default=[1, 16],
                   help="connection counts of the normal stream in the attack scenario")
    p.add_argument("--attackers", type=int, default=8, help="concurrent hostile clients in the attack scenario")
    p.add_argument("--baseline", help="another hms-host binary for the baseline scenario (e.g. the previous main)")
    p.add_argument("--out", default=os.path.join(BENCH, "results"),
                   help="directory for <time>.json and latest.md")
    args = p.parse_args()
    needs_native = any(n in ("hello", "identity", "seed") for n in args.only)
    for tool in (HOST_BIN, *([NATIVE_BIN] if needs_native else []), shutil.which("wrk") or "/missing/wrk"):
        if not os.path.exists(tool):
            sys.exit(f"missing {tool}: run bench/run.sh")
    # Installed before anything is measured, so no run waits on an install.
    for ensure in dict.fromkeys(e for name in args.only for e in PEERS.get(name, [])):
        ensure()
    results, startup, swap, attack, store, scale, cluster, polyglot = [], None, None, None, None, None, None, None
    with tempfile.TemporaryDirectory(prefix="hms-bench-") as tmp:
        for name in args.only:
            print(f"== {name}", flush=True)
            if name == "startup":
                startup = bench_startup(tmp, args)
            elif name == "swap":
                swap = bench_swap(results, tmp, args)
            elif name == "attack":
                attack = bench_attack(results, tmp, args)
            elif name == "store":
                store = bench_store(results, tmp, args)
            elif name == "scale":
                scale = bench_scale(tmp, args)
            elif name == "cluster":
                cluster = bench_cluster(results, tmp, args)
            elif name == "polyglot":
                polyglot = bench_polyglot(results, tmp, args)
            else:
                {"hello": bench_hello, "identity": bench_identity, "logging": bench_logging,
                 "seed": bench_seed, "baseline": bench_baseline}[name](results, tmp, args)
    if not (results or startup or swap or scale):
        print("\nnothing was measured; no results written")
        return
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    meta = {"time": now, "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "seconds": args.seconds, "reps": args.reps, "conns": args.conns, "attack_conns": args.attack_conns}
    if "hello" in args.only or "polyglot" in args.only:  # the scenarios with wasmtime serve
        meta["wasmtime"] = subprocess.check_output([WASMTIME, "--version"], text=True).strip()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{now}.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "startup": startup, "swap": swap, "attack": attack,
                   "store": store, "scale": scale, "cluster": cluster, "polyglot": polyglot}, f, indent=1)
    table = markdown(results, startup, swap, meta, attack, store, scale, polyglot)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
