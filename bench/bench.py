#!/usr/bin/env python3
"""Benchmark harness: hms-host against wasmtime serve, native axum and Flask,
side by side in one run.

Run through bench/run.sh, which installs the peers and builds everything.
Every comparison starts all its contenders, then alternates them (A B A B ...)
for --reps rounds of wrk at each connection count, and reports medians and
ratios, so machine noise hits every contender alike. Results go to
bench/results/<UTC time>.json and bench/results/latest.md.
"""
import argparse
import datetime
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
CACHE = os.path.join(BENCH, "cache")
HOST_BIN = os.path.join(ROOT, "target", "release", "hms-host")
NATIVE_BIN = os.path.join(ROOT, "target", "release", "hms-bench-native")
WASMTIME = os.path.join(CACHE, "bin", "wasmtime")
VENV_BIN = os.path.join(CACHE, "venv", "bin")
WASM = os.path.join(ROOT, "components", "target", "wasm32-wasip2", "release")
LUA = os.path.join(BENCH, "wrk", "request.lua")
ID_BODY = '{"id":"C12345"}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers or {})
    if body:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    """A server process; stopped (its whole process group) by stop()."""

    def __init__(self, name, argv, url, env=None, read_lines=0, cwd=None):
        self.name, self.url = name, url
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
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


def start_hms(components, tmp, tag, extra=()):
    data = os.path.join(tmp, f"hms-{tag}")
    argv = [HOST_BIN, "run", "--listen", "127.0.0.1:0", "--data-dir", data, *extra, *components]
    s = Server(f"hms-host {tag}", argv, None, read_lines=1)
    s.url = s.lines[0].rsplit(" ", 1)[-1]
    s.data_dir = data
    return s


def hms_token(server):
    env = dict(os.environ, HMS_URL=server.url, HMS_DATA_DIR=server.data_dir)
    key = subprocess.check_output([HOST_BIN, "keys", "create", "bench-client"], env=env, text=True,
                                  stderr=subprocess.DEVNULL).strip()
    return subprocess.check_output([HOST_BIN, "token", key], env=env, text=True).strip()


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

