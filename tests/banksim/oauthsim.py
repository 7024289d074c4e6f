#!/usr/bin/env python3
"""oauthsim.py - a bank that wants OAuth2 tokens, mutual TLS and JWKS-signed
webhooks (for tests/fixtures/oauth_bank and tests/integration/test_bank_auth.py).

Standard library only, plus the openssl command line (certificates, EC keys,
ES256 signatures). Loopback only. Two listeners:
  - the bank (HTTPS, a client certificate signed by the test CA required):
      POST /oauth/token      client credentials (HTTP Basic); 429 when asked
                             again within --token-min-interval-ms
      POST /v1/payments      Bearer token required: 401 {"error":"invalid_token"}
                             when unknown, expired or revoked
      GET  /v1/payments/ID   the same, for a sync
      GET  /jwks             the current key set
  - control (plain HTTP, for the tests): GET /stats, POST /config {...},
    POST /revoke, POST /rotate, POST /sign (body: the payload; answer
    {"jws": detached compact JWS, ES256, "kid": ...}), POST /sign_unknown (the
    same with a key the key set never lists), POST /stop.

make_pki(dir) writes a test PKI with the openssl CLI: ca, server (127.0.0.1),
client (signed by ca), other_client (signed by another CA), expired_client.
"""
import argparse
import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 16


def _run(args, input=None):
    return subprocess.run(["openssl"] + args, input=input, capture_output=True, check=True).stdout


def _ec_key(path):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path])


