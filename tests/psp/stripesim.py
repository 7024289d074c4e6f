#!/usr/bin/env python3
"""A simulator of Stripe's PaymentIntents and Refunds API, from the public
API reference, for the connector's tests. Python 3 standard library only;
binds 127.0.0.1; state in memory, bounded.

  POST /v1/payment_intents               create (confirm=true confirms)
  POST /v1/payment_intents/{id}/confirm  payment_method (client-side confirm)
  POST /v1/payment_intents/{id}/capture  amount_to_capture (partial releases the rest)
  POST /v1/payment_intents/{id}/cancel
  GET  /v1/payment_intents/{id}
  POST /v1/refunds                       payment_intent, amount, reason, metadata
  GET  /v1/refunds/{id}
  GET  /v1/events                        the events sent, newest first
  GET  /3ds/{id}  POST /3ds/{id}/approve|decline   the issuer's 3DS page

Requests are refused as Stripe refuses them: a missing or wrong
"Authorization: Bearer" key (401), a body that is not form-encoded, a
missing or unknown parameter, a bad amount for the currency (400
invalid_request_error), a key reused with other parameters (400
idempotency_error). Sandbox values are Stripe's test PaymentMethods
(pm_card_visa, pm_card_chargeDeclined, pm_card_authenticationRequired, ...).
Webhooks are Stripe Events POSTed to --webhook-url with Stripe-Signature
"t=..,v1=.." under STRIPE_WEBHOOK_SECRET (and STRIPE_WEBHOOK_SECRET_OLD,
when set, as a second v1: a secret being rolled).

Usage: stripesim.py --port 0 --port-file F [--webhook-url URL]
Secrets come from the environment: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET.
"""
import argparse
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_OBJECTS = 10000
MAX_BODY = 256 * 1024
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
CURRENCIES = ZERO_DECIMAL | THREE_DECIMAL | {
    "usd", "eur", "gbp", "brl", "mxn", "ars", "cad", "aud", "chf", "sek", "nok", "dkk", "pln",
    "czk", "huf", "twd", "isk", "inr", "sgd", "hkd", "nzd", "zar", "cop", "pen", "uyu", "try"}
