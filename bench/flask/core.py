"""The seed chapter's HMS-SYS Core as a Flask app: registry, auth, logging.

Run by bench/bench.py under gunicorn. Tokens are HS256 JWTs (PyJWT) with a
shared secret; events are appended to a file (flushed, not fsynced)."""
import json
import os
import threading
import time

import jwt
from flask import Flask, jsonify, request

SECRET = os.environ.get("HMS_BENCH_SECRET", "bench-secret")
LOG_PATH = os.environ.get("HMS_BENCH_LOG", "/tmp/hms-bench-flask-events.jsonl")

app = Flask(__name__)
REGISTRY = {}
_log_lock = threading.Lock()


@app.post("/register")
def register():
    data = request.json
    REGISTRY[data["name"]] = {"host": data["host"], "port": data["port"]}
    return jsonify({"ok": True})


@app.get("/discover/<name>")
def discover(name):
    info = REGISTRY.get(name)
    if info is None:
        return jsonify({"code": "not_found", "message": name}), 404
    return jsonify(info)


@app.post("/authenticate")
def authenticate():
    service = request.json["api_key"].split(":")[0]
    now = int(time.time())
    token = jwt.encode({"sub": service, "iat": now, "exp": now + 900}, SECRET, algorithm="HS256")
    return jsonify({"token": token})


@app.post("/log")
def log_event():
    event = dict(request.json, time=time.time())
    with _log_lock, open(LOG_PATH, "a") as f:
        f.write(json.dumps(event) + "\n")
    return jsonify({"ok": True})
