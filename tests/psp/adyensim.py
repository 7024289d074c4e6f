#!/usr/bin/env python3
"""adyensim: a simulator of Adyen's Checkout API v71 for the ADYEN connector's
tests, written from Adyen's public API reference. Standard library only,
127.0.0.1 only, in-memory and bounded.

  POST /v71/payments                         resultCode Authorised / Refused /
                                             Error / RedirectShopper
  POST /v71/payments/{psp}/captures|cancels|refunds   201 {"status":"received"};
                                             the outcome comes by webhook

Requests need X-API-Key (ADYEN_API_KEY), Content-Type application/json and
merchantAccount (ADYEN_MERCHANT_ACCOUNT); errors use Adyen's shape
{"status","errorCode","message","errorType"}. Idempotency-Key replays the
first answer; the same key with another body is 422 errorCode 704.

Sandbox values, as Adyen's test environment takes them:
  paymentMethod.holderName DECLINED, CARD_EXPIRED, BLOCK_CARD,
    NOT_ENOUGH_BALANCE -> Refused (refusalReason as Adyen's table), ERROR ->
    Error "Acquirer Error";
  encryptedCardNumber "test_4212345678910006" (3DS2 test card) ->
    RedirectShopper with action.url;
  other test_ card numbers and any storedPaymentMethodId (with
    shopperReference, shopperInteraction ContAuth) -> Authorised.
POST /_sim/config {"received": true} answers resultCode Received (Adyen's
answer for asynchronous methods) and lets the AUTHORISATION webhook tell.
additionalData.manualCapture "true" holds the authorisation; otherwise
Adyen captures by itself (no CAPTURE webhook, as Adyen by default).
A refund beyond what is captured is accepted, then REFUND success false.

Webhooks: items are queued and POSTed in batches to --webhook-url (or the
one set with POST /_sim/config {"webhook_url"}), each item signed with the
hex ADYEN_HMAC_KEY the way Adyen does, with Basic auth when
ADYEN_WEBHOOK_USERNAME/PASSWORD are set. An answer other than "[accepted]"
is retried (--retries times). GET /_sim/deliveries lists what was sent.
Secrets come from the environment only.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_OBJECTS = 10000
MAX_BODY = 1 << 20
# ISO 4217 with Adyen's exceptions (its "Currency codes" page): decimals.
DECIMALS = {"JPY": 0, "KRW": 0, "CLP": 2, "ISK": 2, "IDR": 0, "CVE": 0, "KWD": 3, "BHD": 3,
            "EUR": 2, "USD": 2, "GBP": 2, "BRL": 2, "ARS": 2, "MXN": 2}
REFUSALS = {"DECLINED": ("Refused", "Refused", "2"), "CARD_EXPIRED": ("Refused", "Expired Card", "6"),
            "BLOCK_CARD": ("Refused", "Blocked Card", "5"),
            "NOT_ENOUGH_BALANCE": ("Refused", "Not enough balance", "12"),
            "ERROR": ("Error", "Acquirer Error", "4")}
THREEDS_CARD = "test_4212345678910006"


def psp_reference():
    return "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(16))


def sign_item(item, key_hex):
    amount = item.get("amount", {})
    fields = [item.get("pspReference", ""), item.get("originalReference", ""),
              item.get("merchantAccountCode", ""), item.get("merchantReference", ""),
              str(amount.get("value", "")), amount.get("currency", ""), item.get("eventCode", ""),
              item.get("success", "")]
    mac = hmac.new(bytes.fromhex(key_hex), ":".join(fields).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class Sim:
    def __init__(self, args):
        self.api_key = os.environ["ADYEN_API_KEY"]
        self.hmac_key = os.environ["ADYEN_HMAC_KEY"]
        self.merchant = os.environ.get("ADYEN_MERCHANT_ACCOUNT", "TestMerchant")
        user, pw = os.environ.get("ADYEN_WEBHOOK_USERNAME"), os.environ.get("ADYEN_WEBHOOK_PASSWORD")
        self.basic = "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode() if user else None
        self.webhook_url = args.webhook_url
        self.webhooks = True
        self.received = False  # answer "Received" (asynchronous authorisation)
        self.retries = args.retries
        self.batch_ms = args.batch_ms
        self.lock = threading.RLock()
        self.payments = {}     # psp -> dict
        self.idem = {}         # key -> (body, status, answer)
        self.queue = []
        self.deliveries = []   # {"items": n, "answer": str, "attempt": k}
        self.requests = []     # the last requests' bodies (bounded)
        self.stop = threading.Event()
        threading.Thread(target=self.flusher, daemon=True).start()

    # ---- webhooks ----
    def notify(self, **item):
        item.setdefault("merchantAccountCode", self.merchant)
        item.setdefault("eventDate", time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))
        ad = dict(item.pop("additionalData", {}))
        ad["hmacSignature"] = sign_item(item, self.hmac_key)
        item["additionalData"] = ad
        with self.lock:
            if len(self.queue) < MAX_OBJECTS:
                self.queue.append({"NotificationRequestItem": item})

    def flusher(self):
        while not self.stop.wait(self.batch_ms / 1000.0):
            with self.lock:
                if not self.queue or not self.webhook_url or not self.webhooks:
                    continue
                batch, self.queue = self.queue[:100], self.queue[100:]
                url = self.webhook_url
            body = json.dumps({"live": "false", "notificationItems": batch}).encode()
            headers = {"Content-Type": "application/json"}
            if self.basic:
                headers["Authorization"] = self.basic
            for attempt in range(1, self.retries + 2):
                answer = ""
                try:
                    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                    with urllib.request.urlopen(req, timeout=5) as r:
                        answer = r.read(256).decode("utf-8", "replace")
                except Exception as e:  # refused, 4xx/5xx: Adyen retries
                    answer = "error: %s" % e
                with self.lock:
                    if len(self.deliveries) < MAX_OBJECTS:
                        self.deliveries.append({"items": len(batch), "answer": answer,
                                                "attempt": attempt, "body": body.decode()})
                if answer.strip() == "[accepted]":
                    break
                time.sleep(0.1)

    # ---- API ----
    def error(self, status, code, message, etype="validation"):
        return status, {"status": status, "errorCode": code, "message": message, "errorType": etype,
                        "pspReference": psp_reference()}

    def amount_ok(self, body):
        a = body.get("amount")
        if not isinstance(a, dict) or not isinstance(a.get("value"), int) or a["value"] < 0:
            return self.error(422, "100", "Required field 'amount' is not provided or invalid")
        if a.get("currency") not in DECIMALS:
            return self.error(422, "138", "Invalid currency: amount.currency")
        return None

    def payments_call(self, body):
        for field in ("amount", "reference", "paymentMethod", "returnUrl"):
            if field not in body:
                return self.error(422, "130" if field == "reference" else "14_0" + str(len(field)),
                                  "Required field '%s' is not provided." % field)
        bad = self.amount_ok(body)
        if bad:
            return bad
        pm = body["paymentMethod"]
        if not isinstance(pm, dict) or "type" not in pm:
            return self.error(422, "14_004", "Missing payment method details: paymentMethod.type")
        stored = pm.get("storedPaymentMethodId")
        if stored and (not body.get("shopperReference") or body.get("shopperInteraction") != "ContAuth"):
            return self.error(422, "14_012", "Field 'shopperReference' and shopperInteraction ContAuth "
                                             "are required for storedPaymentMethodId")
        if not stored and not str(pm.get("encryptedCardNumber", "")).startswith("test_"):
            return self.error(422, "174", "Unable to decrypt data: paymentMethod.encryptedCardNumber")
        psp = psp_reference()
        manual = (body.get("additionalData") or {}).get("manualCapture") == "true"
        meta = {"metadata." + k: str(v) for k, v in (body.get("metadata") or {}).items()}
        p = {"psp": psp, "ref": body["reference"], "amount": body["amount"], "manual": manual,
             "captured": 0, "refunded": 0, "state": "received", "meta": meta}
        self.payments[psp] = p
        answer = {"pspReference": psp, "merchantReference": body["reference"]}
        holder = str(pm.get("holderName", "")).upper()
        if holder in REFUSALS:
            code, reason, rcode = REFUSALS[holder]
            p["state"] = "refused"
            answer.update(resultCode=code, refusalReason=reason, refusalReasonCode=rcode)
            self.notify(eventCode="AUTHORISATION", success="false", pspReference=psp,
                        merchantReference=p["ref"], amount=p["amount"], reason=reason)
        elif pm.get("encryptedCardNumber") == THREEDS_CARD:
            p["state"] = "redirect"
            answer.update(resultCode="RedirectShopper",
                          action={"type": "redirect", "method": "GET", "paymentMethodType": "scheme",
                                  "url": "http://127.0.0.1:%d/threeDS2/%s" % (self.port, psp)})
        else:
            p["state"] = "authorised"
            if not manual:
                p["captured"] = p["amount"]["value"]
            if self.received:  # Adyen's asynchronous answer: the webhook tells
                answer.update(resultCode="Received")
            else:
                answer.update(resultCode="Authorised", amount=p["amount"])
            ops = ["CANCEL", "CAPTURE", "REFUND"] if manual else ["REFUND"]
            self.notify(eventCode="AUTHORISATION", success="true", pspReference=psp,
                        merchantReference=p["ref"], amount=p["amount"], operations=ops,
                        additionalData=meta)
        return 200, answer

    def modification(self, psp, kind, body):
        p = self.payments.get(psp)
        if p is None:
            return self.error(422, "167", "Original pspReference required for this operation")
        if "reference" in body and not isinstance(body["reference"], str):
            return self.error(422, "130", "Invalid field 'reference'")
        mod = psp_reference()
        answer = {"merchantAccount": self.merchant, "paymentPspReference": psp, "pspReference": mod,
                  "status": "received"}
        if body.get("reference"):
            answer["reference"] = body["reference"]
        ref = body.get("reference") or p["ref"]
        if kind in ("captures", "refunds"):
            bad = self.amount_ok(body)
            if bad:
                return bad
            if body["amount"]["currency"] != p["amount"]["currency"]:
                return self.error(422, "137", "Invalid amount specified: currency differs")
            answer["amount"] = body["amount"]
            value = body["amount"]["value"]
        if kind == "captures":
            if p["state"] != "authorised" or not p["manual"]:
                return self.error(422, "167", "Original pspReference required for this operation: "
                                              "the payment is not capturable")
            ok = p["captured"] + value <= p["amount"]["value"]
            if ok:
                p["captured"] += value
            self.notify(eventCode="CAPTURE", success="true" if ok else "false", pspReference=mod,
                        originalReference=psp, merchantReference=ref, amount=body["amount"],
                        **({} if ok else {"reason": "Insufficient balance on payment"}))
        elif kind == "cancels":
            ok = p["state"] == "authorised" and p["captured"] == 0
            if ok:
                p["state"] = "cancelled"
            self.notify(eventCode="CANCELLATION", success="true" if ok else "false", pspReference=mod,
                        originalReference=psp, merchantReference=ref, amount=p["amount"],
                        **({} if ok else {"reason": "Payment already captured"}))
        else:
            ok = p["refunded"] + value <= p["captured"]
            if ok:
                p["refunded"] += value
            self.notify(eventCode="REFUND", success="true" if ok else "false", pspReference=mod,
                        originalReference=psp, merchantReference=ref, amount=body["amount"],
                        **({} if ok else {"reason": "Insufficient balance on payment"}))
        return 201, answer


def make_handler(sim):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def reply(self, status, obj):
            raw = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            if self.path == "/_sim/deliveries":
                with sim.lock:
                    return self.reply(200, list(sim.deliveries))
            if self.path.startswith("/_sim/payments/"):
                with sim.lock:
                    p = sim.payments.get(self.path.rsplit("/", 1)[1])
                return self.reply(200 if p else 404, p or {})
            if self.path == "/_sim/requests":
                with sim.lock:
                    return self.reply(200, list(sim.requests))
            self.reply(404, {"status": 404, "errorCode": "000", "message": "Not found",
                             "errorType": "validation"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                return self.reply(413, {"status": 413, "errorCode": "000", "message": "too large",
                                        "errorType": "validation"})
            raw = self.rfile.read(n)
            if self.path == "/_sim/config":
                cfg = json.loads(raw or b"{}")
                with sim.lock:
                    sim.webhook_url = cfg.get("webhook_url", sim.webhook_url)
                    sim.webhooks = cfg.get("webhooks", sim.webhooks)
                    sim.retries = cfg.get("retries", sim.retries)
                    sim.received = cfg.get("received", sim.received)
                return self.reply(200, {"ok": True})
            parts = self.path.split("/")
            route = None
            if parts[:3] == ["", "v71", "payments"] and len(parts) == 3:
                route = ("payments", None)
            elif parts[:3] == ["", "v71", "payments"] and len(parts) == 5 and \
                    parts[4] in ("captures", "cancels", "refunds"):
                route = (parts[4], parts[3])
            if route is None:
                return self.reply(404, {"status": 404, "errorCode": "000", "message": "Not found",
                                        "errorType": "validation"})
            if not hmac.compare_digest(self.headers.get("X-API-Key", ""), sim.api_key):
                return self.reply(*sim.error(401, "000", "HTTP Status Response - Unauthorized",
                                             "security"))
            if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                return self.reply(*sim.error(415, "000", "Content-Type must be application/json"))
            try:
                body = json.loads(raw)
                assert isinstance(body, dict)
            except Exception:
                return self.reply(*sim.error(400, "702", "Structure of the request is not valid JSON"))
            if body.get("merchantAccount") != sim.merchant:
                return self.reply(*sim.error(422 if "merchantAccount" not in body else 403, "901",
                                             "Invalid Merchant Account: merchantAccount",
                                             "validation" if "merchantAccount" not in body else "security"))
            key = self.headers.get("Idempotency-Key")
            with sim.lock:
                if len(sim.requests) < 1000:
                    sim.requests.append({"path": self.path, "body": body, "idempotency_key": key})
                if key and key in sim.idem:
                    old_body, status, answer = sim.idem[key]
                    if old_body != raw:
                        status, answer = sim.error(422, "704", "request already processed or in "
                                                               "progress")
                    return self.reply(status, answer)
                if len(sim.payments) >= MAX_OBJECTS:
                    return self.reply(*sim.error(500, "905", "simulator full", "internal"))
                if route[0] == "payments":
                    status, answer = sim.payments_call(body)
                else:
                    status, answer = sim.modification(route[1], route[0], body)
                if key and len(sim.idem) < MAX_OBJECTS:
                    sim.idem[key] = (raw, status, answer)
            self.reply(status, answer)

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--webhook-url")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--batch-ms", type=int, default=150)
    args = ap.parse_args()
    sim = Sim(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(sim))
    sim.port = server.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(sim.port))
    os.rename(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sim.stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
