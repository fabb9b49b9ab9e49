"""identity-service as in the seed chapter, checking the caller's token."""
import os

import jwt
from flask import Flask, jsonify, request

import client as core

SECRET = os.environ.get("HMS_BENCH_SECRET", "bench-secret")
PORT = int(os.environ["HMS_BENCH_PORT"])

app = Flask(__name__)
core.register_service("identity-service", host="127.0.0.1", port=PORT)


@app.post("/identity/verify")
def verify_identity():
    auth = request.headers.get("Authorization", "")
    try:
        jwt.decode(auth.removeprefix("Bearer "), SECRET, algorithms=["HS256"])
    except jwt.PyJWTError as e:
        return jsonify({"code": "unauthorized", "message": str(e)}), 401
    data = request.json
    result = {"status": "verified", "citizen_id": data["id"]}
    core.log_event(service="identity-service", level="INFO", message=f"Verified ID {data['id']}")
    return jsonify(result)
