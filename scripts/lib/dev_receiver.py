#!/usr/bin/env python3
"""A merchant's webhook receiver for scripts/run: prints every notification
the dev host sends it and checks its Standard Webhooks signature.

Usage: dev_receiver.py PORT SECRET_FILE
SECRET_FILE holds the endpoint's whsec_ secret(s), one a line; it is read on
every request, so scripts/run can write it after registering the endpoint.
Listens on 127.0.0.1 only.
"""
import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, SECRET_FILE = int(sys.argv[1]), sys.argv[2]


def secrets():
    try:
        with open(SECRET_FILE) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def signature_ok(msg_id, timestamp, body, header):
    if not msg_id or not timestamp or not header:
        return False
    try:
        if abs(time.time() - int(timestamp)) > 300:
            return False
    except ValueError:
        return False
    given = [s.split(",", 1)[1] for s in header.split(" ") if s.startswith("v1,")]
    for secret in secrets():
        key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
        mac = hmac.new(key, b"%s.%s.%s" % (msg_id.encode(), timestamp.encode(), body), hashlib.sha256).digest()
        want = base64.b64encode(mac).decode()
        if any(hmac.compare_digest(want, g) for g in given):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = signature_ok(self.headers.get("webhook-id"), self.headers.get("webhook-timestamp"), body,
                          self.headers.get("webhook-signature"))
        try:
            ev = json.loads(body)
            what = "%s %s status=%s" % (ev.get("type"), ev["data"].get("id"), ev["data"].get("status"))
        except (ValueError, KeyError, TypeError, AttributeError):
            what = "(not a notification)"
        print("[receiver] %s %s (signature %s)" % (self.headers.get("webhook-id"), what,
                                                   "ok" if ok else "WRONG"), flush=True)
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
