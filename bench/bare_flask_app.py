"""The peer of bench/partner_bench.py: a bare Flask app answering the same POST with a JSON body
of the same shape, served by the same gunicorn settings in the same run. It reads and parses the
request's JSON and answers, nothing else: what any Flask endpoint costs on this machine.

    gunicorn -w 3 'bare_flask_app:app'   (from bench/)
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/v1/partner/verify")
def verify():
    body = request.get_json(force=True, silent=True) or {}
    return jsonify({"valid": bool(body.get("card_number")) and bool(body.get("surname")),
                    "checked_at": datetime.now(timezone.utc).isoformat(), "reference": "0"})


@app.get("/")
def ready():
    return "ok"
