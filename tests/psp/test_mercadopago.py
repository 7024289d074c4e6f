#!/usr/bin/env python3
"""MERCADOPAGO connector against the Mercado Pago simulator (every flow,
through plugins/mercadopago/mp_flow), its notifications verified with
`pagoflex webhook verify`, signatures cross-checked with the official npm
SDK (mercadopago@3.3.0, WebhookSignatureValidator), and `pagoflex plugin
check`. Env: PAGOFLEX_BUILD_DIR, PAGOFLEX_PSP_DIR (mercadopago.so and
mercadopago-build/)."""
import http.server, json, os, shutil, subprocess, sys, tempfile, threading, time, unittest
import urllib.error, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("PAGOFLEX_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
PSP = os.environ.get("PAGOFLEX_PSP_DIR", os.path.join(BUILD, "psp"))
SO = os.path.join(PSP, "mercadopago.so")
FLOW = os.path.join(PSP, "mercadopago-build", "mp_flow")
CLI = os.path.join(BUILD, "host", "pagoflex")
TOKEN, SECRET = "TEST-4815162342-token", "mp-webhook-secret-test"
SDK = "mercadopago@3.3.0"
# The docs' example notification (data.id, x-request-id, ts) under the docs'
# placeholder secret; v1 as the manifest with the id lower-cased gives it.
DOCS = dict(secret="your_secret_key_here", data_id="ORD01JQ4S4KY8HWQ6NA5PXB65B3D3",
            request_id="2066ca19-c6f1-498a-be75-1923005edd06", ts="1742505638683",
            v1="633f91233312dd391ec75fa0bea539cfc2d6c4918873305b84a96cc1c58db71c")


class Receiver(http.server.BaseHTTPRequestHandler):
    got = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.got.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class MercadoPago(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mpsim-")
        port_file = os.path.join(cls.tmp, "port")
        cls.sim = subprocess.Popen([sys.executable, os.path.join(HERE, "mercadopagosim.py"),
                                    "--port-file", port_file, "--token", TOKEN, "--secret", SECRET])
        for _ in range(100):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            cls.base = "http://127.0.0.1:%s" % f.read()
        cls.rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=cls.rx.serve_forever, daemon=True).start()
        cls.notify_url = "http://127.0.0.1:%d/webhooks/mercadopago" % cls.rx.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.rx.shutdown()
        cls.sim.terminate()
        cls.sim.wait(5)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, method, path, body=None, token=TOKEN, ctype="application/json", key=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Authorization": "Bearer " + token}
        if ctype:
            h["Content-Type"] = ctype
        if key:
            h["X-Idempotency-Key"] = key
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def card(self, name):
        st, tok = self.call("POST", "/v1/card_tokens", {
            "card_number": "5031433215406351", "security_code": "123", "expiration_month": 11,
            "expiration_year": 2030, "cardholder": {"name": name}})
        self.assertEqual(st, 201)
        return "master:" + tok["id"]

    def flow(self, flow, amount, pay_id, op_id, bank="-", refund="-", token="-", capture="1",
             currency="BRL"):
        env = dict(os.environ, MP_ACCESS_TOKEN=TOKEN, MP_WEBHOOK_SECRET=SECRET,
                   MP_NOTIFICATION_URL=self.notify_url)
        out = subprocess.run([FLOW, self.base, flow, currency, str(amount), pay_id, op_id, bank,
                              refund, token, capture], env=env, capture_output=True, text=True,
                             timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        r = dict(kv.split("=", 1) for kv in out.stdout.split())
        self.assertNotIn(TOKEN, out.stdout + out.stderr)
        return r

    # ---- the simulator refuses what the real API refuses
    def test_simulator_validation(self):
        self.assertEqual(self.call("GET", "/v1/payments/1", token="wrong")[0], 401)
        st, err = self.call("POST", "/v1/payments", {"transaction_amount": 10}, ctype="text/plain")
        self.assertEqual(st, 415)
        st, err = self.call("POST", "/v1/payments", {"transaction_amount": 10})
        self.assertEqual((st, err["error"], err["status"]), (400, "bad_request", 400))
        self.assertIn("token", err["message"])
        st, err = self.call("POST", "/v1/payments", {
            "transaction_amount": 10.001, "token": "x", "payment_method_id": "visa",
            "payer": {"email": "a@b.c"}})
        self.assertEqual(st, 400)
        self.assertEqual(self.call("GET", "/v1/payments/99")[0], 404)

    # ---- every flow, driven by the cardholder names
    def test_automatic_capture_and_declines(self):
        r = self.flow("authorize", 1050, "pay_auto_1", "pay_auto_1", token=self.card("APRO"))
        self.assertEqual((r["rc"], r["state"], r["amount"]), ("0", "3", "1050"))
        # The same operation again: the idempotency key returns the same payment.
        again = self.flow("authorize", 1050, "pay_auto_1", "pay_auto_1", token=self.card("APRO"))
        self.assertEqual(again["ref"], r["ref"])
        for name, detail in [("FUND", "cc_rejected_insufficient_amount"),
                             ("CALL", "cc_rejected_call_for_authorize"),
                             ("SECU", "cc_rejected_bad_filled_security_code"),
                             ("EXPI", "cc_rejected_bad_filled_date"),
                             ("FORM", "cc_rejected_bad_filled_other"),
                             ("OTHE", "cc_rejected_other_reason")]:
            d = self.flow("authorize", 1050, "pay_" + name, "pay_" + name, token=self.card(name))
            self.assertEqual((d["state"], d["code"]), ("4", detail), name)
        bad = self.flow("authorize", 1050, "pay_badtok", "pay_badtok", token="master:nope")
        self.assertEqual((bad["state"], bad["code"]), ("4", "mp_3003"))

    def test_pending_then_approved_by_sync(self):
        r = self.flow("authorize", 2000, "pay_cont_1", "pay_cont_1", token=self.card("CONT"))
        self.assertEqual(r["state"], "2")
        self.assertEqual(self.flow("payment_sync", 2000, "pay_cont_1", "s1", bank=r["ref"])["state"], "2")
        Receiver.got.clear()
        self.assertEqual(self.call("POST", "/_sim/advance/" + r["ref"])[0], 200)
        s = self.flow("payment_sync", 2000, "pay_cont_1", "s2", bank=r["ref"])
        self.assertEqual((s["state"], s["amount"]), ("3", "2000"))
        # The notification names only the id, in the query string, signed.
        path, headers, body = Receiver.got[-1]
        self.assertIn("data.id=%s&type=payment" % r["ref"], path)
        self.assertEqual(json.loads(body)["data"]["id"], r["ref"])
        self.verify_cli(path.split("?", 1)[1], headers, body, expect_ok=True, tx=r["ref"])

    def test_manual_capture_void_refunds(self):
        r = self.flow("authorize", 1050, "pay_man_1", "pay_man_1", token=self.card("APRO"), capture="0")
        self.assertEqual(r["state"], "8")
        c = self.flow("capture", 700, "pay_man_1", "cap_1", bank=r["ref"])
        self.assertEqual((c["state"], c["amount"]), ("3", "700"))
        self.assertEqual(self.flow("capture", 700, "pay_man_1", "cap_2", bank=r["ref"])["state"], "4")
        f1 = self.flow("refund", 200, "pay_man_1", "ref_1", bank=r["ref"])
        f2 = self.flow("refund", 300, "pay_man_1", "ref_2", bank=r["ref"])
        self.assertEqual((f1["state"], f1["amount"], f2["state"]), ("3", "200", "3"))
        self.assertNotEqual(f1["ref"], f2["ref"])
        # A retry of the same refund operation is not a second refund.
        self.assertEqual(self.flow("refund", 200, "pay_man_1", "ref_1", bank=r["ref"])["ref"], f1["ref"])
        over = self.flow("refund", 500, "pay_man_1", "ref_3", bank=r["ref"])
        self.assertEqual((over["state"], over["code"]), ("4", "mp_4040"))
        rs = self.flow("refund_sync", 0, "pay_man_1", "ref_2", bank=r["ref"], refund=f2["ref"])
        self.assertEqual((rs["state"], rs["amount"]), ("3", "300"))
        self.assertEqual(self.flow("refund_sync", 0, "pay_man_1", "x", bank=r["ref"],
                                   refund="1")["rc"], "8")  # NOT_FOUND
        v = self.flow("authorize", 990, "pay_man_2", "pay_man_2", token=self.card("APRO"), capture="0")
        self.assertEqual(self.flow("void", 0, "pay_man_2", "void_1", bank=v["ref"])["state"], "3")
        self.assertEqual(self.flow("payment_sync", 0, "pay_man_2", "s", bank=v["ref"])["state"], "6")
        self.assertEqual(self.flow("payment_sync", 0, "pay_x", "s", bank="424242")["rc"], "8")

    def test_zero_decimal_currency(self):
        r = self.flow("authorize", 15000, "pay_clp_1", "pay_clp_1", token=self.card("APRO"),
                      currency="CLP")
        self.assertEqual((r["state"], r["amount"]), ("3", "15000"))
        st, pay = self.call("GET", "/v1/payments/" + r["ref"])
        self.assertEqual(pay["transaction_amount"], 15000)

    # ---- webhooks: pagoflex webhook verify and the official SDK
    def verify_cli(self, query, headers, body, expect_ok, tx=None, secret=SECRET, now=None):
        bf = os.path.join(self.tmp, "body")
        with open(bf, "wb") as f:
            f.write(body)
        cmd = [CLI, "webhook", "verify", "--plugin", SO, "--credential", "MP_ACCESS_TOKEN=" + TOKEN,
               "--credential", "MP_WEBHOOK_SECRET=" + secret, "--query", query, "--body-file", bf]
        if now:
            cmd += ["--now", str(now)]
        for k, v in headers.items():
            if k.lower() in ("x-signature", "x-request-id", "content-type"):
                cmd += ["--header", "%s: %s" % (k, v)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode == 0, expect_ok, out.stdout + out.stderr)
        if tx:
            self.assertIn(tx, out.stdout)
        self.assertNotIn(secret, out.stdout + out.stderr)
        return out.stdout

    def test_official_sdk_signatures(self):
        npm = shutil.which("npm")
        if not npm or not shutil.which("node"):
            self.skipTest("node/npm not installed")
        pre = os.path.join(self.tmp, "npm")
        r = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                            pre, SDK], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            self.skipTest("npm could not install %s: %s" % (SDK, r.stderr[-300:]))
        js = os.path.join(pre, "check.js")
        with open(js, "w") as f:
            f.write("""
const { WebhookSignatureValidator } = require('mercadopago');
const crypto = require('crypto');
const [cmd, secret, dataId, rid, a4] = process.argv.slice(2);
if (cmd === 'validate') {   // a4: the x-signature value
  try { WebhookSignatureValidator.validate({ xSignature: a4, xRequestId: rid, dataId, secret });
        console.log('valid'); } catch (e) { console.log('invalid ' + e.reason); process.exit(1); }
} else {                    // sign the docs' way: id:<data.id>;request-id:<rid>;ts:<ts>;
  const m = `id:${dataId.toLowerCase()};request-id:${rid};ts:${a4};`;
  console.log(`ts=${a4},v1=` + crypto.createHmac('sha256', secret).update(m).digest('hex'));
}
""")
        node = lambda *a: subprocess.run(["node", js] + list(a), capture_output=True, text=True,
                                         cwd=pre, timeout=20)
        # The docs' example inputs: the SDK accepts the vector our unit test pins.
        v = node("validate", DOCS["secret"], DOCS["data_id"].lower(), DOCS["request_id"],
                 "ts=%s,v1=%s" % (DOCS["ts"], DOCS["v1"]))
        self.assertEqual(v.stdout.strip(), "valid", v.stderr)
        self.assertNotEqual(node("validate", DOCS["secret"], "ord0", DOCS["request_id"],
                                 "ts=%s,v1=%s" % (DOCS["ts"], DOCS["v1"])).returncode, 0)
        # Our simulator's notification passes the SDK's validator.
        Receiver.got.clear()
        r = self.flow("authorize", 500, "pay_sdk_1", "pay_sdk_1", token=self.card("APRO"))
        path, headers, body = Receiver.got[-1]
        hl = {k.lower(): v for k, v in headers.items()}
        self.assertEqual(node("validate", SECRET, r["ref"], hl["x-request-id"],
                              hl["x-signature"]).stdout.strip(), "valid")
        # A signature made the docs' way in Node verifies with webhook verify,
        # and through the plugin; a changed id, request id or secret does not.
        now = int(time.time())
        sig = node("sign", SECRET, "123456789", "rq-sdk-1", str(now)).stdout.strip()
        body = json.dumps({"action": "payment.updated", "type": "payment", "id": 555,
                           "data": {"id": "123456789"}}).encode()
        h = {"x-signature": sig, "x-request-id": "rq-sdk-1"}
        out = self.verify_cli("data.id=123456789&type=payment", h, body, True, tx="123456789")
        self.assertIn("kind=payment", out)
        self.assertIn("look_up (the host runs the payment", out)
        self.verify_cli("data.id=123456780&type=payment", h, body, False)
        self.verify_cli("data.id=123456789&type=payment", dict(h, **{"x-request-id": "rq-2"}),
                        body, False)
        self.verify_cli("data.id=123456789&type=payment", h, body, False, secret="other")
        self.verify_cli("data.id=123456789&type=payment", h, body, False, now=now + 3600)

    def test_plugin_check(self):
        out = subprocess.run([CLI, "plugin", "check", SO, "--credential", "MP_ACCESS_TOKEN=" + TOKEN,
                              "--credential", "MP_WEBHOOK_SECRET=" + SECRET],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("OK: 0 check(s) failed", out.stdout)


sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
harness.record_secret(TOKEN)
harness.record_secret(SECRET)


@unittest.skipUnless(harness.PG, "PAGOFLEX_PG is not set (ctest with the test cluster sets it)")
class HostFlows(unittest.TestCase):
    """Every flow through the host's API (ABI 1.2): pagoflexd -> FaultProxy ->
    mercadopagosim, MP_BASE_URL as a connector_settings entry; the
    simulator notifies notification_url (the host's public_url) with only
    the payment id: the host must look the payment up and settle it."""

    @classmethod
    def setUpClass(cls):
        import psphost
        cls.h = psphost.HostEnv("mercadopago", SO, {"MP_ACCESS_TOKEN": TOKEN, "MP_WEBHOOK_SECRET": SECRET},
                                cls.EXTRA)
        port_file = os.path.join(cls.h.env.dir, "mpsim.port")
        cls.sim = subprocess.Popen([sys.executable, os.path.join(HERE, "mercadopagosim.py"),
                                    "--port-file", port_file, "--token", TOKEN, "--secret", SECRET])
        cls.base = "http://127.0.0.1:%d" % harness.wait_for_file(port_file, cls.sim)
        cls.proxy = psphost.FaultProxy(cls.base)
        cls.h.start({"MP_BASE_URL": cls.proxy.url})
        cls.env = cls.h.env

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.sim.terminate()
        cls.sim.wait(5)
        cls.h.close()

    EXTRA = ""
    call = MercadoPago.call
    card = MercadoPago.card

    def pay(self, name="APRO", amount=1000, **fields):
        fields["payment_method"] = {"type": "card_token", "token": self.card(name)}
        r = self.env.pay(amount=amount, currency="BRL", connector="MERCADOPAGO", **fields)
        self.assertEqual(r.status, 201, r)
        return r

    def mp(self, pid):
        return self.call("GET", "/v1/payments/" + self.env.get(pid).json["provider_reference_id"])[1]

    def notify(self, data_id, notification_id):
        rid, ts = "rq-%d" % notification_id, str(int(time.time()))
        mac = __import__("hmac").new(SECRET.encode(), ("id:%s;request-id:%s;ts:%s;" % (data_id, rid, ts)).encode(),
                                     "sha256").hexdigest()
        body = json.dumps({"id": notification_id, "action": "payment.updated", "type": "payment",
                           "data": {"id": data_id}}).encode()
        return harness.http("POST", self.h.webhook_url + "?data.id=%s&type=payment" % data_id, body,
                            {"Content-Type": "application/json", "x-request-id": rid,
                             "x-signature": "ts=%s,v1=%s" % (ts, mac)})

    def test_connectors_lists_flows(self):
        c = self.env.connectors()["MERCADOPAGO"]
        self.assertEqual(c["abi_version"], "1.2")
        for f in ("authorize", "capture", "void", "refund", "payment_sync", "refund_sync"):
            self.assertIn(f, c["flows"])

    def test_notification_names_only_the_id_host_syncs_and_settles(self):
        r = self.pay("CONT")  # in_process: Mercado Pago decides later
        self.assertEqual((r.status, r.json["status"]), (201, "pending"), r)
        pid, ref = r.json["id"], r.json["provider_reference_id"]
        self.call("POST", "/_sim/advance/" + ref)  # approved; notifies {"data":{"id"}} only
        p = self.env.wait_status(pid, ("succeeded",), timeout=15).json
        self.assertEqual(p["amount_received"], 1000)
        # The notification carried no state: the host's sync settled it.
        self.assertNotIn(("succeeded", "webhook"), self.h.history(pid))

    def test_manual_then_partial_capture(self):
        r = self.pay(capture_method="manual")
        self.assertEqual((r.status, r.json["status"]), (201, "requires_capture"), r)
        c = self.h.post("/v1/payments/%s/capture" % r.json["id"], {"amount_to_capture": 600})
        self.assertEqual((c.status, c.json["status"], c.json["amount_received"]), (200, "succeeded", 600), c)
        self.assertEqual((self.mp(r.json["id"])["status"], self.mp(r.json["id"])["transaction_amount"]),
                         ("approved", 6.0))

    def test_cancel_authorization(self):
        r = self.pay(capture_method="manual")
        c = self.h.post("/v1/payments/%s/cancel" % r.json["id"])
        self.assertEqual((c.status, c.json["status"]), (200, "canceled"), c)
        self.assertEqual(self.mp(r.json["id"])["status"], "cancelled")

    def test_partial_refunds_then_one_too_many(self):
        pid = self.pay().json["id"]
        a = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 300})
        b = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 600})
        self.assertEqual((a.status, a.json["status"], b.status, b.json["status"]),
                         (201, "succeeded", 201, "succeeded"), (a, b))
        sent = len(self.proxy.seen)
        too = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 101})
        self.assertEqual((too.status, too.json["error"]["field"]), (422, "amount"), too)
        self.assertEqual(len(self.proxy.seen), sent)  # refused before Mercado Pago
        self.assertEqual(self.mp(pid)["transaction_amount_refunded"], 9.0)
        # The refunds' notifications (the payment's id) are look-ups: nothing moves back.
        time.sleep(0.5)
        self.assertEqual((self.env.get(pid).json["status"], self.env.get(pid).json["amount_refunded"]),
                         ("succeeded", 900))

    def test_503_after_mercadopago_took_it_is_never_failed(self):
        self.proxy.fail(1, "after", "/v1/payments")
        r = self.pay()
        self.assertEqual(r.status, 201, r)
        # Never failed: unknown, or already settled by a webhook that overtook this answer.
        self.assertIn(r.json["status"], ("processing", "pending", "succeeded"), r)
        pid = r.json["id"]
        # The notification names an id the host never got; the reconciler's
        # re-sent create (same X-Idempotency-Key) gets it back.
        p = self.env.wait_status(pid, ("succeeded",), timeout=15).json
        self.assertNotIn("failed", [t for t, _ in self.h.history(pid)])
        found = self.call("GET", "/v1/payments/search?external_reference=" + pid)[1]
        self.assertEqual((found["paging"]["total"], str(found["results"][0]["id"])),
                         (1, p["provider_reference_id"]))
        # A refund whose answer is lost is pending, never failed, until the
        # reconciler re-sends it with the same X-Idempotency-Key and gets
        # Mercado Pago's answer: one refund at Mercado Pago.
        self.proxy.fail(1, "after", "/refunds")
        f = self.h.post("/v1/refunds", {"payment_id": pid, "amount": 250})
        self.assertEqual((f.status, f.json["status"]), (201, "pending"), f)
        seen = set()
        deadline = time.time() + 20
        while time.time() < deadline:
            status = self.h.refund(f.json["id"]).json["status"]
            seen.add(status)
            if status == "succeeded":
                break
            time.sleep(0.2)
        self.assertEqual(status, "succeeded", seen)
        self.assertNotIn("failed", seen)
        self.assertEqual(self.mp(pid)["transaction_amount_refunded"], 2.5)

    def test_duplicate_notification_changes_nothing(self):
        r = self.pay()
        pid, ref = r.json["id"], r.json["provider_reference_id"]
        self.env.wait_status(pid, ("succeeded",))
        time.sleep(0.3)  # the simulator's own notification of the create
        before = (self.h.history(pid), self.env.get(pid).json["updated_at"])
        for _ in range(2):
            self.assertEqual(self.notify(ref, 777000 + int(ref) % 1000).status, 200)
        time.sleep(0.5)
        self.assertEqual((self.h.history(pid), self.env.get(pid).json["updated_at"]), before)
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_events WHERE connector = 'MERCADOPAGO' "
                                      "AND event_id = '%d'" % (777000 + int(ref) % 1000)), "1")

    def test_concurrent_refunds_never_exceed(self):
        pid = self.pay().json["id"]
        out = self.h.concurrent_refunds(pid, 300, 8)
        self.assertEqual(sorted(r.status for r in out), [201] * 3 + [422] * 5, out)
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 900)
        self.assertEqual(self.mp(pid)["transaction_amount_refunded"], 9.0)


class HostLookUp(HostFlows):
    """The reconciler's own schedule far away (a minute): only the look-up a
    notification asks for can settle the payment in time. Mercado Pago's
    notification names the payment by Mercado Pago's id alone."""

    EXTRA = "retry_base_ms = 60000;\nretry_max_ms = 60000;\nwebhook_grace_s = 60;\n"

    def test_lookup_by_mercadopago_id_syncs_at_once(self):
        r = self.pay("CONT")
        self.assertEqual((r.status, r.json["status"]), (201, "pending"), r)
        self.call("POST", "/_sim/advance/" + r.json["provider_reference_id"])
        p = self.env.wait_status(r.json["id"], ("succeeded",), timeout=5).json
        self.assertEqual(p["amount_received"], 1000)


def _only(cls, names):
    for n in [n for n in dir(cls) if n.startswith("test_") and n not in names]:
        setattr(cls, n, None)


_only(HostLookUp, ("test_lookup_by_mercadopago_id_syncs_at_once",))


if __name__ == "__main__":
    unittest.main()
