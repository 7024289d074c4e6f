#!/usr/bin/env python3
"""Simulator of Mercado Pago's Payments API (the flows the MERCADOPAGO
connector uses), written from the public docs; Python 3 standard library.

  POST /v1/card_tokens        {card_number, security_code, expiration_month,
                               expiration_year, cardholder:{name}} -> {id}
  POST /v1/payments           create (capture true/false), X-Idempotency-Key
  GET  /v1/payments/{id}
  GET  /v1/payments/search?external_reference=R   (results, paging)
  PUT  /v1/payments/{id}      {"capture":true,"transaction_amount"?} | {"status":"cancelled"}
  POST /v1/payments/{id}/refunds           {"amount"?} (partial, several)
  GET  /v1/payments/{id}/refunds/{refund_id}
  POST /_sim/advance/{id}     test control: an in_process payment is approved

The test cardholder name decides the outcome (APRO approved, OTHE general
error, CONT pending -> in_process, CALL call for authorize, FUND insufficient
amount, SECU security code, EXPI expiry, FORM form error). Every change is
notified to the payment's notification_url with only the id: POST
<url>?data.id=<id>&type=payment, x-request-id, x-signature ts=..,v1=HMAC of
"id:<id>;request-id:<rid>;ts:<ts>;". Errors: {"message","error","status","cause"}.

  mercadopagosim.py --port-file F [--token T --secret S]   (127.0.0.1 only; or
  MP_ACCESS_TOKEN/MP_WEBHOOK_SECRET in the environment)
"""
import argparse, hashlib, hmac, json, os, re, threading, time, urllib.parse, urllib.request, uuid
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUTCOMES = {
    "APRO": ("approved", "accredited"),
    "OTHE": ("rejected", "cc_rejected_other_reason"),
    "CONT": ("in_process", "pending_contingency"),
    "CALL": ("rejected", "cc_rejected_call_for_authorize"),
    "FUND": ("rejected", "cc_rejected_insufficient_amount"),
    "SECU": ("rejected", "cc_rejected_bad_filled_security_code"),
    "EXPI": ("rejected", "cc_rejected_bad_filled_date"),
    "FORM": ("rejected", "cc_rejected_bad_filled_other"),
}
CURRENCY = {"ARS": 2, "BRL": 2, "MXN": 2, "CLP": 0, "COP": 2, "PEN": 2, "UYU": 2}
MAX_BODY = 64 * 1024
MAX_OBJECTS = 10000


class Sim:
    def __init__(self, token, secret):
        self.token, self.secret = token, secret
        self.lock = threading.Lock()
        self.tokens, self.payments, self.idem = {}, {}, {}
        self.next_id = 1000000001
        self.notified = []

    def new_id(self):
        self.next_id += 1
        return self.next_id

    def sign(self, data_id, request_id, ts):
        m = "id:%s;request-id:%s;ts:%s;" % (data_id.lower() if data_id.isalnum() else data_id,
                                            request_id, ts)
        return hmac.new(self.secret.encode(), m.encode(), hashlib.sha256).hexdigest()

    def notify(self, pay):
        url = pay.get("notification_url")
        if not url or not url.startswith("http://127.0.0.1"):
            return
        pid, rid, ts = str(pay["id"]), str(uuid.uuid4()), str(int(time.time()))
        body = json.dumps({"id": self.new_id(), "action": "payment.updated", "api_version": "v1",
                           "type": "payment", "live_mode": False, "data": {"id": pid}}).encode()
        sep = "&" if "?" in url else "?"
        req = urllib.request.Request(url + sep + "data.id=%s&type=payment" % pid, data=body,
                                     method="POST", headers={
                                         "Content-Type": "application/json", "x-request-id": rid,
                                         "x-signature": "ts=%s,v1=%s" % (ts, self.sign(pid, rid, ts))})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                self.notified.append((pid, r.status))
        except Exception as e:  # the real service retries; we record it
            self.notified.append((pid, getattr(e, "code", 0)))


def error(status, message, err, cause=None):
    return status, {"message": message, "error": err, "status": status,
                    "cause": cause or []}


