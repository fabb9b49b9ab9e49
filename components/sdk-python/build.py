#!/usr/bin/env python3
"""Build Python hms services into components (stdlib only; run with Python >= 3.11).

    python3 components/sdk-python/build.py [--test] SERVICE_DIR[=OUT.wasm]...

For each SERVICE_DIR (a directory with ``app.py``, see ``hms.component``)
this writes OUT.wasm (default: ``SERVICE_DIR/<dir name>.wasm``). On the way:

1. **venv**: ``components/target/python/venv`` (``--venv`` or
   ``HMS_PY_VENV`` to move it), with ``requirements.txt`` installed by pip.
   It is reused while ``requirements.txt`` and the Python version are
   unchanged, so builds after the first need no network.
2. **SDK generation**: the repository's ``wit/`` is copied to
   ``src/hms/wit`` and ``componentize-py bindings`` writes
   ``src/hms/bindings``; both are build outputs (git-ignored), rewritten only
   when their content changes. Outside a checkout (``wit/`` not found next
   to the SDK) the copy already in the package is used.
3. **tests** (``--test``): pytest on the SDK's own tests and on each
   service's ``tests/``, with the service directory and the SDK on
   ``PYTHONPATH``; a failure stops the build.
4. **componentize**: ``componentize-py -w hms:core/service componentize
   hms.component -p SERVICE_DIR -p SDK/src``, written to a temporary file and
   renamed (a watching host never sees half a file). Skipped when neither
   the SDK, the service directory (``tests/`` aside) nor the requirements
   changed since the last build of that output.

The output paths are printed, one a line.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SDK = Path(__file__).resolve().parent
SRC = SDK / "src"
PACKAGE = SRC / "hms"
REQUIREMENTS = SDK / "requirements.txt"
REPO_WIT = SDK.parent.parent / "wit"
DEFAULT_TARGET = SDK.parent / "target" / "python"
WORLD = "hms:core/service"
IGNORED = {"__pycache__", "tests", ".pytest_cache", ".venv", "target", ".git"}


def log(message):
    print(f"build.py: {message}", file=sys.stderr, flush=True)


def tree_hash(root, ignore=IGNORED, suffixes=None):
    """A digest of every file's relative path and content under ``root``."""
    digest = hashlib.sha256()
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ignore)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.endswith((".wasm", ".pyc")) or (suffixes and not name.endswith(suffixes)):
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def replace_dir(new, old):
    """Put directory ``new`` in place of ``old`` (only if their content differs)."""
    if old.exists() and tree_hash(new, ignore=set()) == tree_hash(old, ignore=set()):
        shutil.rmtree(new)
        return False
    if old.exists():
        shutil.rmtree(old)
    shutil.move(str(new), str(old))
    return True


def ensure_venv(venv):
    """The venv's bin directory, created or rebuilt when requirements changed."""
    stamp_text = f"{sys.version}\n{REQUIREMENTS.read_text()}"
    stamp = venv / ".hms-requirements"
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    if stamp.exists() and stamp.read_text() == stamp_text and (bin_dir / "componentize-py").exists():
        return bin_dir
    log(f"creating {venv} from {REQUIREMENTS.name}")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(stamp_text)
    return bin_dir


def generate_sdk(bin_dir):
    """Copy the WIT into the package and regenerate the bindings from it."""
    if REPO_WIT.is_dir():
        with tempfile.TemporaryDirectory(dir=PACKAGE) as tmp:
            copy = Path(tmp) / "wit"
            shutil.copytree(REPO_WIT, copy)
            if replace_dir(copy, PACKAGE / "wit"):
                log("copied wit/ into the SDK")
    elif not (PACKAGE / "wit").is_dir():
        sys.exit(f"build.py: no WIT: neither {REPO_WIT} nor {PACKAGE / 'wit'} exists")
    with tempfile.TemporaryDirectory(dir=PACKAGE) as tmp:
        subprocess.run(
            [str(bin_dir / "componentize-py"), "-d", str(PACKAGE / "wit"), "-w", WORLD,
             "--world-module", "hms.bindings", "-q", "bindings", tmp],
            check=True,
        )
        if replace_dir(Path(tmp) / "hms" / "bindings", PACKAGE / "bindings"):
            log("regenerated the SDK bindings")


def run_tests(bin_dir, directory, service_dir=None):
    env = dict(os.environ)
    paths = ([str(service_dir)] if service_dir else []) + [str(SRC)]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    tests = Path(directory) / "tests"
    if not tests.is_dir():
        log(f"no tests in {directory}")
        return
    result = subprocess.run(
        [str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(directory), str(tests)],
        env=env, cwd=directory,
    )
    if result.returncode != 0:
        sys.exit(f"build.py: tests failed in {directory}")


def componentize(bin_dir, service_dir, out, stamps):
    requirements = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp_text = "\n".join([
        requirements, tree_hash(SRC), tree_hash(service_dir), str(service_dir), ""])
    stamp = stamps / (hashlib.sha256(str(out).encode()).hexdigest()[:16] + ".stamp")
    if out.exists() and stamp.exists() and stamp.read_text() == stamp_text:
        log(f"{out.name} is up to date")
        return
    if not (service_dir / "app.py").exists() and not (service_dir / "app" / "__init__.py").exists():
        sys.exit(f"build.py: {service_dir} has no app.py (the service module)")
    started = time.monotonic()
    tmp = out.with_name(f".{out.name}.tmp")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [str(bin_dir / "componentize-py"), "-w", WORLD, "-q", "componentize", "hms.component",
         "-p", str(service_dir), "-p", str(SRC), "-o", str(tmp)],
        check=True, env=env, cwd=service_dir,
    )
    os.replace(tmp, out)
    stamps.mkdir(parents=True, exist_ok=True)
    stamp.write_text(stamp_text)
    log(f"built {out.name} ({out.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", nargs="*", metavar="SERVICE_DIR[=OUT.wasm]")
    parser.add_argument("--test", action="store_true", help="run the pytest suites first")
    parser.add_argument("--no-sdk-tests", action="store_true", help="with --test, skip the SDK's own tests")
    parser.add_argument("--venv", type=Path, default=os.environ.get("HMS_PY_VENV"),
                        help=f"the venv to use or create (default {DEFAULT_TARGET / 'venv'})")
    args = parser.parse_args()

    target = DEFAULT_TARGET
    venv = (args.venv or target / "venv").resolve()
    bin_dir = ensure_venv(venv)
    generate_sdk(bin_dir)

    builds = []
    for spec in args.services:
        directory, _, out = spec.partition("=")
        directory = Path(directory).resolve()
        out = Path(out).resolve() if out else directory / f"{directory.name}.wasm"
        builds.append((directory, out))

    if args.test:
        if not args.no_sdk_tests:
            run_tests(bin_dir, SDK)
        for directory, _ in builds:
            run_tests(bin_dir, directory, service_dir=directory)
    for directory, out in builds:
        componentize(bin_dir, directory, out, target / "stamps")
    for _, out in builds:
        print(out)


if __name__ == "__main__":
    main()