# Stripe's test PaymentMethods: (outcome, code, decline_code).
CARDS = {
    "pm_card_visa": ("ok", None, None),
    "pm_card_mastercard": ("ok", None, None),
    "pm_card_amex": ("ok", None, None),
    "pm_card_visa_debit": ("ok", None, None),
    "pm_card_chargeDeclined": ("decline", "card_declined", "generic_decline"),
    "pm_card_visa_chargeDeclined": ("decline", "card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("decline", "card_declined", "insufficient_funds"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("decline", "card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedLostCard": ("decline", "card_declined", "lost_card"),
    "pm_card_visa_chargeDeclinedLostCard": ("decline", "card_declined", "lost_card"),
    "pm_card_chargeDeclinedStolenCard": ("decline", "card_declined", "stolen_card"),
    "pm_card_visa_chargeDeclinedStolenCard": ("decline", "card_declined", "stolen_card"),
    "pm_card_chargeDeclinedFraudulent": ("decline", "card_declined", "fraudulent"),
    "pm_card_chargeDeclinedExpiredCard": ("decline", "expired_card", None),
    "pm_card_chargeDeclinedIncorrectCvc": ("decline", "incorrect_cvc", None),
    "pm_card_chargeDeclinedProcessingError": ("decline", "processing_error", None),
    "pm_card_authenticationRequired": ("3ds", None, None),
    "pm_card_threeDSecure2Required": ("3ds", None, None),
    "pm_card_authenticationRequiredOnSetup": ("ok", None, None),
    "pm_card_refundFail": ("ok", None, None),  # its refunds fail asynchronously
}
TOKENS = {"tok_visa": "pm_card_visa", "tok_mastercard": "pm_card_mastercard",
          "tok_chargeDeclined": "pm_card_chargeDeclined",
          "tok_chargeDeclinedInsufficientFunds": "pm_card_chargeDeclinedInsufficientFunds"}
CREATE_PARAMS = {"amount", "currency", "capture_method", "confirm", "payment_method",
                 "payment_method_types[]", "return_url", "description", "customer",
                 "receipt_email", "statement_descriptor", "setup_future_usage",
                 "payment_method_data[type]", "payment_method_data[card][token]"}
CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing"}


class StripeError(Exception):
    def __init__(self, status, type_, message, code=None, param=None, **extra):
        super().__init__(message)
        self.status = status
        self.body = {"error": dict({"type": type_, "message": message}, **extra)}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param


def invalid(message, code=None, param=None, status=400):
    return StripeError(status, "invalid_request_error", message, code, param)


class Sim:
    def __init__(self, key, whsec, whsec_old, webhook_url):
        self.key = key
        self.whsec = whsec
        self.whsec_old = whsec_old
        self.webhook_url = webhook_url
        self.lock = threading.RLock()  # emit() runs under it too
        self.intents = {}
        self.refunds = {}
        self.events = []
        self.idem = {}  # key -> (fingerprint, status, body)
        self.base = ""

    # ---- webhooks ----
    def emit(self, type_, obj):
        event = {"id": "evt_" + secrets.token_hex(12), "object": "event", "type": type_,
                 "api_version": "2024-06-20", "created": int(time.time()), "livemode": False,
                 "data": {"object": json.loads(json.dumps(obj))}}
        with self.lock:
            self.events.insert(0, event)
            del self.events[MAX_OBJECTS:]
        if self.webhook_url:
            threading.Thread(target=self.deliver, args=(event,), daemon=True).start()

    def sign(self, body, t):
        sigs = [hmac.new(s.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
                for s in (self.whsec, self.whsec_old) if s]
        return "t=%d," % t + ",".join("v1=" + s for s in sigs)

    def deliver(self, event):
        time.sleep(0.05)
        body = json.dumps(event, indent=2).encode()
        req = urllib.request.Request(self.webhook_url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0",
            "Stripe-Signature": self.sign(body, int(time.time()))})
        for _ in range(3):
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    if 200 <= r.status < 300:
                        return
            except Exception:
                pass
            time.sleep(0.2)

    # ---- helpers ----
    @staticmethod
    def amount(form, name, currency, required=True):
        v = form.get(name)
        if v is None:
            if required:
                raise invalid("Missing required param: %s." % name, "parameter_missing", name)
            return None
        if not v.isdigit() or int(v) < 1 or int(v) > 99999999:
            raise invalid("Invalid integer: %s" % v, "parameter_invalid_integer", name)
        n = int(v)
        if currency == "isk" and n % 100:
            raise invalid("Invalid amount. Currency ISK has become effectively zero-decimal and "
                          "charged amounts must be evenly divisible by 100.",
                          "invalid_charge_amount_no_decimal_compatible", name)
        if currency in THREE_DECIMAL and n % 10:
            raise invalid("Invalid amount: the last digit of a %s amount must be 0." %
                          currency.upper(), "invalid_amount", name)
        if currency == "usd" and n < 50:
            raise invalid("Amount must be at least $0.50 usd", "amount_too_small", name)
        return n

    def intent(self, pid):
        pi = self.intents.get(pid)
        if not pi:
            raise invalid("No such payment_intent: '%s'" % pid, "resource_missing", "intent", 404)
        return pi

    def confirm(self, pi, pm):
        """Confirm pi with payment method pm; the answer and the events."""
        card = CARDS.get(pm)
        if not card:
            raise invalid("No such PaymentMethod: '%s'" % pm, "resource_missing", "payment_method")
        pi["payment_method"] = pm
        outcome, code, decline = card
        if outcome == "decline":
            err = {"type": "card_error", "code": code, "message": "Your card was declined.",
                   "payment_method": {"id": pm}}
            if decline:
                err["decline_code"] = decline
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = err
            self.emit("payment_intent.payment_failed", pi)
            raise StripeError(402, "card_error", err["message"], code, None,
                              decline_code=decline, payment_intent=json.loads(json.dumps(pi)))
        if outcome == "3ds":
            pi["status"] = "requires_action"
            if pi.get("return_url"):
                pi["next_action"] = {"type": "redirect_to_url", "redirect_to_url": {
                    "url": "%s/3ds/%s" % (self.base, pi["id"]), "return_url": pi["return_url"]}}
            else:
                pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
            self.emit("payment_intent.requires_action", pi)
            return
        self.authorized(pi)

    def authorized(self, pi):
        pi["next_action"] = None
        pi["last_payment_error"] = None
        if pi["capture_method"] == "manual":
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            self.emit("payment_intent.amount_capturable_updated", pi)
        else:
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            pi["latest_charge"] = "ch_" + pi["id"][3:]
            self.emit("payment_intent.succeeded", pi)

    # ---- endpoints (called with the lock NOT held; they take it) ----
    def create_intent(self, form):
        unknown = [k for k in form if k not in CREATE_PARAMS and not k.startswith("metadata[")]
        if unknown:
            raise invalid("Received unknown parameter: %s" % unknown[0], "parameter_unknown",
                          unknown[0])
        currency = form.get("currency")
        if currency is None:
            raise invalid("Missing required param: currency.", "parameter_missing", "currency")
        if currency not in CURRENCIES:
            raise invalid("Invalid currency: %s. Stripe currently supports these currencies: ..."
                          % currency, "parameter_invalid_empty" if not currency else None,
                          "currency")
        amount = self.amount(form, "amount", currency)
        cm = form.get("capture_method", "automatic")
        if cm not in ("automatic", "automatic_async", "manual"):
            raise invalid("Invalid capture_method: must be one of automatic, automatic_async or "
                          "manual", None, "capture_method")
        confirm = form.get("confirm", "false")
        if confirm not in ("true", "false"):
            raise invalid("Invalid boolean: %s" % confirm, None, "confirm")
        pm = form.get("payment_method")
        tok = form.get("payment_method_data[card][token]")
        if tok:
            if form.get("payment_method_data[type]") != "card":
                raise invalid("Missing required param: payment_method_data[type].",
                              "parameter_missing", "payment_method_data[type]")
            if tok not in TOKENS:
                raise invalid("No such token: '%s'" % tok, "resource_missing",
                              "payment_method_data[card][token]")
            pm = TOKENS[tok]
        if confirm == "true" and not pm:
            raise invalid("You cannot confirm this PaymentIntent because it's missing a payment "
                          "method.", "payment_intent_unexpected_state")
        with self.lock:
            if len(self.intents) >= MAX_OBJECTS:
                raise StripeError(500, "api_error", "simulator full")
            pid = "pi_" + secrets.token_hex(12)
            pi = {"id": pid, "object": "payment_intent", "amount": amount, "currency": currency,
                  "amount_capturable": 0, "amount_received": 0, "capture_method": cm,
                  "client_secret": pid + "_secret_" + secrets.token_hex(8),
                  "status": "requires_payment_method", "payment_method": None,
                  "payment_method_types": [v for k, v in form.items() if k == "payment_method_types[]"] or ["card"],
                  "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
                  "description": form.get("description"), "return_url": form.get("return_url"),
                  "last_payment_error": None, "next_action": None, "latest_charge": None,
                  "created": int(time.time()), "livemode": False, "refunded": 0}
            self.intents[pid] = pi
        self.emit("payment_intent.created", pi)
        if confirm == "true":
            with self.lock:
                self.confirm(pi, pm)
        return pi

    def post_intent(self, pid, action, form):
        with self.lock:
            pi = self.intent(pid)
            if action == "confirm":
                if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
                    raise invalid("This PaymentIntent's status is %s." % pi["status"],
                                  "payment_intent_unexpected_state")
                pm = form.get("payment_method") or pi.get("payment_method")
                if not pm:
                    raise invalid("Missing required param: payment_method.", "parameter_missing",
                                  "payment_method")
                if form.get("return_url"):
                    pi["return_url"] = form["return_url"]
                self.confirm(pi, pm)
            elif action == "capture":
                if pi["status"] != "requires_capture":
                    raise invalid("This PaymentIntent could not be captured because it has a "
                                  "status of %s. Only a PaymentIntent with one of the following "
                                  "statuses may be captured: requires_capture." % pi["status"],
                                  "payment_intent_unexpected_state")
                n = self.amount(form, "amount_to_capture", pi["currency"], required=False)
                n = pi["amount_capturable"] if n is None else n
                if n > pi["amount_capturable"]:
                    raise invalid("amount_to_capture must be less than or equal to the "
                                  "amount_capturable.", "amount_too_large", "amount_to_capture")
                pi["amount_received"] = n
                pi["amount_capturable"] = 0
                pi["status"] = "succeeded"
                pi["latest_charge"] = "ch_" + pi["id"][3:]
                self.emit("payment_intent.succeeded", pi)
            elif action == "cancel":
                reason = form.get("cancellation_reason")
                if pi["status"] not in CANCELABLE:
                    raise invalid("You cannot cancel this PaymentIntent because it has a status "
                                  "of %s." % pi["status"], "payment_intent_unexpected_state")
                pi["status"] = "canceled"
                pi["amount_capturable"] = 0
                pi["cancellation_reason"] = reason
                pi["next_action"] = None
                self.emit("payment_intent.canceled", pi)
            else:
                raise invalid("Unrecognized request URL (POST: /v1/payment_intents/%s/%s)."
                              % (pid, action), status=404)
            return pi

    def create_refund(self, form):
        allowed = {"payment_intent", "charge", "amount", "reason"}
        unknown = [k for k in form if k not in allowed and not k.startswith("metadata[")]
        if unknown:
            raise invalid("Received unknown parameter: %s" % unknown[0], "parameter_unknown",
                          unknown[0])
        pid = form.get("payment_intent")
        if not pid:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", "parameter_missing")
        reason = form.get("reason")
        if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise invalid("Invalid reason: must be one of duplicate, fraudulent, or "
                          "requested_by_customer", None, "reason")
        with self.lock:
            pi = self.intent(pid)
            if pi["status"] != "succeeded":
                raise invalid("This PaymentIntent does not have a successful charge to refund.",
                              "charge_not_refundable" if pi["status"] != "canceled" else
                              "payment_intent_unexpected_state")
            left = pi["amount_received"] - pi["refunded"]
            if left <= 0:
                raise invalid("Charge %s has already been refunded." % pi["latest_charge"],
                              "charge_already_refunded")
            n = self.amount(form, "amount", pi["currency"], required=False)
            n = left if n is None else n
            if n > left:
                raise invalid("Refund amount (%d) is greater than unrefunded amount on charge (%d)"
                              % (n, left), "amount_too_large", "amount")
            if len(self.refunds) >= MAX_OBJECTS:
                raise StripeError(500, "api_error", "simulator full")
            fails = pi["payment_method"] == "pm_card_refundFail"
            re = {"id": "re_" + secrets.token_hex(12), "object": "refund", "amount": n,
                  "currency": pi["currency"], "payment_intent": pid, "charge": pi["latest_charge"],
                  "status": "pending" if fails else "succeeded", "reason": reason,
                  "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
                  "created": int(time.time()), "failure_reason": None}
            self.refunds[re["id"]] = re
            pi["refunded"] += n
        self.emit("refund.created", re)
        if fails:
            threading.Timer(0.2, self.fail_refund, args=(re["id"],)).start()
        else:
            charge = {"id": pi["latest_charge"], "object": "charge", "payment_intent": pid,
                      "amount": pi["amount_received"], "amount_refunded": pi["refunded"],
                      "currency": pi["currency"], "refunded": pi["refunded"] == pi["amount_received"],
                      "refunds": {"object": "list", "data": [re]}}
            self.emit("charge.refunded", charge)
        return re

    def fail_refund(self, rid):
        with self.lock:
            re = self.refunds[rid]
            re["status"] = "failed"
            re["failure_reason"] = "expired_or_canceled_card"
            self.intents[re["payment_intent"]]["refunded"] -= re["amount"]
        self.emit("refund.failed", re)

    def threeds(self, pid, approve):
        with self.lock:
            pi = self.intent(pid)
            if pi["status"] != "requires_action":
                raise invalid("This PaymentIntent is not awaiting authentication.",
                              "payment_intent_unexpected_state")
            if approve:
                self.authorized(pi)
            else:
                pi["status"] = "requires_payment_method"
                pi["next_action"] = None
                pi["last_payment_error"] = {
                    "type": "card_error", "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication."}
                self.emit("payment_intent.payment_failed", pi)
            return pi


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sim = None

    def log_message(self, fmt, *args):  # no request lines with ids and keys on stderr
        pass

    def answer(self, status, obj, extra=None, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else (json.dumps(obj, indent=2) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise invalid("Request body too large.")
        return self.rfile.read(n) if n else b""

    def authed(self):
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer ") or not hmac.compare_digest(auth[7:].encode(),
                                                                     self.sim.key.encode()):
            raise invalid("Invalid API Key provided: %s" % ("sk_test_****" if auth else "(none)"),
                          status=401)

    def do_GET(self):
        try:
            path = urllib.parse.urlsplit(self.path).path
            parts = path.strip("/").split("/")
            if parts[0] == "3ds" and len(parts) == 2:
                pid = urllib.parse.quote(parts[1])
                page = ("<html><body><h1>3D Secure 2 Test Page</h1><p>%s</p>"
                        "<form method=post action=/3ds/%s/approve><button>Complete</button></form>"
                        "<form method=post action=/3ds/%s/decline><button>Fail</button></form>"
                        "</body></html>" % (pid, pid, pid)).encode()
                return self.answer(200, page, ctype="text/html")
            self.authed()
            s = self.sim
            with s.lock:
                if parts[:2] == ["v1", "payment_intents"] and len(parts) == 3:
                    return self.answer(200, s.intent(parts[2]))
                if parts[:2] == ["v1", "refunds"] and len(parts) == 3:
                    re = s.refunds.get(parts[2])
                    if not re:
                        raise invalid("No such refund: '%s'" % parts[2], "resource_missing", "id", 404)
                    return self.answer(200, re)
                if parts == ["v1", "events"]:
                    return self.answer(200, {"object": "list", "data": s.events[:100],
                                             "has_more": len(s.events) > 100})
            raise invalid("Unrecognized request URL (GET: %s)." % path, status=404)
        except StripeError as e:
            self.answer(e.status, e.body)

    def do_POST(self):
        try:
            path = urllib.parse.urlsplit(self.path).path
            parts = path.strip("/").split("/")
            raw = self.read_body()
            if parts[0] == "3ds" and len(parts) == 3 and parts[2] in ("approve", "decline"):
                pi = self.sim.threeds(parts[1], parts[2] == "approve")
                url = (pi.get("return_url") or "") + "?payment_intent=" + pi["id"]
                return self.answer(302, b"", {"Location": url}, "text/plain")
            self.authed()
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if raw and ctype != "application/x-www-form-urlencoded":
                raise invalid("Invalid request: Content-Type must be "
                              "application/x-www-form-urlencoded.")
            try:
                pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                               strict_parsing=bool(raw))
            except (UnicodeDecodeError, ValueError):
                raise invalid("Invalid request: the body could not be parsed.")
            form = {}
            for k, v in pairs:
                form.setdefault(k, v)
            key = self.headers.get("Idempotency-Key")
            fp = hashlib.sha256(path.encode() + b"\0" + raw).hexdigest()
            s = self.sim
            if key:
                if len(key) > 255:
                    raise invalid("Idempotency-Key must be at most 255 characters.")
                with s.lock:
                    seen = s.idem.get(key)
                    if not seen and len(s.idem) < MAX_OBJECTS:
                        s.idem[key] = (fp, None, None)  # in flight
                if seen:
                    if seen[1] is None:
                        raise StripeError(409, "idempotency_error",
                                          "There is currently another in-progress request using "
                                          "this Stripe-Idempotency-Key, please try again later.")
                    if seen[0] != fp:
                        raise StripeError(400, "idempotency_error",
                                          "Keys for idempotent requests can only be used with the "
                                          "same parameters they were first used with.")
                    return self.answer(seen[1], seen[2], {"Idempotent-Replayed": "true"})
            try:
                if parts == ["v1", "payment_intents"]:
                    status, obj = 200, s.create_intent(form)
                elif parts[:2] == ["v1", "payment_intents"] and len(parts) == 4:
                    status, obj = 200, s.post_intent(parts[2], parts[3], form)
                elif parts == ["v1", "refunds"]:
                    status, obj = 200, s.create_refund(form)
                else:
                    raise invalid("Unrecognized request URL (POST: %s)." % path, status=404)
            except StripeError as e:
                status, obj = e.status, e.body
            obj = json.loads(json.dumps(obj))
            if key:  # Stripe stores the answer, errors included; not its own 5xx
                with s.lock:
                    if status < 500:
                        s.idem[key] = (fp, status, obj)
                    else:
                        s.idem.pop(key, None)
            self.answer(status, obj, {"Idempotency-Key": key} if key else None)
        except StripeError as e:
            self.answer(e.status, e.body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--webhook-url", default="")
    a = ap.parse_args()
    key = os.environ.get("STRIPE_SECRET_KEY")
    whsec = os.environ.get("STRIPE_WEBHOOK_SECRET")
    if not key or not whsec:
        raise SystemExit("stripesim: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")
    if a.webhook_url and urllib.parse.urlsplit(a.webhook_url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("stripesim: --webhook-url must be a loopback URL")
    sim = Sim(key, whsec, os.environ.get("STRIPE_WEBHOOK_SECRET_OLD"), a.webhook_url)
    Handler.sim = sim
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    sim.base = "http://127.0.0.1:%d" % srv.server_address[1]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
