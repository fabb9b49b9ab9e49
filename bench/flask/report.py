"""report-service as in the seed chapter: discover, call identity, log."""
from flask import Flask, jsonify, request

import client as core

app = Flask(__name__)
token = core.authenticate(api_key="report-service:FHFA_RP_KEY")


@app.post("/reports/identity-check")
def identity_report():
    payload = request.json
    info = core.discover_service("identity-service")
    resp = core.http_post(host=info["host"], port=info["port"], path="/identity/verify", body=payload, token=token)
    report = {"report": f"ID {payload['id']} is {resp['status']}"}
    core.log_event(service="report-service", level="INFO", message=f"Generated report for {payload['id']}")
    return jsonify(report)
