#!/usr/bin/env python3
"""The Stripe connector (build/psp/stripe.so) against tests/psp/stripesim.py
and against Stripe's own webhook code (npm `stripe`, pinned below):

  - SimulatorTest: the simulator refuses what Stripe refuses.
  - FlowTest: every flow of the plugin, driven by stripe_flow (the plugin's
    request/response halves with the test kit as host) over real HTTP to
    the simulator; webhooks the simulator sends, checked by
    `pagoflex webhook verify`; `pagoflex plugin check`.
  - NpmInteropTest: headers made by stripe.webhooks.generateTestHeaderString
    verify with `pagoflex webhook verify`; headers our webhook_sample makes
    pass stripe.webhooks.constructEvent.
  - HostTest: pagoflexd with the plugin: a create, then the simulator's
    signed webhook (and one signed by the npm library) settles it.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402

BUILD = harness.BUILD
PSP = os.environ.get("PAGOFLEX_PSP_DIR") or os.path.join(BUILD, "psp")
PLUGIN = os.path.join(PSP, "stripe.so")
DRIVER = os.path.join(PSP, "stripe-build", "stripe_flow")
CLI = os.path.join(BUILD, "host", "pagoflex")
NPM_PKG = "stripe@23.1.0"
KEY = harness.record_secret("sk_test_" + uuid.uuid4().hex)
WHSEC = harness.record_secret("whsec_" + uuid.uuid4().hex)
OLD_WHSEC = harness.record_secret("whsec_" + uuid.uuid4().hex)


def http(method, url, body=None, headers=None):
    """(status, parsed JSON or raw bytes, headers) of one request."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    # A host's answer is held to the API reference (issue 14).
    harness.check_exchange(method, url, data, dict(req.header_items()), status, raw, dict(hdrs))
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw, hdrs


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Receiver:
    """A loopback webhook endpoint that keeps what it is sent."""

    def __init__(self):
        got = self.got = []

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got.append((self.headers.get("Stripe-Signature"), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, type_, pi=None, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for sig, body in list(self.got):
                ev = json.loads(body)
                if ev["type"] == type_ and (pi is None or ev["data"]["object"].get("id") == pi
                                            or ev["data"]["object"].get("payment_intent") == pi):
                    return sig, body
            time.sleep(0.02)
        raise AssertionError("no %s webhook for %s" % (type_, pi))

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Sim:
    def __init__(self, webhook_url="", old_secret=None):
        self.dir = tempfile.mkdtemp(prefix="stripesim-")
        pf = os.path.join(self.dir, "port")
        env = dict(os.environ, STRIPE_SECRET_KEY=KEY, STRIPE_WEBHOOK_SECRET=WHSEC)
        if old_secret:
            env["STRIPE_WEBHOOK_SECRET_OLD"] = old_secret
        self.log = open(os.path.join(self.dir, "sim.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "stripesim.py"), "--port", "0",
                                      "--port-file", pf, "--webhook-url", webhook_url],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % harness.wait_for_file(pf, self.proc)

    def call(self, method, path, form=None, key=KEY, ctype="application/x-www-form-urlencoded",
             idem=None):
        h = {"Authorization": "Bearer " + key} if key else {}
        body = None
        if form is not None:
            body = form if isinstance(form, str) else urllib.parse.urlencode(form)
            h["Content-Type"] = ctype
        if idem:
            h["Idempotency-Key"] = idem
        return http(method, self.url + path, body, h)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


import urllib.parse  # noqa: E402


def flow(sim, half, name, **args):
    """Run one half of one flow through stripe_flow; its JSON."""
    env = dict(os.environ, STRIPE_SECRET_KEY=KEY, STRIPE_WEBHOOK_SECRET=WHSEC,
               STRIPE_BASE_URL=sim.url)
    argv = [DRIVER, half, name] + ["%s=%s" % kv for kv in args.items()]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=10)
    return json.loads(r.stdout)


def run_flow(sim, name, **args):
    """The plugin describes the call, we send it over HTTP to the simulator,
    the plugin maps the answer: (result, the request it made)."""
    req = flow(sim, "request", name, **args)
    if "rc" in req:
        return req, None
    status, body, _ = http(req["method"], req["url"], req["body"] or None, req["headers"])
    path = os.path.join(sim.dir, "answer")
    with open(path, "wb") as f:
        f.write(body if isinstance(body, bytes) else json.dumps(body).encode())
    return flow(sim, "response", name, status=status, body=path, **args), req


def verify(header, body, now, secret=WHSEC):
    """`pagoflex webhook verify` of one delivery: (exit code, output)."""
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write(body)
    try:
        r = subprocess.run([CLI, "webhook", "verify", "--plugin", PLUGIN,
                            "--credential", "STRIPE_SECRET_KEY=" + KEY,
                            "--credential", "STRIPE_WEBHOOK_SECRET=" + secret,
                            "--now", str(now), "--header", "Stripe-Signature: " + header,
                            "--body-file", f.name], capture_output=True, text=True, timeout=20)
    finally:
        os.unlink(f.name)
    return r.returncode, r.stdout + r.stderr


class SimulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()

    def test_refuses_what_stripe_refuses(self):
        s = self.sim
        form = {"amount": "1050", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
        st, body, _ = s.call("POST", "/v1/payment_intents", form, key=None)
        self.assertEqual(st, 401)
        st, body, _ = s.call("POST", "/v1/payment_intents", form, key="sk_test_wrong")
        self.assertEqual((st, body["error"]["type"]), (401, "invalid_request_error"))
        st, body, _ = s.call("POST", "/v1/payment_intents", json.dumps(form), ctype="application/json")
        self.assertEqual(st, 400)
        st, body, _ = s.call("POST", "/v1/payment_intents", {"currency": "usd"})
        self.assertEqual((st, body["error"]["code"], body["error"]["param"]),
                         (400, "parameter_missing", "amount"))
        st, body, _ = s.call("POST", "/v1/payment_intents", dict(form, colour="red"))
        self.assertEqual(body["error"]["code"], "parameter_unknown")
        st, body, _ = s.call("POST", "/v1/payment_intents", dict(form, currency="isk", amount="550"))
        self.assertEqual(body["error"]["code"], "invalid_charge_amount_no_decimal_compatible")
        st, body, _ = s.call("POST", "/v1/payment_intents", dict(form, currency="kwd", amount="5124"))
        self.assertEqual(st, 400)
        st, body, _ = s.call("POST", "/v1/payment_intents", dict(form, payment_method="pm_nope"))
        self.assertEqual(body["error"]["code"], "resource_missing")
        st, body, _ = s.call("GET", "/v1/payment_intents/pi_nope")
        self.assertEqual((st, body["error"]["code"]), (404, "resource_missing"))

    def test_idempotency(self):
        s = self.sim
        form = {"amount": "1050", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
        st1, a, _ = s.call("POST", "/v1/payment_intents", form, idem="k-" + uuid.uuid4().hex)
        key = "k-" + uuid.uuid4().hex
        st1, a, _ = s.call("POST", "/v1/payment_intents", form, idem=key)
        st2, b, h = s.call("POST", "/v1/payment_intents", form, idem=key)
        self.assertEqual((st1, st2, a["id"]), (200, 200, b["id"]))
        self.assertEqual(h.get("Idempotent-Replayed"), "true")
        st3, c, _ = s.call("POST", "/v1/payment_intents", dict(form, amount="2000"), idem=key)
        self.assertEqual((st3, c["error"]["type"]), (400, "idempotency_error"))

    def test_declines_and_capture_rules(self):
        s = self.sim
        st, body, _ = s.call("POST", "/v1/payment_intents", {
            "amount": "1050", "currency": "usd", "confirm": "true",
            "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds"})
        self.assertEqual((st, body["error"]["type"], body["error"]["decline_code"]),
                         (402, "card_error", "insufficient_funds"))
        self.assertEqual(body["error"]["payment_intent"]["status"], "requires_payment_method")
        st, pi, _ = s.call("POST", "/v1/payment_intents", {
            "amount": "1050", "currency": "usd", "confirm": "true", "capture_method": "manual",
            "payment_method": "pm_card_visa"})
        self.assertEqual(pi["status"], "requires_capture")
        st, body, _ = s.call("POST", "/v1/payment_intents/%s/capture" % pi["id"], {"amount_to_capture": "2000"})
        self.assertEqual(body["error"]["code"], "amount_too_large")
        st, body, _ = s.call("POST", "/v1/refunds", {"payment_intent": pi["id"]})
        self.assertEqual(st, 400)  # nothing captured to refund


class FlowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rx = Receiver()
        cls.sim = Sim(cls.rx.url, old_secret=OLD_WHSEC)

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()
        cls.rx.close()

    def pay(self, **args):
        pid = "pay_" + uuid.uuid4().hex[:16]
        res, req = run_flow(self.sim, "authorize", payment_id=pid, **args)
        return pid, res, req

    def assert_webhook(self, type_, pi, want_state):
        sig, body = self.rx.wait(type_, pi)
        self.assertEqual(sig.count("v1="), 2)  # the simulator is rolling its secret
        t = int(sig.split(",")[0][2:])
        rc, out = verify(sig, body, t)
        self.assertEqual(rc, 0, out)
        self.assertIn("state=" + want_state, out)
        rc, out = verify(sig, body, t + 301)
        self.assertNotEqual(rc, 0, "a delivery older than 300 s must be refused")
        return body

    def test_automatic_capture_and_refunds(self):
        pid, res, req = self.pay(token="pm_card_visa", amount=1050)
        self.assertEqual(res["state"], "succeeded", res)
        self.assertEqual(req["headers"]["Idempotency-Key"], pid)
        pi = res["provider_reference_id"]
        body = self.assert_webhook("payment_intent.succeeded", pi, "SUCCEEDED")
        self.assertEqual(json.loads(body)["data"]["object"]["metadata"]["pagoflex_payment_id"], pid)
        # Two partial refunds, then one too many.
        r1, _ = run_flow(self.sim, "refund", pi=pi, op="ref_a_" + pid, refund_id="ref_a_" + pid, op_amount=300)
        self.assertEqual((r1["state"], r1["amount"]), ("succeeded", 300), r1)
        r2, _ = run_flow(self.sim, "refund", pi=pi, op="ref_b_" + pid, refund_id="ref_b_" + pid, op_amount=750)
        self.assertEqual(r2["state"], "succeeded", r2)
        r3, _ = run_flow(self.sim, "refund", pi=pi, op="ref_c_" + pid, op_amount=100)
        self.assertEqual((r3["state"], r3["error_code"]), ("failed", "charge_already_refunded"), r3)
        # A retry of the first refund is the same refund (Idempotency-Key).
        again, _ = run_flow(self.sim, "refund", pi=pi, op="ref_a_" + pid, refund_id="ref_a_" + pid, op_amount=300)
        self.assertEqual(again["provider_reference_id"], r1["provider_reference_id"])
        rs, _ = run_flow(self.sim, "refund_sync", pi=pi, re=r2["provider_reference_id"])
        self.assertEqual((rs["state"], rs["amount"]), ("succeeded", 750), rs)
        self.assert_webhook("charge.refunded", pi, "SUCCEEDED")
        ps, _ = run_flow(self.sim, "payment_sync", pi=pi)
        self.assertEqual((ps["state"], ps["amount"]), ("succeeded", 1050))

    def test_manual_capture_partial_and_void(self):
        pid, res, _ = self.pay(token="pm_card_mastercard", capture=0, amount=2000)
        self.assertEqual(res["state"], "requires_capture", res)
        pi = res["provider_reference_id"]
        self.assert_webhook("payment_intent.amount_capturable_updated", pi, "REQUIRES_CAPTURE")
        cap, req = run_flow(self.sim, "capture", pi=pi, op="cap_" + pid, op_amount=1500)
        self.assertEqual((cap["state"], cap["amount"]), ("succeeded", 1500), cap)
        self.assertIn("amount_to_capture=1500", req["body"])
        again, _ = run_flow(self.sim, "capture", pi=pi, op="cap2_" + pid, op_amount=500)
        self.assertEqual((again["state"], again["error_code"]), ("failed", "payment_intent_unexpected_state"))
        # Void an authorization.
        pid, res, _ = self.pay(token="pm_card_visa", capture=0, amount=2000)
        pi = res["provider_reference_id"]
        v, _ = run_flow(self.sim, "void", pi=pi, op="void_" + pid)
        self.assertEqual(v["state"], "succeeded", v)
        self.assert_webhook("payment_intent.canceled", pi, "CANCELED")
        ps, _ = run_flow(self.sim, "payment_sync", pi=pi)
        self.assertEqual(ps["state"], "canceled")
        # A retry of the same void replays Stripe's answer (Idempotency-Key);
        # another cancel of a canceled intent is Stripe's definite no.
        v2, _ = run_flow(self.sim, "void", pi=pi, op="void_" + pid)
        self.assertEqual(v2["state"], "succeeded")
        v3, _ = run_flow(self.sim, "void", pi=pi, op="void3_" + pid)
        self.assertEqual((v3["state"], v3["error_code"]), ("failed", "payment_intent_unexpected_state"))

    def test_declines(self):
        for pm, code in [("pm_card_chargeDeclined", "generic_decline"),
                         ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
                         ("pm_card_chargeDeclinedExpiredCard", "expired_card")]:
            pid, res, _ = self.pay(token=pm)
            self.assertEqual((res["state"], res["error_code"]), ("failed", code), res)
            self.assert_webhook("payment_intent.payment_failed", res["provider_reference_id"], "FAILED")

    def test_three_d_secure(self):
        for pm, approve, want in [("pm_card_authenticationRequired", True, "succeeded"),
                                  ("pm_card_threeDSecure2Required", False, "failed")]:
            pid, res, _ = self.pay(token=pm)
            self.assertEqual(res["state"], "requires_action", res)
            url = res["redirect_url"]
            st, page, _ = http("GET", url)
            self.assertIn(b"approve", page)
            # The page answers 302 to the merchant's return_url: do not follow it.
            no_follow = urllib.request.build_opener(NoRedirect)
            try:
                no_follow.open(urllib.request.Request(
                    url + ("/approve" if approve else "/decline"), data=b"", method="POST"), timeout=10)
            except urllib.error.HTTPError as e:
                self.assertEqual(e.code, 302)
                self.assertTrue(e.headers["Location"].startswith("https://merchant.test/return"))
            ps, _ = run_flow(self.sim, "payment_sync", pi=res["provider_reference_id"])
            self.assertEqual(ps["state"], want, ps)

    def test_currencies_and_refusals(self):
        pid, res, req = self.pay(token="pm_card_visa", currency="JPY", amount=500)
        self.assertEqual(res["state"], "succeeded", res)
        self.assertIn("amount=500&currency=jpy", req["body"])
        pid, res, req = self.pay(token="pm_card_visa", currency="ISK", amount=5)
        self.assertEqual((res["state"], res["amount"]), ("succeeded", 5), res)
        self.assertIn("amount=500&", req["body"])  # 5 kr in Stripe's two-decimal unit
        res, req = run_flow(self.sim, "authorize", token="pm_card_visa", currency="KWD", amount=5124)
        self.assertEqual(res, {"rc": 2})  # PAGOFLEX_ERR_UNSUPPORTED: nothing sent
        ps = flow(self.sim, "response", "payment_sync", pi="pi_missing", status=404,
                  body=self.write('{"error":{"type":"invalid_request_error","code":"resource_missing"}}'))
        self.assertEqual(ps, {"rc": 8})
        res, _ = run_flow(self.sim, "payment_sync", pi="pi_doesnotexist")
        self.assertEqual(res, {"rc": 8})  # PAGOFLEX_ERR_NOT_FOUND, Stripe's own words
        t = flow(self.sim, "response", "authorize", token="pm_card_visa", transport="timeout")
        self.assertEqual(t["state"], "processing")

    def write(self, text):
        path = os.path.join(self.sim.dir, "canned")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_refund_that_fails_later(self):
        pid, res, _ = self.pay(token="pm_card_refundFail")
        pi = res["provider_reference_id"]
        r, _ = run_flow(self.sim, "refund", pi=pi, op="ref_" + pid, refund_id="ref_" + pid, op_amount=1050)
        self.assertEqual(r["state"], "pending", r)
        body = self.assert_webhook("refund.failed", pi, "FAILED")
        self.assertIn("ref_" + pid, body.decode())
        rs, _ = run_flow(self.sim, "refund_sync", pi=pi, re=r["provider_reference_id"])
        self.assertEqual((rs["state"], rs["error_code"]), ("failed", "expired_or_canceled_card"))

    def test_plugin_check(self):
        r = subprocess.run([CLI, "plugin", "check", PLUGIN, "--credential", "STRIPE_SECRET_KEY=" + KEY,
                            "--credential", "STRIPE_WEBHOOK_SECRET=" + WHSEC],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK: 0 check(s) failed", r.stdout)


class NpmInteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="stripe-npm-")
        try:
            subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                            cls.tmp, NPM_PKG], capture_output=True, timeout=120, check=True)
        except (OSError, subprocess.SubprocessError) as e:
            raise unittest.SkipTest("npm could not install %s: %s" % (NPM_PKG, e))
        cls.js = os.path.join(cls.tmp, "official.js")
        with open(cls.js, "w") as f:
            f.write("""
// node official.js sign SECRET TS BODY_FILE | verify SECRET NOW HEADER BODY_FILE
const Stripe = require("stripe");
const fs = require("fs");
const stripe = new Stripe("sk_test_unused");
const [cmd, secret, ts] = process.argv.slice(2, 5);
if (cmd === "sign") {
  const payload = fs.readFileSync(process.argv[5], "utf8");
  console.log(stripe.webhooks.generateTestHeaderString({payload, secret, timestamp: Number(ts)}));
} else {
  const payload = fs.readFileSync(process.argv[6], "utf8");
  try {
    const ev = stripe.webhooks.constructEvent(payload, process.argv[5], secret, 300, undefined,
                                              Number(ts) * 1000);
    console.log("valid " + ev.type);
  } catch (e) { console.log("refused: " + e.message.split("\\n")[0]); process.exit(1); }
}
""")

    def official(self, *args):
        r = subprocess.run(["node", self.js] + list(args), capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, NODE_PATH=os.path.join(self.tmp, "node_modules")))
        return r.returncode, r.stdout.strip()

    def test_official_header_verifies_with_pagoflex(self):
        now = int(time.time())
        body = json.dumps({"id": "evt_npm_1", "object": "event", "type": "payment_intent.succeeded",
                           "data": {"object": {"id": "pi_npm_1", "object": "payment_intent",
                                               "amount_received": 500, "currency": "jpy",
                                               "metadata": {"pagoflex_payment_id": "pay_npm_1"}}}},
                          indent=2).encode()
        path = os.path.join(self.tmp, "body.json")
        with open(path, "wb") as f:
            f.write(body)
        rc, header = self.official("sign", WHSEC, str(now), path)
        self.assertEqual(rc, 0)
        self.assertRegex(header, r"^t=\d+,v1=[0-9a-f]{64}$")
        rc, out = verify(header, body, now)
        self.assertEqual(rc, 0, out)
        self.assertIn("payment_id=pay_npm_1 tx_id=pi_npm_1", out)
        self.assertIn("state=SUCCEEDED amount=500", out)
        self.assertNotEqual(verify(header, body.replace(b"500", b"501"), now)[0], 0)
        self.assertNotEqual(verify(header, body, now, secret=OLD_WHSEC)[0], 0)
        self.assertNotEqual(verify(header, body, now + 301)[0], 0)
        rc2, old = self.official("sign", OLD_WHSEC, str(now), path)
        rotated = old + "," + header.split(",")[1]  # two v1, as during a roll
        self.assertEqual(verify(rotated, body, now)[0], 0)

    def test_our_sample_passes_construct_event(self):
        now = int(time.time())
        r = subprocess.run([DRIVER, "sample", str(now), "tx=pi_ours_1", "payment_id=pay_ours_1"],
                           capture_output=True, text=True, timeout=10,
                           env=dict(os.environ, STRIPE_WEBHOOK_SECRET=WHSEC))
        d = json.loads(r.stdout)
        path = os.path.join(self.tmp, "ours.json")
        with open(path, "w") as f:
            f.write(d["body"])
        self.assertEqual(self.official("verify", WHSEC, str(now), d["header"], path),
                         (0, "valid payment_intent.succeeded"))
        self.assertEqual(self.official("verify", OLD_WHSEC, str(now), d["header"], path)[0], 1)
        self.assertEqual(self.official("verify", WHSEC, str(now + 301), d["header"], path)[0], 1)
        with open(path, "a") as f:
            f.write(" ")
        self.assertEqual(self.official("verify", WHSEC, str(now), d["header"], path)[0], 1)


@unittest.skipUnless(harness.PG, "PAGOFLEX_PG is not set (ctest with the test cluster sets it)")
class HostTest(unittest.TestCase):
    """pagoflexd loads stripe.so; the host on this branch serves create and
    webhooks (1.0 entry points): a payment created through the API is
    settled by the simulator's signed webhook, and by one the npm library signs."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.Env(plugins=(), start_host=False)
        cls.sim = Sim(cls.env.url + "/webhooks/stripe")
        import shutil
        shutil.copy(PLUGIN, os.path.join(cls.env.plugin_dir, "stripe.so"))
        creds = {"STRIPE_SECRET_KEY": KEY, "STRIPE_WEBHOOK_SECRET": WHSEC,
                 "STRIPE_BASE_URL": cls.sim.url}  # the setting falls back to a credential
        cls.env.cli(["secrets", "encrypt", "--plugin", "stripe", "--key-file", cls.env.key_file,
                     "--out", os.path.join(cls.env.cred_dir, "stripe.cfg.enc")],
                    input="".join('%s = "%s";\n' % kv for kv in creds.items()))
        cls.env.start_host()

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()
        cls.env.close()

    def create(self):
        r = self.env.pay(amount=1050, currency="USD", connector="STRIPE")
        self.assertIn(r.status, (200, 201, 202), r)
        pid = r.json["id"]
        deadline = time.time() + 10
        while time.time() < deadline:
            p = self.env.get(pid).json
            if p.get("provider_reference_id"):
                return pid, p
            time.sleep(0.05)
        raise AssertionError("no PaymentIntent id for %s: %r" % (pid, p))

    def test_connector_listed(self):
        self.assertIn("STRIPE", self.env.connectors())

    def test_simulator_webhook_settles(self):
        pid, p = self.create()
        self.assertEqual(p["status"], "pending")
        pi = p["provider_reference_id"]
        st, obj, _ = self.sim.call("GET", "/v1/payment_intents/" + pi)
        self.assertEqual(obj["metadata"]["pagoflex_payment_id"], pid)
        # The customer confirms client-side (Stripe.js); Stripe's webhook tells the host.
        st, obj, _ = self.sim.call("POST", "/v1/payment_intents/%s/confirm" % pi,
                                   {"payment_method": "pm_card_visa"})
        self.assertEqual(obj["status"], "succeeded")
        self.env.wait_status(pid, ("succeeded",))

    def test_npm_signed_webhook_settles(self):
        interop = NpmInteropTest
        if not getattr(interop, "js", None):
            interop.setUpClass()
        pid, p = self.create()
        body = json.dumps({"id": "evt_" + uuid.uuid4().hex, "object": "event",
                           "type": "payment_intent.payment_failed",
                           "data": {"object": {"id": p["provider_reference_id"], "object": "payment_intent",
                                               "status": "requires_payment_method",
                                               "metadata": {"pagoflex_payment_id": pid},
                                               "last_payment_error": {"type": "card_error",
                                                                      "code": "card_declined",
                                                                      "decline_code": "lost_card"}}}})
        path = os.path.join(self.sim.dir, "npm.json")
        with open(path, "w") as f:
            f.write(body)
        rc, header = interop.official(interop, "sign", WHSEC, str(int(time.time())), path)
        self.assertEqual(rc, 0)
        st, _, _ = http("POST", self.env.url + "/webhooks/stripe", body,
                        {"Content-Type": "application/json", "Stripe-Signature": "t=%d,v1=%s" % (time.time(), "0" * 64)})
        self.assertEqual(st, 401)  # a forged header is refused
        st, _, _ = http("POST", self.env.url + "/webhooks/stripe", body,
                        {"Content-Type": "application/json", "Stripe-Signature": header})
        self.assertEqual(st, 200)
        r = self.env.wait_status(pid, ("failed",))
        self.assertEqual((r.json.get("error") or {}).get("code"), "lost_card")


@unittest.skipUnless(harness.PG, "PAGOFLEX_PG is not set (ctest with the test cluster sets it)")
class HostFlows(unittest.TestCase):
    """Every flow through the host's API (ABI 1.2): pagoflexd -> FaultProxy ->
    stripesim, STRIPE_BASE_URL as a connector_settings entry, the
    simulator's signed webhooks straight to the host."""

    @classmethod
    def setUpClass(cls):
        import psphost
        cls.h = psphost.HostEnv("stripe", PLUGIN, {"STRIPE_SECRET_KEY": KEY, "STRIPE_WEBHOOK_SECRET": WHSEC})
        cls.sim = Sim(cls.h.webhook_url)
        cls.proxy = psphost.FaultProxy(cls.sim.url)
        cls.h.start({"STRIPE_BASE_URL": cls.proxy.url})
        cls.env = cls.h.env

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.sim.close()
        cls.h.close()

    def pay(self, token="tok_visa", amount=1000, **fields):
        if token:
            fields["payment_method"] = {"type": "card_token", "token": token}
        return self.env.pay(amount=amount, currency="USD", connector="STRIPE", **fields)

    def intent(self, pid):
        ref = self.env.get(pid).json["provider_reference_id"]
        return self.sim.call("GET", "/v1/payment_intents/" + ref)[1]

    def intents_for(self, pid):
        evs = self.sim.call("GET", "/v1/events")[1]["data"]
        return {e["data"]["object"]["id"] for e in evs if e["data"]["object"].get("object") == "payment_intent"
                and e["data"]["object"]["metadata"].get("pagoflex_payment_id") == pid}

    def test_connectors_lists_flows(self):
        c = self.env.connectors()["STRIPE"]
        self.assertEqual(c["abi_version"], "1.2")
        for f in ("authorize", "capture", "void", "refund", "payment_sync", "refund_sync"):
            self.assertIn(f, c["flows"])

    def test_automatic_capture_settled_by_webhook(self):
        r = self.pay(token=None)
        self.assertEqual((r.status, r.json["status"]), (201, "pending"), r)
        pi = r.json["provider_reference_id"]
        self.sim.call("POST", "/v1/payment_intents/%s/confirm" % pi, {"payment_method": "pm_card_visa"})
        p = self.env.wait_status(r.json["id"], ("succeeded",)).json
        self.assertEqual(p["amount_received"], 1000)
        self.assertIn(("succeeded", "webhook"), self.h.history(p["id"]))

    def test_manual_then_partial_capture(self):
        r = self.pay(capture_method="manual")
        self.assertEqual((r.status, r.json["status"], r.json["amount_capturable"]), (201, "requires_capture", 1000), r)
        c = self.h.post("/v1/payments/%s/capture" % r.json["id"], {"amount_to_capture": 600})
        self.assertEqual((c.status, c.json["status"], c.json["amount_received"]), (200, "succeeded", 600), c)
        pi = self.intent(r.json["id"])
        self.assertEqual((pi["status"], pi["amount_received"]), ("succeeded", 600))

    def test_cancel_authorization(self):
        r = self.pay(capture_method="manual")
        c = self.h.post("/v1/payments/%s/cancel" % r.json["id"])
        self.assertEqual((c.status, c.json["status"]), (200, "canceled"), c)
        self.assertEqual(self.intent(r.json["id"])["status"], "canceled")

    def test_partial_refunds_then_one_too_many(self):
        pid = self.pay().json["id"]
        a = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 300})
        b = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 600})
        self.assertEqual((a.status, a.json["status"], b.status, b.json["status"]),
                         (201, "succeeded", 201, "succeeded"), (a, b))
        self.assertTrue(a.json["provider_reference_id"].startswith("re_"))
        sent = len(self.proxy.seen)
        too = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 101})
        self.assertEqual((too.status, too.json["error"]["field"]), (422, "amount"), too)
        self.assertEqual(len(self.proxy.seen), sent)  # refused before Stripe
        self.assertEqual(self.intent(pid)["refunded"], 900)
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 900)

    def test_refund_settled_by_webhook(self):
        # pm_card_refundFail: Stripe answers pending, then refund.failed.
        pid = self.pay(token="pm_card_refundFail").json["id"]
        f = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 400})
        # refund.failed may overtake this answer: pending, or already failed.
        self.assertEqual(f.status, 201, f)
        self.assertIn(f.json["status"], ("pending", "failed"), f)
        got = self.h.wait_refund(f.json["id"], ("failed",))
        self.assertEqual(got["status"], "failed", got)
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 0)
        self.assertEqual(self.env.sql("SELECT source FROM refund_history WHERE refund_id = '%s' "
                                      "AND to_state = 'failed'" % f.json["id"]), "webhook")

    def test_redirect_requires_action(self):
        r = self.pay(token="pm_card_authenticationRequired", return_url="https://shop.example/back")
        self.assertEqual((r.status, r.json["status"]), (201, "requires_action"), r)
        nxt = r.json["next_action"]
        self.assertEqual(nxt["type"], "redirect_to_url")
        self.assertTrue(nxt["redirect_to_url"]["url"].startswith(self.sim.url + "/3ds/"), nxt)
        try:
            urllib.request.build_opener(NoRedirect).open(urllib.request.Request(
                nxt["redirect_to_url"]["url"] + "/approve", data=b"", method="POST"), timeout=10)
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 302)
        self.assertEqual(self.env.wait_status(r.json["id"], ("succeeded",)).json["amount_received"], 1000)

    def test_503_after_stripe_took_it_is_never_failed(self):
        self.proxy.fail(1, "after", "/v1/payment_intents")
        r = self.pay()
        self.assertEqual(r.status, 201, r)
        # Never failed: unknown, or already settled by a webhook that overtook this answer.
        self.assertIn(r.json["status"], ("processing", "pending", "succeeded"), r)
        pid = r.json["id"]
        p = self.env.wait_status(pid, ("succeeded",), timeout=15).json
        self.assertEqual(p["amount_received"], 1000)
        self.assertNotIn("failed", [t for t, _ in self.h.history(pid)])
        self.assertEqual(len(self.intents_for(pid)), 1)  # Idempotency-Key: one intent
        # A refund whose answer is lost stays pending; Stripe's webhook settles it.
        self.proxy.fail(1, "after", "/v1/refunds")
        f = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 250})
        # The PSP's webhook may overtake this answer: pending, or already settled.
        self.assertEqual(f.status, 201, f)
        self.assertIn(f.json["status"], ("pending", "succeeded"), f)
        self.assertEqual(self.h.wait_refund(f.json["id"], ("succeeded",))["status"], "succeeded")
        self.assertEqual(self.intent(pid)["refunded"], 250)

    def test_duplicate_webhook_changes_nothing(self):
        r = self.pay(token=None)
        pi = r.json["provider_reference_id"]
        self.sim.call("POST", "/v1/payment_intents/%s/confirm" % pi, {"payment_method": "pm_card_visa"})
        pid = r.json["id"]
        self.env.wait_status(pid, ("succeeded",))
        ev = [e for e in self.sim.call("GET", "/v1/events")[1]["data"]
              if e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == pi][0]
        before = (self.h.history(pid), self.env.get(pid).json["updated_at"])
        body = json.dumps(ev).encode()
        for _ in range(2):
            t = int(time.time())
            sig = "t=%d,v1=%s" % (t, __import__("hmac").new(WHSEC.encode(), b"%d." % t + body,
                                                             "sha256").hexdigest())
            st, _, _ = http("POST", self.h.webhook_url, body,
                            {"Content-Type": "application/json", "Stripe-Signature": sig})
            self.assertEqual(st, 200)
        self.assertEqual((self.h.history(pid), self.env.get(pid).json["updated_at"]), before)
        self.assertEqual([t for t, _ in before[0]].count("succeeded"), 1)

    def test_concurrent_refunds_never_exceed(self):
        pid = self.pay().json["id"]
        out = self.h.concurrent_refunds(pid, 300, 8)
        self.assertEqual(sorted(r.status for r in out), [201] * 3 + [422] * 5, out)
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 900)
        self.assertEqual(self.intent(pid)["refunded"], 900)


if __name__ == "__main__":
    unittest.main(verbosity=2)
