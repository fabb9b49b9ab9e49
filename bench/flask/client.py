"""The seed chapter's `hms_sys.CoreClient`, talking to flask/core.py over HTTP."""
import os

import requests

CORE = os.environ.get("HMS_BENCH_CORE", "http://127.0.0.1:5000")
# One keep-alive session per worker: kinder to Flask than the seed's bare
# requests.post, so the comparison does not flatter hms-host.
session = requests.Session()


def authenticate(api_key):
    return session.post(f"{CORE}/authenticate", json={"api_key": api_key}).json()["token"]


def register_service(name, host, port):
    session.post(f"{CORE}/register", json={"name": name, "host": host, "port": port})


def discover_service(name):
    return session.get(f"{CORE}/discover/{name}").json()


def log_event(service, level, message):
    session.post(f"{CORE}/log", json={"service": service, "level": level, "message": message})


def http_post(host, port, path, body, token):
    resp = session.post(f"http://{host}:{port}{path}", json=body, headers={"Authorization": f"Bearer {token}"})
    return resp.json()
