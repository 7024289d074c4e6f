#!/usr/bin/env python3
"""The ADYEN connector (build/psp/adyen.so, built out of tree) against
adyensim.py, Adyen's own HMAC code (@adyen/api-library from npm) and a
running pagoflexd.

Needs PAGOFLEX_BUILD_DIR and PAGOFLEX_PSP_DIR (ctest sets them); the host
test also needs PAGOFLEX_PG.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("PAGOFLEX_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
PSP = os.environ.get("PAGOFLEX_PSP_DIR") or os.path.join(BUILD, "psp")
PLUGIN = os.path.join(PSP, "adyen.so")
DRIVE = os.path.join(PSP, "adyen-build", "adyen_drive")
PAGOFLEX = os.path.join(BUILD, "host", "pagoflex")
NPM_PKG = "@adyen/api-library@32.1.0"
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

API_KEY = "AQE_sim_" + os.urandom(8).hex()
HMAC_KEY = os.urandom(32).hex().upper()
MERCHANT = "PagoflexTestECOM"
try:
    import harness  # records the secrets so the suite's log check can look for them
    for s in (API_KEY, HMAC_KEY):
        harness.record_secret(s)
except Exception:  # no harness environment: nothing to record into
    harness = None


def http(method, url, body=None, headers=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    if harness:  # a host's answer is held to the API reference (issue 14)
        harness.check_exchange(method, url, data, dict(req.header_items()), status, raw, dict(hdrs))
    return status, raw.decode()


class Receiver:
    """A webhook endpoint that keeps raw bodies and answers `answer`."""

    def __init__(self, answer=b"[accepted]"):
        self.bodies, self.answer = [], answer
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.bodies.append(raw)
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.answer)))
                self.end_headers()
                self.wfile.write(outer.answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/webhooks/adyen" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start_sim(tmp, webhook_url=None):
    port_file = os.path.join(tmp, "adyensim.port")
    env = dict(os.environ, ADYEN_API_KEY=API_KEY, ADYEN_HMAC_KEY=HMAC_KEY,
               ADYEN_MERCHANT_ACCOUNT=MERCHANT)
    args = [sys.executable, os.path.join(HERE, "adyensim.py"), "--port-file", port_file]
    if webhook_url:
        args += ["--webhook-url", webhook_url]
    proc = subprocess.Popen(args, env=env)
    for _ in range(100):
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, "http://127.0.0.1:%s" % f.read()
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("adyensim did not start")


def wait(pred, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def creds_args():
    return ["--credential", "ADYEN_API_KEY=" + API_KEY, "--credential", "ADYEN_HMAC_KEY=" + HMAC_KEY,
            "--credential", "ADYEN_MERCHANT_ACCOUNT=" + MERCHANT]


def webhook_verify(body):
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body if isinstance(body, bytes) else body.encode())
    try:
        return subprocess.run([PAGOFLEX, "webhook", "verify", "--plugin", PLUGIN] + creds_args()
                              + ["--now", str(int(time.time())), "--header",
                                 "Content-Type: application/json", "--body-file", f.name],
                              capture_output=True, text=True)
    finally:
        os.unlink(f.name)


class SimAndPlugin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="adyen-")
        cls.recv = Receiver()
        cls.sim, cls.sim_url = start_sim(cls.tmp, cls.recv.url)
        cls.base = cls.sim_url + "/v71"
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.sim.terminate()
        cls.sim.wait(5)
        cls.recv.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----
    def drive(self, flow, payment, **inp):
        """Run one flow through the plugin against the simulator."""
        env = dict(os.environ, ADYEN_API_KEY=API_KEY, ADYEN_HMAC_KEY=HMAC_KEY,
                   ADYEN_MERCHANT_ACCOUNT=MERCHANT, ADYEN_BASE_URL=self.base)
        doc = {"flow": flow, "payment": payment, "in": inp}
        r = subprocess.run([DRIVE, "request"], input=json.dumps(doc), capture_output=True, text=True,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        req = json.loads(r.stdout)
        self.assertEqual(req["rc"], 0, req)
        status, body = http(req["method"], req["url"], req["body"].encode(), req["headers"])
        doc["response"] = {"status": status, "body": body}
        r = subprocess.run([DRIVE, "response"], input=json.dumps(doc), capture_output=True,
                           text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout), req, json.loads(body)

    def payment(self, amount=1050, currency="EUR", psp=None):
        type(self).n += 1
        return {"id": "pay_adyen_%d_%d" % (os.getpid(), self.n), "amount": amount,
                "currency": currency, "reference": "order-%d" % self.n, "provider_reference_id": psp}

    def authorize(self, capture=True, token=None, **p):
        pay = self.payment(**p)
        card = token or json.dumps({"type": "scheme", "encryptedCardNumber": "test_4111111111111111",
                                    "encryptedExpiryMonth": "test_03",
                                    "encryptedExpiryYear": "test_2030",
                                    "encryptedSecurityCode": "test_737", "holderName": "J Smith"})
        res, req, answer = self.drive("authorize", pay, operation_id=pay["id"], capture=capture,
                                      return_url="https://merchant.test/back", token=card)
        pay["provider_reference_id"] = res.get("provider_reference_id")
        return pay, res, answer

    def items(self, psp):
        """Webhook items received so far that name psp."""
        out = []
        for raw in list(self.recv.bodies):
            for it in json.loads(raw)["notificationItems"]:
                i = it["NotificationRequestItem"]
                if psp in (i.get("pspReference"), i.get("originalReference")):
                    out.append(i)
        return out

    # ---- the simulator's honesty ----
    def test_simulator_refuses_what_adyen_refuses(self):
        good = {"merchantAccount": MERCHANT, "amount": {"value": 100, "currency": "EUR"},
                "reference": "r1", "returnUrl": "https://m.test",
                "paymentMethod": {"type": "scheme", "encryptedCardNumber": "test_4111111111111111"}}
        h = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
        status, body = http("POST", self.base + "/payments", good, {"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)["errorType"]), (401, "security"))
        status, body = http("POST", self.base + "/payments", good, dict(h, **{"X-API-Key": "wrong"}))
        self.assertEqual(status, 401)
        status, body = http("POST", self.base + "/payments", good,
                            {"X-API-Key": API_KEY, "Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, body = http("POST", self.base + "/payments", b"{nope", h)
        self.assertEqual(status, 400)
        for field in ("amount", "reference", "paymentMethod", "returnUrl", "merchantAccount"):
            b = dict(good)
            del b[field]
            status, body = http("POST", self.base + "/payments", b, h)
            self.assertEqual(status, 422, field)
            self.assertIn(field, json.loads(body)["message"])
        # Idempotency: a replay gets the first answer, another body 704.
        k = dict(h, **{"Idempotency-Key": "idem-%d" % os.getpid()})
        s1, b1 = http("POST", self.base + "/payments", good, k)
        s2, b2 = http("POST", self.base + "/payments", good, k)
        self.assertEqual((s1, b1), (s2, b2))
        s3, b3 = http("POST", self.base + "/payments", dict(good, reference="r2"), k)
        self.assertEqual((s3, json.loads(b3)["errorCode"]), (422, "704"))

    # ---- every flow, through the plugin ----
    def test_authorize_auto_capture_succeeds_and_webhook_verifies(self):
        pay, res, answer = self.authorize(capture=True)
        self.assertEqual(answer["resultCode"], "Authorised")
        self.assertEqual(res["state"], "succeeded")
        items = wait(lambda: self.items(pay["provider_reference_id"]))
        self.assertEqual(items[0]["eventCode"], "AUTHORISATION")
        raw = next(b for b in self.recv.bodies if pay["provider_reference_id"].encode() in b)
        out = webhook_verify(raw)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("signature: valid", out.stdout)
        self.assertIn("[accepted]", out.stdout)
        self.assertIn("state=SUCCEEDED", out.stdout)

    def test_authorize_refusals_3ds_and_stored_token(self):
        for holder, reason in (("DECLINED", "Refused"), ("CARD_EXPIRED", "Expired Card")):
            card = json.dumps({"type": "scheme", "encryptedCardNumber": "test_4111111111111111",
                               "holderName": holder})
            _, res, _ = self.authorize(token=card)
            self.assertEqual((res["state"], res["error_code"], res["error_message"]),
                             ("failed", "refused", reason))
        _, res, _ = self.authorize(token=json.dumps({"type": "scheme", "encryptedCardNumber":
                                                     "test_4111111111111111", "holderName": "ERROR"}))
        self.assertEqual(res["state"], "pending")  # Error: the AUTHORISATION webhook settles it
        _, res, _ = self.authorize(token=json.dumps({"type": "scheme", "encryptedCardNumber":
                                                     "test_4212345678910006"}))
        self.assertEqual(res["state"], "requires_action")
        self.assertTrue(res["redirect_url"].startswith(self.sim_url + "/threeDS2/"))
        _, res, _ = self.authorize(token="stored_visa_1")
        self.assertEqual(res["state"], "succeeded")

    def test_currency_exponent_reaches_adyen(self):
        pay, res, _ = self.authorize(amount=1000, currency="CLP")
        self.assertEqual(res["state"], "succeeded")
        status, body = http("GET", self.sim_url + "/_sim/payments/" + pay["provider_reference_id"])
        self.assertEqual(json.loads(body)["amount"], {"value": 100000, "currency": "CLP"})

    def test_manual_capture_partial_captures_and_cancel(self):
        pay, res, _ = self.authorize(capture=False)
        self.assertEqual(res["state"], "requires_capture")
        r1, req, answer = self.drive("capture", pay, operation_id="cap_1_" + pay["id"], amount=400)
        self.assertEqual((answer["status"], r1["state"]), ("received", "pending"))
        self.assertEqual(req["headers"]["Idempotency-Key"], "cap_1_" + pay["id"])
        r2, _, _ = self.drive("capture", pay, operation_id="cap_2_" + pay["id"], amount=650)
        self.assertEqual(r2["state"], "pending")
        r3, _, _ = self.drive("capture", pay, operation_id="cap_3_" + pay["id"], amount=1)
        self.assertEqual(r3["state"], "pending")  # accepted; CAPTURE success false follows
        caps = wait(lambda: [i for i in self.items(pay["provider_reference_id"])
                             if i["eventCode"] == "CAPTURE"] if len(
            [i for i in self.items(pay["provider_reference_id"]) if i["eventCode"] == "CAPTURE"]) == 3
            else None)
        self.assertEqual(sorted(i["success"] for i in caps), ["false", "true", "true"])
        # Cancel after capture: Adyen answers received, then CANCELLATION false.
        rc, _, _ = self.drive("void", pay, operation_id="void_" + pay["id"])
        self.assertEqual(rc["state"], "pending")
        pay2, _, _ = self.authorize(capture=False)
        rc, _, _ = self.drive("void", pay2, operation_id="void_" + pay2["id"])
        self.assertEqual(rc["state"], "pending")
        canc = wait(lambda: [i for i in self.items(pay2["provider_reference_id"])
                             if i["eventCode"] == "CANCELLATION"])
        self.assertEqual(canc[0]["success"], "true")
        for raw in list(self.recv.bodies):
            if pay2["provider_reference_id"].encode() in raw and b"CANCELLATION" in raw:
                out = webhook_verify(raw)
                self.assertIn("signature: valid", out.stdout)
                self.assertIn("state=CANCELED", out.stdout)

    def test_several_partial_refunds_and_one_too_many(self):
        pay, res, _ = self.authorize(capture=True)
        refs = []
        for k, amount in enumerate((300, 500, 400)):
            rid = "ref_%d_%s" % (k, pay["id"])
            r, req, _ = self.drive("refund", pay, operation_id=rid, refund_id=rid, amount=amount,
                                   reason="requested_by_customer")
            self.assertEqual(r["state"], "pending")
            self.assertTrue(r["provider_reference_id"])
            refs.append(r["provider_reference_id"])
        items = wait(lambda: (lambda l: l if len(l) == 3 else None)(
            [i for i in self.items(pay["provider_reference_id"]) if i["eventCode"] == "REFUND"]))
        by = {i["pspReference"]: i["success"] for i in items}
        self.assertEqual([by[r] for r in refs], ["true", "true", "false"])  # 1200 > 1050
        raw = next(b for b in self.recv.bodies if refs[2].encode() in b)
        out = webhook_verify(raw)
        self.assertIn("signature: valid", out.stdout)
        self.assertIn("state=FAILED", out.stdout)

    def test_syncs_are_not_flows(self):
        out = subprocess.run([PAGOFLEX, "plugin", "check", PLUGIN] + creds_args()
                             + ["--credential", "ADYEN_RETURN_URL=https://m.test/r"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("4 declared flow(s)", out.stdout)
        self.assertNotIn(HMAC_KEY, out.stdout + out.stderr)
        self.assertNotIn(API_KEY, out.stdout + out.stderr)

    def test_batches_are_verified_whole_and_retried_without_accepted(self):
        # Several captures close together arrive in one POST.
        pay, _, _ = self.authorize(capture=False)
        for k in range(3):
            self.drive("capture", pay, operation_id="bc_%d_%s" % (k, pay["id"]), amount=100)
        wait(lambda: len([i for i in self.items(pay["provider_reference_id"])
                          if i["eventCode"] == "CAPTURE"]) == 3)
        sizes = [len(json.loads(b)["notificationItems"]) for b in self.recv.bodies
                 if pay["provider_reference_id"].encode() in b and b"CAPTURE" in b]
        self.assertGreater(max(sizes), 1, sizes)
        batch = next(b for b in self.recv.bodies if pay["provider_reference_id"].encode() in b
                     and len(json.loads(b)["notificationItems"]) > 1)
        self.assertEqual(webhook_verify(batch).returncode, 0)
        doc = json.loads(batch)
        doc["notificationItems"][-1]["NotificationRequestItem"]["amount"]["value"] += 1
        out = webhook_verify(json.dumps(doc))
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("INVALID", out.stdout)
        # An endpoint that does not answer [accepted] gets the delivery again.
        bad = Receiver(answer=b'{"ok":true}')
        try:
            http("POST", self.sim_url + "/_sim/config", {"webhook_url": bad.url})
            self.authorize()
            self.assertTrue(wait(lambda: len(bad.bodies) >= 2))
            self.assertEqual(bad.bodies[0], bad.bodies[1])
        finally:
            http("POST", self.sim_url + "/_sim/config", {"webhook_url": self.recv.url})
            bad.close()


NODE_JS = r"""
// node adyen.js sign KEY ITEM_JSON  -> a notification body signed by the library
// node adyen.js verify KEY BODY_FILE -> "valid" for each item, or exit 1
const { hmacValidator } = require("@adyen/api-library");
const fs = require("fs");
const v = new hmacValidator();
const [cmd, key, arg] = process.argv.slice(2);
if (cmd === "sign") {
  const item = JSON.parse(arg);
  item.additionalData = Object.assign(item.additionalData || {}, {
    hmacSignature: v.calculateHmac(item, key) });
  process.stdout.write(JSON.stringify({ live: "false",
    notificationItems: [{ NotificationRequestItem: item }] }));
} else {
  const body = JSON.parse(fs.readFileSync(arg, "utf8"));
  for (const it of body.notificationItems) {
    if (!v.validateHMAC(it.NotificationRequestItem, key)) { console.log("invalid"); process.exit(1); }
  }
  console.log("valid");
}
"""


class OfficialLibrary(unittest.TestCase):
    """Signatures checked against Adyen's own Node library."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="adyen-npm-")
        if not shutil.which("npm") or not shutil.which("node"):
            raise unittest.SkipTest("node/npm not installed")
        r = subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                            cls.tmp, NPM_PKG], capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise unittest.SkipTest("npm could not install %s: %s" % (NPM_PKG, r.stderr[-300:]))
        with open(os.path.join(cls.tmp, "adyen.js"), "w") as f:
            f.write(NODE_JS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def node(self, *args):
        return subprocess.run(["node", os.path.join(self.tmp, "adyen.js")] + list(args),
                              capture_output=True, text=True,
                              env=dict(os.environ, NODE_PATH=os.path.join(self.tmp, "node_modules")))

    def signed_by_library(self, **item):
        r = self.node("sign", HMAC_KEY, json.dumps(item))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_library_signed_items_verify_and_tampered_do_not(self):
        body = self.signed_by_library(
            pspReference="7914073381342284", originalReference="", merchantAccountCode=MERCHANT,
            merchantReference="pay_npm_1", amount={"value": 1130, "currency": "EUR"},
            eventCode="AUTHORISATION", success="false", reason="Refused")
        out = webhook_verify(body)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("signature: valid", out.stdout)
        self.assertIn("state=FAILED", out.stdout)
        # A refund with a colon in the reason and no originalReference field at all.
        body = self.signed_by_library(
            pspReference="RF00000000000009", originalReference="7914073381342284",
            merchantAccountCode=MERCHANT, merchantReference="ref_npm_1",
            amount={"value": 500, "currency": "EUR"}, eventCode="REFUND", success="true",
            reason="a:b")
        self.assertEqual(webhook_verify(body).returncode, 0)
        tampered = body.replace('"value":500', '"value":501')
        out = webhook_verify(tampered)
        self.assertIn("INVALID", out.stdout)

    def test_plugin_and_simulator_signatures_pass_the_library(self):
        env = dict(os.environ, ADYEN_API_KEY=API_KEY, ADYEN_HMAC_KEY=HMAC_KEY,
                   ADYEN_MERCHANT_ACCOUNT=MERCHANT)
        for ev in ({"event_id": "CAP9", "kind": "payment", "payment_id": "pay_1", "tx_id": "P9",
                    "state": "succeeded", "amount": 700},
                   {"event_id": "RF9", "kind": "refund", "refund_id": "ref_9", "tx_id": "P9",
                    "state": "failed", "amount": 100}):
            r = subprocess.run([DRIVE, "sample"], input=json.dumps({"event": ev}),
                               capture_output=True, text=True, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            path = os.path.join(self.tmp, "sample.json")
            with open(path, "w") as f:
                f.write(r.stdout)
            out = self.node("verify", HMAC_KEY, path)
            self.assertEqual(out.stdout.strip(), "valid", out.stderr)
            out = self.node("verify", os.urandom(32).hex(), path)
            self.assertEqual(out.returncode, 1)
        # The simulator's deliveries too.
        recv = Receiver()
        sim, url = start_sim(self.tmp, recv.url)
        try:
            body = {"merchantAccount": MERCHANT, "amount": {"value": 100, "currency": "EUR"},
                    "reference": "r_npm", "returnUrl": "https://m.test",
                    "paymentMethod": {"type": "scheme", "encryptedCardNumber": "test_4111111111111111"}}
            http("POST", url + "/v71/payments", body,
                 {"X-API-Key": API_KEY, "Content-Type": "application/json"})
            self.assertTrue(wait(lambda: recv.bodies))
            path = os.path.join(self.tmp, "sim.json")
            with open(path, "wb") as f:
                f.write(recv.bodies[0])
            self.assertEqual(self.node("verify", HMAC_KEY, path).stdout.strip(), "valid")
        finally:
            sim.terminate()
            sim.wait(5)
            recv.close()

    @unittest.skipUnless(os.environ.get("PAGOFLEX_PG") and harness, "PAGOFLEX_PG not set")
    def test_through_a_running_host(self):
        """A create through the host's API, settled by the simulator's signed
        AUTHORISATION webhook; a second one settled by a library-signed item."""
        env = harness.Env(plugins=(), start_host=False)
        sim = None
        try:
            sim, sim_url = start_sim(env.dir)
            shutil.copy(PLUGIN, os.path.join(env.plugin_dir, "adyen.so"))
            creds = {"ADYEN_API_KEY": API_KEY, "ADYEN_HMAC_KEY": HMAC_KEY,
                     "ADYEN_MERCHANT_ACCOUNT": MERCHANT, "ADYEN_BASE_URL": sim_url + "/v71",
                     "ADYEN_RETURN_URL": "https://merchant.test/back"}
            env.cli(["secrets", "encrypt", "--plugin", "adyen", "--key-file", env.key_file, "--out",
                     os.path.join(env.cred_dir, "adyen.cfg.enc")],
                    input="".join('%s = "%s";\n' % kv for kv in creds.items()))
            env.write_config()
            env.start_host()
            http("POST", sim_url + "/_sim/config", {"webhook_url": env.url + "/webhooks/adyen",
                                                    "received": True})
            # The stored card id is the payment method token (a 1.2 host passes it).
            r = env.pay(amount=1050, currency="EUR", connector="ADYEN", reference="stored_card_1",
                        payment_method={"type": "card_token", "token": "stored_card_1"})
            self.assertIn(r.status, (200, 201, 202), r)
            pid = r.json["id"]
            # Received: the webhook tells, and may overtake this answer.
            self.assertIn(r.json["status"], ("pending", "succeeded"), r)
            self.assertEqual(env.wait_status(pid, ("succeeded",), timeout=15).json["status"],
                             "succeeded")
            # Second payment: the simulator's webhooks off, the library signs.
            http("POST", sim_url + "/_sim/config", {"webhooks": False})
            r = env.pay(amount=2000, currency="EUR", connector="ADYEN", reference="stored_card_2",
                        payment_method={"type": "card_token", "token": "stored_card_2"})
            pid2 = r.json["id"]
            p2 = env.wait_status(pid2, ("pending",), timeout=10).json
            psp = p2.get("provider_reference_id") or p2.get("tx_id")
            body = self.signed_by_library(
                pspReference=psp or "UNKNOWNPSP000001", merchantAccountCode=MERCHANT,
                merchantReference=pid2, amount={"value": 2000, "currency": "EUR"},
                eventCode="AUTHORISATION", success="true",
                additionalData={"metadata.pagoflexCapture": "auto"})
            status, _ = http("POST", env.url + "/webhooks/adyen", body.encode(),
                             {"Content-Type": "application/json"})
            self.assertEqual(status, 200)
            self.assertEqual(env.wait_status(pid2, ("succeeded",)).json["status"], "succeeded")
            forged = body.replace('"value":2000', '"value":2001')
            status, _ = http("POST", env.url + "/webhooks/adyen", forged.encode(),
                             {"Content-Type": "application/json"})
            self.assertEqual(status, 401)
        finally:
            if sim:
                sim.terminate()
                sim.wait(5)
            env.close()


@unittest.skipUnless(os.environ.get("PAGOFLEX_PG") and harness, "PAGOFLEX_PG not set")
class HostFlows(unittest.TestCase):
    """Every flow through the host's API (ABI 1.2): pagoflexd -> FaultProxy ->
    adyensim, ADYEN_BASE_URL and ADYEN_MERCHANT_ACCOUNT as connector_settings;
    the simulator's batched, signed notifications straight to the host, which
    must answer [accepted]. Captures, cancels and refunds are asynchronous:
    202/pending, then the CAPTURE/CANCELLATION/REFUND item settles them."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, HERE)
        import psphost
        cls.h = psphost.HostEnv("adyen", PLUGIN, {"ADYEN_API_KEY": API_KEY, "ADYEN_HMAC_KEY": HMAC_KEY})
        cls.sim, cls.sim_url = start_sim(cls.h.env.dir, cls.h.webhook_url)
        cls.proxy = psphost.FaultProxy(cls.sim_url)
        cls.h.start({"ADYEN_BASE_URL": cls.proxy.url + "/v71", "ADYEN_MERCHANT_ACCOUNT": MERCHANT,
                     "ADYEN_RETURN_URL": "https://merchant.test/back"})
        cls.env = cls.h.env

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.sim.terminate()
        cls.sim.wait(5)
        cls.h.close()

    def pay(self, token="tok_stored_visa", amount=1000, **fields):
        fields["payment_method"] = {"type": "card_token", "token": token}
        return self.env.pay(amount=amount, currency="EUR", connector="ADYEN", **fields)

    def sim_payment(self, pid):
        ref = self.env.get(pid).json["provider_reference_id"]
        return json.loads(http("GET", self.sim_url + "/_sim/payments/" + ref)[1])

    def deliveries(self):
        return json.loads(http("GET", self.sim_url + "/_sim/deliveries")[1])

    def captured(self, amount=1000):
        r = self.pay(amount=amount)
        self.assertEqual((r.status, r.json["status"]), (201, "succeeded"), r)
        return r.json["id"]

    def test_connectors_lists_flows(self):
        c = self.env.connectors()["ADYEN"]
        self.assertEqual((c["abi_version"], sorted(c["flows"])),
                         ("1.2", ["authorize", "capture", "refund", "void"]))

    def test_automatic_capture_settled_by_webhook_answered_accepted(self):
        http("POST", self.sim_url + "/_sim/config", {"received": True})
        try:
            r = self.pay()
        finally:
            http("POST", self.sim_url + "/_sim/config", {"received": False})
        # The PSP's webhook may overtake this answer: pending, or already settled.
        self.assertEqual(r.status, 201, r)
        self.assertIn(r.json["status"], ("pending", "succeeded"), r)
        p = self.env.wait_status(r.json["id"], ("succeeded",)).json
        self.assertEqual(p["amount_received"], 1000)
        self.assertIn(("succeeded", "webhook"), self.h.history(p["id"]))
        d = wait(lambda: [x for x in self.deliveries() if r.json["id"] in x["body"]])
        self.assertTrue(d)
        self.assertTrue(all(x["answer"] == "[accepted]" and x["attempt"] == 1 for x in self.deliveries()),
                        self.deliveries())

    def test_manual_then_partial_capture(self):
        r = self.pay(capture_method="manual")
        self.assertEqual((r.status, r.json["status"]), (201, "requires_capture"), r)
        pid = r.json["id"]
        c = self.h.post("/v1/payments/%s/capture" % pid, {"amount_to_capture": 600})
        # The capture's webhook may overtake this answer: still in flight, or already captured.
        self.assertEqual(c.status, 202, c)
        self.assertTrue(c.json.get("pending_operation") == "capture" or c.json["status"] == "succeeded", c)
        p = self.env.wait_status(pid, ("succeeded",)).json
        self.assertEqual(p["amount_received"], 600)
        self.assertEqual(self.sim_payment(pid)["captured"], 600)

    def test_cancel_authorization(self):
        pid = self.pay(capture_method="manual").json["id"]
        c = self.h.post("/v1/payments/%s/cancel" % pid)
        self.assertEqual(c.status, 202, c)
        self.assertEqual(self.env.wait_status(pid, ("canceled",)).json["amount_capturable"], 0)
        self.assertEqual(self.sim_payment(pid)["state"], "cancelled")

    def test_partial_refunds_settled_by_refund_items_then_one_too_many(self):
        pid = self.captured()
        a = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 300})
        b = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 600})
        # Adyen's REFUND item may overtake the host's answer (the simulator
        # sends it at once), so an answer may already say succeeded.
        self.assertEqual((a.status, b.status), (201, 201), (a, b))
        self.assertIn(a.json["status"], ("pending", "succeeded"), a)
        self.assertIn(b.json["status"], ("pending", "succeeded"), b)
        sent = len(self.proxy.seen)
        too = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 101})
        self.assertEqual((too.status, too.json["error"]["field"]), (422, "amount"), too)
        self.assertEqual(len(self.proxy.seen), sent)  # refused before Adyen
        for f in (a, b):
            got = self.h.wait_refund(f.json["id"], ("succeeded",))
            self.assertEqual(got["status"], "succeeded", got)
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 900)
        self.assertEqual(self.sim_payment(pid)["refunded"], 900)

    def test_redirect_shopper_shows_next_action(self):
        tok = json.dumps({"type": "scheme", "encryptedCardNumber": "test_4212345678910006"},
                         separators=(",", ":"))
        r = self.pay(token=tok, return_url="https://shop.example/back")
        self.assertEqual((r.status, r.json["status"]), (201, "requires_action"), r)
        nxt = r.json["next_action"]
        self.assertEqual(nxt["type"], "redirect_to_url")
        self.assertIn("/threeDS2/" + r.json["provider_reference_id"], nxt["redirect_to_url"]["url"])

    def test_503_after_adyen_took_it_is_never_failed(self):
        self.proxy.fail(1, "after", "/v71/payments")
        r = self.pay()
        self.assertEqual(r.status, 201, r)
        # Never failed: unknown, or already settled by a webhook that overtook this answer.
        self.assertIn(r.json["status"], ("processing", "pending", "succeeded"), r)
        pid = r.json["id"]
        # No sync flow at Adyen: the AUTHORISATION item (merchantReference) settles it.
        self.assertEqual(self.env.wait_status(pid, ("succeeded",), timeout=15).json["amount_received"], 1000)
        self.assertNotIn("failed", [t for t, _ in self.h.history(pid)])
        self.proxy.fail(1, "after", "/refunds")
        f = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 250})
        # The PSP's webhook may overtake this answer: pending, or already settled.
        self.assertEqual(f.status, 201, f)
        self.assertIn(f.json["status"], ("pending", "succeeded"), f)
        self.assertEqual(self.h.wait_refund(f.json["id"], ("succeeded",))["status"], "succeeded")

    def test_duplicate_delivery_changes_nothing(self):
        pid = self.captured()
        body = wait(lambda: [x["body"] for x in self.deliveries() if pid in x["body"]])[0]
        before = (self.h.history(pid), self.env.get(pid).json["updated_at"])
        for _ in range(2):
            st, answer = http("POST", self.h.webhook_url, body.encode(), {"Content-Type": "application/json"})
            self.assertEqual((st, answer), (200, "[accepted]"))
        self.assertEqual((self.h.history(pid), self.env.get(pid).json["updated_at"]), before)
        self.assertEqual([t for t, _ in before[0]].count("succeeded"), 1)

    def test_concurrent_refunds_never_exceed(self):
        pid = self.captured()
        out = self.h.concurrent_refunds(pid, 300, 8)
        self.assertEqual(sorted(r.status for r in out), [201] * 3 + [422] * 5, out)
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 900)
        self.assertEqual(wait(lambda: self.sim_payment(pid)["refunded"] == 900), True)


if __name__ == "__main__":
    unittest.main()