def _cert(d, name, ca, cn, days="1", ext=None):
    """A P-256 key and a certificate for it signed by `ca`; days "-1" gives
    one that expired a day before it was made."""
    key, csr, crt = ["%s/%s.%s" % (d, name, x) for x in ("key", "csr", "crt")]
    _ec_key(key)
    _run(["req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr])
    args = ["x509", "-req", "-in", csr, "-CA", "%s/%s.crt" % (d, ca), "-CAkey", "%s/%s.key" % (d, ca),
            "-CAcreateserial", "-out", crt, "-days", days]
    if ext:
        extfile = "%s/%s.ext" % (d, name)
        with open(extfile, "w") as f:
            f.write(ext)
        args += ["-extfile", extfile]
    _run(args)
    return crt, key


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1, a client certificate from
    the CA, one from another CA and an expired one. Returns {name: path}."""
    for ca in ("ca", "otherca"):
        _ec_key("%s/%s.key" % (d, ca))
        _run(["req", "-x509", "-new", "-key", "%s/%s.key" % (d, ca), "-subj", "/CN=Pagoflex test " + ca,
              "-days", "2", "-out", "%s/%s.crt" % (d, ca)])
    paths = {"ca": d + "/ca.crt"}
    paths["server"], paths["server_key"] = _cert(d, "server", "ca", "127.0.0.1",
                                                 ext="subjectAltName=IP:127.0.0.1\n")
    paths["client"], paths["client_key"] = _cert(d, "client", "ca", "merchant-1")
    paths["other_client"], paths["other_client_key"] = _cert(d, "other", "otherca", "merchant-1")
    paths["expired_client"], paths["expired_client_key"] = _cert(
        d, "expired", "ca", "merchant-1", days="-1")
    return paths


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _der_sig_to_raw(der):
    """ECDSA DER SEQUENCE{INTEGER r, INTEGER s} -> r||s, 32 bytes each."""
    def read_int(b, i):
        assert b[i] == 2
        n = b[i + 1]
        v = b[i + 2:i + 2 + n]
        return int.from_bytes(v, "big"), i + 2 + n
    assert der[0] == 0x30
    i = 3 if der[1] & 0x80 else 2
    r, i = read_int(der, i)
    s, _ = read_int(der, i)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Signer:
    """An ES256 key with its kid and JWK (public part)."""

    def __init__(self, d, n):
        self.kid = "key-%d-%s" % (n, secrets.token_hex(4))
        self.path = "%s/jwk-%d.key" % (d, n)
        _ec_key(self.path)
        der = _run(["pkey", "-in", self.path, "-pubout", "-outform", "DER"])
        point = der[-65:]
        assert point[0] == 4
        self.jwk = {"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                    "x": _b64url(point[1:33]), "y": _b64url(point[33:])}

    def sign_detached(self, payload):
        header = _b64url(json.dumps({"alg": "ES256", "kid": self.kid}, separators=(",", ":")).encode())
        signing_input = (header + "." + _b64url(payload)).encode()
        der = _run(["dgst", "-sha256", "-sign", self.path], input=signing_input)
        return header + ".." + _b64url(_der_sig_to_raw(der))


class Bank:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.client_id = os.environ.get("OAUTH_CLIENT_ID", "")
        self.client_secret = os.environ.get("OAUTH_CLIENT_SECRET", "")
        self.token_ttl = args.token_ttl
        self.min_interval = args.token_min_interval_ms / 1000.0
        self.token_delay = args.token_delay_ms / 1000.0
        self.tokens = {}  # value -> expiry (monotonic)
        self.last_fetch = 0.0
        self.payments = {}  # our id -> {"id": tx, "status": ...}
        self.stats = {"token_fetches": 0, "token_429": 0, "token_refused": 0, "payments": 0,
                      "payment_401": 0, "jwks_fetches": 0}
        self.dir = args.dir
        self.signers = [Signer(args.dir, 1)]

    def token(self, auth):
        want = "Basic " + base64.b64encode(("%s:%s" % (self.client_id, self.client_secret)).encode()).decode()
        if auth != want:
            with self.lock:
                self.stats["token_refused"] += 1
            return 401, {"error": "invalid_client"}
        if self.token_delay:
            time.sleep(self.token_delay)  # a slow token endpoint: concurrent flows overlap the fetch
        with self.lock:
            now = time.monotonic()
            if self.min_interval and now - self.last_fetch < self.min_interval:
                self.stats["token_429"] += 1
                return 429, {"error": "rate_limited"}
            self.last_fetch = now
            value = "at_" + secrets.token_hex(16)
            self.tokens[value] = now + self.token_ttl
            self.stats["token_fetches"] += 1
        return 200, {"access_token": value, "token_type": "Bearer", "expires_in": self.token_ttl}

    def authorized(self, auth):
        if not auth or not auth.startswith("Bearer "):
            return False
        with self.lock:
            exp = self.tokens.get(auth[7:])
            ok = exp is not None and time.monotonic() < exp
            if not ok:
                self.stats["payment_401"] += 1
            return ok

    def pay(self, body):
        req = json.loads(body)
        with self.lock:
            p = self.payments.get(req["id"])
            if not p:
                p = {"id": "tx_" + secrets.token_hex(8), "status": "succeeded", "amount": req.get("amount")}
                self.payments[req["id"]] = p
                self.stats["payments"] += 1
            return 201, dict(p)

    def jwks(self):
        with self.lock:
            self.stats["jwks_fetches"] += 1
            return 200, {"keys": [s.jwk for s in self.signers[-2:]]}


def handler_for(bank, control):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # never log headers (tokens)
            sys.stderr.write("oauthsim %s %s\n" % (self.command, self.path.split("?")[0]))

        def reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(min(n, MAX_BODY))

        def do_GET(self):
            if control:
                if self.path == "/stats":
                    with bank.lock:
                        return self.reply(200, dict(bank.stats))
                return self.reply(404, {"error": "not_found"})
            if self.path == "/jwks":
                return self.reply(*bank.jwks())
            if self.path.startswith("/v1/payments/"):
                if not bank.authorized(self.headers.get("Authorization")):
                    return self.reply(401, {"error": "invalid_token"})
                with bank.lock:
                    p = bank.payments.get(self.path[len("/v1/payments/"):])
                return self.reply(200, p) if p else self.reply(404, {"error": "not_found"})
            return self.reply(404, {"error": "not_found"})

        def do_POST(self):
            body = self.body()
            if control:
                return self.control_post(body)
            if self.path == "/oauth/token":
                return self.reply(*bank.token(self.headers.get("Authorization")))
            if self.path == "/v1/payments":
                if not bank.authorized(self.headers.get("Authorization")):
                    return self.reply(401, {"error": "invalid_token"})
                return self.reply(*bank.pay(body))
            return self.reply(404, {"error": "not_found"})

        def control_post(self, body):
            if self.path == "/config":
                cfg = json.loads(body or b"{}")
                with bank.lock:
                    if "token_ttl" in cfg:
                        bank.token_ttl = int(cfg["token_ttl"])
                    if "token_min_interval_ms" in cfg:
                        bank.min_interval = cfg["token_min_interval_ms"] / 1000.0
                    if "token_delay_ms" in cfg:
                        bank.token_delay = cfg["token_delay_ms"] / 1000.0
                return self.reply(200, {"ok": True})
            if self.path == "/revoke":
                with bank.lock:
                    bank.tokens.clear()
                return self.reply(200, {"ok": True})
            if self.path == "/rotate":
                s = Signer(bank.dir, len(bank.signers) + 1)
                with bank.lock:
                    bank.signers.append(s)
                return self.reply(200, {"kid": s.kid})
            if self.path == "/sign":
                s = bank.signers[-1]
                return self.reply(200, {"jws": s.sign_detached(body), "kid": s.kid})
            if self.path == "/sign_unknown":  # a key the key set never published
                with bank.lock:
                    if not getattr(bank, "stranger", None):
                        bank.stranger = Signer(bank.dir, 0)
                return self.reply(200, {"jws": bank.stranger.sign_detached(body), "kid": bank.stranger.kid})
            if self.path == "/stop":
                self.reply(200, {"ok": True})
                threading.Thread(target=lambda: os._exit(0), daemon=True).start()
                return None
            return self.reply(404, {"error": "not_found"})
    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="the PKI folder (make_pki) and scratch keys")
    ap.add_argument("--port-file", required=True, help="writes '<bank port> <control port>'")
    ap.add_argument("--token-ttl", type=int, default=300)
    ap.add_argument("--token-min-interval-ms", type=int, default=0)
    ap.add_argument("--token-delay-ms", type=int, default=0)
    ap.add_argument("--lifetime-s", type=int, default=600, help="exit after this long (bounded)")
    args = ap.parse_args()
    bank = Bank(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.dir + "/server.crt", args.dir + "/server.key")
    ctx.load_verify_locations(args.dir + "/ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(bank, False))
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    ctl = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(bank, True))
    ctl.daemon_threads = True
    for s in (srv, ctl):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (srv.server_address[1], ctl.server_address[1]))
    os.rename(tmp, args.port_file)
    time.sleep(args.lifetime_s)


if __name__ == "__main__":
    main()