def decimal_of(v, currency):
    """Minor units of a JSON number in currency, or None when not exact."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        return None
    minor = d * (10 ** CURRENCY[currency])
    return int(minor) if minor == minor.to_integral_value() and minor > 0 else None


def as_number(minor, currency):
    e = CURRENCY[currency]
    return minor if e == 0 else float(Decimal(minor) / (10 ** e))


class Handler(BaseHTTPRequestHandler):
    sim = None

    def log_message(self, *a):
        pass

    def reply(self, status, obj):
        if isinstance(obj, dict):  # the simulator's own bookkeeping stays inside
            obj = {k: v for k, v in obj.items() if not k.startswith("_")}
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        sim = self.sim
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return self.reply(*error(413, "body too large", "bad_request"))
        raw = self.rfile.read(n) if n else b""
        path = self.path.split("?", 1)[0]
        if path.startswith("/_sim/advance/") and method == "POST":
            return self.reply(*self.advance(path.rsplit("/", 1)[1]))
        if method == "POST" and path == "/v1/card_tokens":
            return self.reply(*self.card_token(raw))  # public key auth: not simulated
        if self.headers.get("Authorization") != "Bearer " + sim.token:
            return self.reply(*error(401, "invalid access token", "unauthorized"))
        body = None
        if method in ("POST", "PUT"):
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                return self.reply(*error(415, "Content-Type must be application/json",
                                         "unsupported_media_type"))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self.reply(*error(400, "invalid JSON body", "bad_request"))
            if not isinstance(body, dict):
                return self.reply(*error(400, "body must be an object", "bad_request"))
        key = self.headers.get("X-Idempotency-Key")
        with sim.lock:
            if method in ("POST", "PUT") and key:
                seen = sim.idem.get((method, path, key))
                if seen:
                    return self.reply(*seen)
            m = re.fullmatch(r"/v1/payments(?:/(\d+)(?:/refunds(?:/(\d+))?)?)?", path)
            if method == "GET" and path == "/v1/payments/search":
                q = dict(urllib.parse.parse_qsl(self.path.partition("?")[2]))
                found = [{k: v for k, v in p.items() if not k.startswith("_")}
                         for p in sim.payments.values()
                         if p.get("external_reference") == q.get("external_reference")]
                out = 200, {"paging": {"total": len(found), "limit": 30, "offset": 0},
                            "results": found[:30]}
            elif not m:
                out = error(404, "resource not found", "not_found")
            elif method == "POST" and m.group(1) is None:
                out = self.create(body)
            elif m.group(1) and int(m.group(1)) not in sim.payments:
                out = error(404, "Payment not found", "not_found")
            elif method == "GET" and "/refunds" not in path:
                out = 200, sim.payments[int(m.group(1))]
            elif method == "PUT" and "/refunds" not in path:
                out = self.update(sim.payments[int(m.group(1))], body)
            elif method == "POST" and path.endswith("/refunds"):
                out = self.refund(sim.payments[int(m.group(1))], body)
            elif method == "GET" and m.group(2):
                rf = [r for r in sim.payments[int(m.group(1))]["refunds"]
                      if r["id"] == int(m.group(2))]
                out = (200, rf[0]) if rf else error(404, "Refund not found", "not_found")
            else:
                out = error(405, "method not allowed", "method_not_allowed")
            if method in ("POST", "PUT") and key and out[0] < 500:
                sim.idem[(method, path, key)] = out
            pay = out[1] if out[0] in (200, 201) and "transaction_amount" in out[1] else None
        if pay is not None and method in ("POST", "PUT"):
            sim.notify(pay)
        if out[0] in (200, 201) and method == "POST" and path.endswith("/refunds"):
            sim.notify(sim.payments[int(m.group(1))])
        return self.reply(*out)

    def card_token(self, raw):
        try:
            b = json.loads(raw)
            name = b["cardholder"]["name"]
            assert re.fullmatch(r"\d{13,19}", b["card_number"])
            assert b.get("security_code") and b.get("expiration_month") and b.get("expiration_year")
        except Exception:
            return error(400, "card_number, security_code, expiration_month, expiration_year "
                              "and cardholder.name are required", "bad_request")
        tok = uuid.uuid4().hex
        with self.sim.lock:
            if len(self.sim.tokens) < MAX_OBJECTS:
                self.sim.tokens[tok] = name.strip().upper()
        return 201, {"id": tok, "status": "active", "cardholder": {"name": name}}

    def create(self, b):
        sim = self.sim
        cur = b.get("currency_id", "BRL")
        missing = [f for f in ("transaction_amount", "token", "payment_method_id", "payer")
                   if f not in b]
        if missing:
            return error(400, "%s is required" % missing[0], "bad_request",
                         [{"code": 2000 + len(missing[0]), "description": missing[0] + " is required"}])
        if not isinstance(b["payer"], dict) or not b["payer"].get("email"):
            return error(400, "payer.email is required", "bad_request",
                         [{"code": 4050, "description": "payer.email must be a valid email"}])
        if cur not in CURRENCY:
            return error(400, "currency_id invalid", "bad_request")
        minor = decimal_of(b["transaction_amount"], cur)
        if minor is None:
            return error(400, "Invalid transaction_amount", "bad_request",
                         [{"code": 4037, "description": "Invalid transaction_amount"}])
        name = sim.tokens.get(b["token"])
        if name is None:
            return error(400, "Invalid card_token_id", "bad_request",
                         [{"code": 3003, "description": "Invalid card_token_id"}])
        if len(sim.payments) >= MAX_OBJECTS:
            return error(429, "too many payments in the simulator", "too_many_requests")
        status, detail = OUTCOMES.get(name, OUTCOMES["OTHE"])
        capture = b.get("capture", True) is not False
        if status == "approved" and not capture:
            status, detail = "authorized", "pending_capture"
        pid = sim.new_id()
        pay = {"id": pid, "status": status, "status_detail": detail, "currency_id": cur,
               "transaction_amount": as_number(minor, cur), "captured": status == "approved",
               "external_reference": b.get("external_reference"),
               "description": b.get("description"), "payment_method_id": b["payment_method_id"],
               "notification_url": b.get("notification_url"), "refunds": [],
               "transaction_amount_refunded": 0, "_minor": minor, "_refunded": 0,
               "_capture_later": capture}
        sim.payments[pid] = pay
        return 201, pay

    def update(self, pay, b):
        cur = pay["currency_id"]
        if b.get("status") == "cancelled":
            if pay["status"] not in ("pending", "in_process", "authorized"):
                return error(400, "Payment can't be cancelled", "bad_request")
            pay.update(status="cancelled", status_detail="by_collector")
            return 200, pay
        if b.get("capture") is True:
            if pay["status"] != "authorized":
                return error(400, "Payment can't be captured", "bad_request")
            minor = pay["_minor"]
            if "transaction_amount" in b:
                minor = decimal_of(b["transaction_amount"], cur)
                if minor is None or minor > pay["_minor"]:
                    return error(400, "Invalid transaction_amount", "bad_request")
            pay.update(status="approved", status_detail="accredited", captured=True,
                       _minor=minor, transaction_amount=as_number(minor, cur))
            return 200, pay
        return error(400, "nothing to update: capture or status is required", "bad_request")

    def refund(self, pay, b):
        cur = pay["currency_id"]
        if pay["status"] not in ("approved", "refunded") or not pay["captured"]:
            return error(400, "Payment not refundable in status " + pay["status"], "bad_request")
        left = pay["_minor"] - pay["_refunded"]
        minor = left if "amount" not in b else decimal_of(b["amount"], cur)
        if minor is None or minor > left:
            return error(400, "Invalid refund amount", "bad_request",
                         [{"code": 4040, "description": "amount exceeds the refundable amount"}])
        rf = {"id": self.sim.new_id(), "payment_id": pay["id"], "amount": as_number(minor, cur),
              "status": "approved", "date_created": time.strftime("%Y-%m-%dT%H:%M:%S.000-04:00")}
        pay["refunds"].append(rf)
        pay["_refunded"] += minor
        pay["transaction_amount_refunded"] = as_number(pay["_refunded"], cur)
        if pay["_refunded"] == pay["_minor"]:
            pay.update(status="refunded", status_detail="refunded")
        return 201, rf

    def advance(self, pid):
        with self.sim.lock:
            pay = self.sim.payments.get(int(pid)) if pid.isdigit() else None
            if not pay or pay["status"] != "in_process":
                return error(404, "no in_process payment", "not_found")
            pay.update(status="approved", status_detail="accredited", captured=True)
            if not pay["_capture_later"]:
                pay.update(status="authorized", status_detail="pending_capture", captured=False)
        self.sim.notify(pay)
        return 200, pay

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    # Or from the environment (MP_ACCESS_TOKEN, MP_WEBHOOK_SECRET): a command line is public (ps).
    ap.add_argument("--token", default=os.environ.get("MP_ACCESS_TOKEN"))
    ap.add_argument("--secret", default=os.environ.get("MP_WEBHOOK_SECRET"))
    a = ap.parse_args()
    if not a.token or not a.secret:
        raise SystemExit("mercadopagosim: give --token/--secret or MP_ACCESS_TOKEN/MP_WEBHOOK_SECRET")
    Handler.sim = Sim(a.token, a.secret)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