def group_cpu_seconds(pgid):
    """User+system CPU seconds of every live process in a process group."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(url, conns, seconds, method="GET", body="", auth="", servers=()):
    """One wrk run; `servers` are the contender's processes, whose CPU time
    per request is reported as cpu_us."""
    env = dict(os.environ, WRK_METHOD=method, WRK_BODY=body, WRK_AUTH=auth)
    cpu0 = sum(group_cpu_seconds(s.proc.pid) for s in servers)
    threads = min(2, conns)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", LUA, url],
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


def compare(results, scenario, contenders, conns_list, args, method="GET", body=""):
    """contenders: list of (name, url, auth header, server processes)."""
    for conns in conns_list:
        runs = {name: [] for name, *_ in contenders}
        for rep in range(args.reps):
            for name, url, auth, servers in contenders:
                r = wrk(url, conns, args.seconds, method, body, auth, servers)
                runs[name].append(r)
                print(f"  {scenario:<10} c={conns:<3} rep {rep + 1}/{args.reps} {name:<28} "
                      f"{r['rps']:>10.0f} req/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
                      f"cpu {r['cpu_us'] or 0:.0f} us/req  errors {r['errors']}",
                      flush=True)
        for name, *_ in contenders:
            rs = runs[name]
            results.append({
                "scenario": scenario, "conns": conns, "contender": name, "runs": rs,
                "rps": statistics.median(r["rps"] for r in rs),
                "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                "cpu_us": statistics.median(r["cpu_us"] or 0 for r in rs),
                "errors": sum(r["errors"] for r in rs),
            })


# ---------------------------------------------------------------- scenarios

def bench_hello(results, tmp, args):
    hello = os.path.join(WASM, "hello.wasm")
    hms = start_hms([hello], tmp, "hello").wait_ready("/_hms/health")
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
    hms = start_hms([os.path.join(WASM, "identity.wasm")], tmp, "identity").wait_ready("/_hms/health")
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
            s = start_hms([os.path.join(WASM, wasm)], tmp, tag, extra).wait_ready("/_hms/health")
            servers[name] = (s, f"Bearer {hms_token(s)}")
        compare(results, "logging", [(n, s.url + "/identity/verify", auth, [s]) for n, (s, auth) in servers.items()],
                args.conns, args, "POST", ID_BODY)
    finally:
        for s, _ in servers.values():
            s.stop()


def bench_seed(results, tmp, args):
    comps = [os.path.join(WASM, "identity.wasm"), os.path.join(WASM, "report.wasm")]
    hms = start_hms(comps, tmp, "seed").wait_ready("/_hms/health")
    native_id = start_native("identity", tmp)
    native_id.wait_ready("/identity/verify", "POST", ID_BODY, {"Authorization": f"Bearer {native_id.token}"})
    native_rp = start_native("report", tmp, native_id.url).wait_ready("/reports/identity-check", "POST", ID_BODY)
    native_in = start_native("seed", tmp).wait_ready("/reports/identity-check", "POST", ID_BODY)
    flask = []
    try:
        cport, iport, rport = free_port(), free_port(), free_port()
        env = {"HMS_BENCH_CORE": f"http://127.0.0.1:{cport}", "HMS_BENCH_LOG": os.path.join(tmp, "flask.jsonl")}
        # Core keeps the registry in memory: one worker, so all see it.
        flask.append(gunicorn("core:app", cport, env, 1).wait_ready("/discover/none", ok=(404,)))
        flask.append(gunicorn("identity:app", iport, dict(env, HMS_BENCH_PORT=str(iport)), args.flask_workers)
                     .wait_ready("/identity/verify", "POST", ID_BODY, ok=(401,)))
        flask.append(gunicorn("report:app", rport, env, args.flask_workers)
                     .wait_ready("/reports/identity-check", "POST", ID_BODY))
        compare(results, "seed", [("hms-host", hms.url + "/reports/identity-check", "", [hms]),
                                  ("flask+gunicorn (3 procs)", flask[-1].url + "/reports/identity-check", "", flask),
                                  ("native axum, 2 procs", native_rp.url + "/reports/identity-check", "",
                                   [native_id, native_rp]),
                                  ("native in-process", native_in.url + "/reports/identity-check", "", [native_in])],
                args.conns, args, "POST", ID_BODY)
    finally:
        for s in (hms, native_id, native_rp, native_in, *flask):
            s.stop()


def bench_swap(results, tmp, args):
    """p99 of a steady seed stream with and without identity being swapped
    every second, and the time from upload to the first request served by
    the new version."""
    comps = [os.path.join(WASM, "identity.wasm"), os.path.join(WASM, "report.wasm")]
    versions = [open(os.path.join(WASM, f), "rb").read() for f in ("identity_confirmed.wasm", "identity.wasm")]
    answers = ["confirmed", "verified"]
    hms = start_hms(comps, tmp, "swap", ["--no-watch"]).wait_ready("/_hms/health")
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
                results.append({"scenario": "swap", "conns": conns, "contender": f"hms-host, {name}", "runs": rs,
                                "rps": statistics.median(r["rps"] for r in rs),
                                "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                                "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                                "cpu_us": statistics.median(r["cpu_us"] or 0 for r in rs),
                                "errors": sum(r["errors"] for r in rs)})
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


# ---------------------------------------------------------------- report

def ratio(results, scenario, conns, a, b):
    get = {(r["scenario"], r["conns"], r["contender"]): r for r in results}
    ra, rb = get.get((scenario, conns, a)), get.get((scenario, conns, b))
    return ra["rps"] / rb["rps"] if ra and rb and rb["rps"] else None


def markdown(results, startup, swap, meta):
    lines = [f"Run {meta['time']} on {meta['machine']}; wrk {meta['seconds']} s per run, "
             f"{meta['reps']} alternating rounds, medians.", "",
             "| scenario | conns | contender | req/s | p50 ms | p99 ms | server CPU µs/req | failed | req/s vs hms-host |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        base = {"swap": "hms-host, no swaps", "logging": "hms-host, identity logging"}.get(r["scenario"], "hms-host")
        rel = ratio(results, r["scenario"], r["conns"], r["contender"], base)
        lines.append(f"| {r['scenario']} | {r['conns']} | {r['contender']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | "
                     f"{r['p99_ms']:.3f} | {r['cpu_us']:.0f} | {r['errors']} | {rel:.2f}× |")
    if swap:
        lines += ["", f"Hot swap: upload of a new identity version to the first request served by it, median "
                      f"{swap['upload_to_served_ms']:.1f} ms (max {swap['max_ms']:.1f} ms, {swap['swaps']} swaps)."]
    if startup:
        lines += ["", f"Start-up to first seed request (2 components, median of {len(startup['runs']['cold_ms'])}): "
                      f"cold cache {startup['cold_ms']:.0f} ms, warm cache {startup['warm_ms']:.0f} ms."]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    p.add_argument("--reps", type=int, default=3, help="alternating rounds per comparison")
    p.add_argument("--conns", type=int, nargs="+", default=[1, 32], help="connection counts")
    p.add_argument("--only", nargs="+", default=["hello", "identity", "logging", "seed", "swap", "startup"])
    p.add_argument("--flask-workers", type=int, default=2, help="gunicorn workers per Flask service")
    p.add_argument("--startup-reps", type=int, default=5)
    args = p.parse_args()
    for tool in (HOST_BIN, NATIVE_BIN, WASMTIME, shutil.which("wrk") or "/missing/wrk"):
        if not os.path.exists(tool):
            sys.exit(f"missing {tool}: run bench/run.sh")
    results, startup, swap = [], None, None
    with tempfile.TemporaryDirectory(prefix="hms-bench-") as tmp:
        for name in args.only:
            print(f"== {name}", flush=True)
            if name == "startup":
                startup = bench_startup(tmp, args)
            elif name == "swap":
                swap = bench_swap(results, tmp, args)
            else:
                {"hello": bench_hello, "identity": bench_identity, "logging": bench_logging,
                 "seed": bench_seed}[name](results, tmp, args)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    meta = {"time": now, "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "seconds": args.seconds, "reps": args.reps, "conns": args.conns,
            "wasmtime": subprocess.check_output([WASMTIME, "--version"], text=True).strip()}
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    with open(os.path.join(BENCH, "results", f"{now}.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "startup": startup, "swap": swap}, f, indent=1)
    table = markdown(results, startup, swap, meta)
    with open(os.path.join(BENCH, "results", "latest.md"), "w") as f:
        f.write(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
