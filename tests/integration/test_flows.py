"""Issue 11: the payment lifecycle through plugins.

Plugins built for the frozen ABI 1.0 and 1.1 headers load in this host and
serve create (and, 1.1, status sync) through the host's adapter unchanged;
/v1/connectors names each connector's flows. Banco X 1.2 against the
simulator: manual capture, void, refunds, 3-D Secure, 1.2 webhooks, and the
money invariants under concurrent requests.
"""
import html.parser
import os
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http, sign_bancox  # noqa: E402

FAST = """
bank_timeout_ms = 1500;
reconcile_interval_ms = 100;
retry_base_ms = 200;
retry_max_ms = 800;
webhook_grace_s = 1;
recover_after_ms = 2000;
reconcile_lease_ms = 4000;
idempotency_wait_ms = 3000;
idempotency_stale_ms = 3000;
"""


class OldPlugins(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(start_host=False, extra_config=FAST)
        cls.env.add_plugin("abi_v1_0")
        cls.env.add_plugin("abi_v1_1")
        cls.env.start_host()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_connectors_list_flows(self):
        got = {c["key"]: (c["abi_version"], c["flows"])
               for c in http("GET", self.env.admin_url + "/v1/connectors").json["connectors"]}
        self.assertEqual(got["ABI_V1_0"], ("1.0", ["authorize"]))
        self.assertEqual(got["ABI_V1_1"], ("1.1", ["authorize", "payment_sync"]))

    def test_v1_1_plugin_creates_and_syncs(self):
        r = self.env.pay(amount=700, currency="EUR", connector="ABI_V1_1")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "pending")
        self.assertEqual(r.json["provider_reference_id"], "v11_" + r.json["id"])
        # No webhook ever comes: the reconciler's sync (sync_request/sync_response) settles it.
        self.assertEqual(self.env.wait_status(r.json["id"], "succeeded", timeout=15).json["status"],
                         "succeeded")
        self.assertIn(("sync", "succeeded"),
                      [(e["source"], e["to"]) for e in self.env.events(r.json["id"]).json["events"]])

    def test_v1_1_plugin_refusal_fails(self):
        r = self.env.pay(amount=799, currency="EUR", connector="ABI_V1_1")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "failed")

    def test_v1_0_plugin_creates(self):
        # Its bank URL (127.0.0.1:1) refuses the connection: never failed.
        r = self.env.pay(amount=700, currency="EUR", connector="ABI_V1_0")
        self.assertEqual(r.status, 201, r)
        self.assertIn(r.json["status"], ("processing", "created"))


    def test_v1_1_plugin_refund_unsupported(self):
        r = self.env.pay(amount=700, currency="EUR", connector="ABI_V1_1")
        self.env.wait_status(r.json["id"], "succeeded", timeout=15)
        before = self.env.sql("SELECT count(*) FROM refunds")
        f = http("POST", self.env.url + "/v1/refunds", {"payment_id": r.json["id"]}, self.env.auth())
        self.assertEqual(f.status, 422, f)
        self.assertEqual(f.json["error"]["code"], "unsupported_operation")
        self.assertIn("ABI_V1_1", f.json["error"]["message"])
        self.assertEqual(self.env.sql("SELECT count(*) FROM refunds"), before)

    def test_v1_1_plugin_manual_capture_unsupported(self):
        before = self.env.sql("SELECT count(*) FROM payments")
        r = self.env.pay(amount=700, currency="EUR", connector="ABI_V1_1", capture_method="manual")
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["error"]["code"], "unsupported_operation")
        self.assertIn("ABI_V1_1", r.json["error"]["message"])
        self.assertEqual(self.env.sql("SELECT count(*) FROM payments"), before)


class _Forms(html.parser.HTMLParser):
    """The forms of the simulator's 3-D Secure page: [(action, {name: value})]."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append((a.get("action"), {}))
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1][1][a["name"]] = a.get("value", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class BancoXFlows(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(extra_config=FAST)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def post(self, path, body=None, key=None):
        h = self.env.auth({"Idempotency-Key": key} if key else None)
        return http("POST", self.env.url + path, body if body is not None else {}, h)

    def sim_payment(self, pid):
        ref = self.env.get(pid).json["provider_reference_id"]
        return http("GET", self.env.sim_url + "/_sim/payments/" + ref).json

    def authorized(self, amount=1000):
        r = self.env.pay(amount=amount, capture_method="manual")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["capture_method"], "manual")
        p = self.env.wait_status(r.json["id"], ("requires_capture",), timeout=15).json
        self.assertEqual(p["amount_capturable"], amount)
        self.assertEqual(p["amount_received"], 0)
        return p["id"]

    def captured(self, amount=1000):
        r = self.env.pay(amount=amount)
        self.assertEqual(r.status, 201, r)
        p = self.env.wait_status(r.json["id"], ("succeeded",), timeout=15).json
        self.assertEqual(p["amount_received"], amount)
        return p["id"]

    def wait_refund(self, rid, want, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            f = http("GET", self.env.url + "/v1/refunds/" + rid, headers=self.env.auth())
            if f.json["status"] == want:
                return f.json
            time.sleep(0.05)
        raise AssertionError("refund %s did not reach %s: %r" % (rid, want, f))

    def test_manual_partial_capture(self):
        pid = self.authorized(1000)
        c = self.post("/v1/payments/%s/capture" % pid, {"amount_to_capture": 600})
        self.assertEqual(c.status, 200, c)
        self.assertEqual((c.json["status"], c.json["amount_received"], c.json["amount_capturable"]),
                         ("succeeded", 600, 0))
        bank = self.sim_payment(pid)
        self.assertEqual((bank["status"], bank["captured"], bank["capture_requests"]), ("CAPTURED", 600, 1))
        # One capture: a second is refused with the state, and not sent.
        again = self.post("/v1/payments/%s/capture" % pid)
        self.assertEqual(again.status, 409, again)
        self.assertEqual((again.json["error"]["code"], again.json["error"]["status"]),
                         ("invalid_state", "succeeded"))
        self.assertEqual(self.sim_payment(pid)["capture_requests"], 1)

    def test_idempotent_create_keeps_capture_method(self):
        r = self.env.pay_idem("pk-manual-1", amount=900, capture_method="manual")
        self.assertEqual((r.status, r.json["capture_method"]), (201, "manual"), r)
        self.env.wait_status(r.json["id"], ("requires_capture",), timeout=15)

    def test_capture_over_capturable_is_422_and_not_sent(self):
        pid = self.authorized(500)
        c = self.post("/v1/payments/%s/capture" % pid, {"amount_to_capture": 501})
        self.assertEqual(c.status, 422, c)
        self.assertEqual(c.json["error"]["field"], "amount_to_capture")
        self.assertEqual(self.sim_payment(pid)["capture_requests"], 0)
        self.assertEqual(self.env.get(pid).json["status"], "requires_capture")

    def test_void(self):
        pid = self.authorized(800)
        v = self.post("/v1/payments/%s/cancel" % pid)
        self.assertEqual(v.status, 200, v)
        self.assertEqual((v.json["status"], v.json["amount_capturable"]), ("canceled", 0))
        bank = self.sim_payment(pid)
        self.assertEqual((bank["status"], bank["void_requests"]), ("VOIDED", 1))
        # Canceled: capture, cancel and refund are 409 with the state, nothing sent.
        for path, body in (("/v1/payments/%s/capture" % pid, {}), ("/v1/payments/%s/cancel" % pid, {}),
                           ("/v1/refunds", {"payment_id": pid})):
            r = self.post(path, body)
            self.assertEqual(r.status, 409, (path, r))
            self.assertEqual(r.json["error"]["status"], "canceled")
        bank = self.sim_payment(pid)
        self.assertEqual((bank["capture_requests"], bank["void_requests"], bank["refund_requests"]), (0, 1, 0))

    def test_wrong_state_refund_of_uncaptured(self):
        pid = self.authorized(700)
        r = self.post("/v1/refunds", {"payment_id": pid, "amount": 100})
        self.assertEqual(r.status, 409, r)
        self.assertEqual((r.json["error"]["code"], r.json["error"]["status"]), ("invalid_state", "requires_capture"))
        self.assertEqual(self.sim_payment(pid)["refund_requests"], 0)

    def test_partial_refunds_then_one_too_many(self):
        pid = self.captured(1000)
        a = self.post("/v1/refunds", {"payment_id": pid, "amount": 300, "reason": "requested_by_customer",
                                      "metadata": {"order": "7"}})
        self.assertEqual(a.status, 201, a)
        self.assertEqual((a.json["object"], a.json["amount"], a.json["currency"], a.json["metadata"]),
                         ("refund", 300, "ARS", {"order": "7"}))
        b = self.post("/v1/refunds", {"payment_id": pid, "amount": 600})
        self.assertEqual(b.status, 201, b)
        too = self.post("/v1/refunds", {"payment_id": pid, "amount": 101})
        self.assertEqual(too.status, 422, too)
        self.assertEqual(too.json["error"]["field"], "amount")
        self.assertEqual(self.wait_refund(a.json["id"], "succeeded")["provider_reference_id"][:3], "rf_")
        self.wait_refund(b.json["id"], "succeeded")
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 900)
        self.assertEqual(self.sim_payment(pid)["refund_requests"], 2)
        listed = http("GET", self.env.url + "/v1/refunds?payment_id=" + pid, headers=self.env.auth()).json
        self.assertEqual([f["id"] for f in listed["data"]], [b.json["id"], a.json["id"]])
        # The default is what is left.
        rest = self.post("/v1/refunds", {"payment_id": pid})
        self.assertEqual((rest.status, rest.json["amount"]), (201, 100), rest)

    def test_refund_declined_by_webhook_gives_amount_back(self):
        pid = self.captured(1000)
        f = self.post("/v1/refunds", {"payment_id": pid, "amount": 213})
        self.assertEqual((f.status, f.json["status"]), (201, "pending"), f)
        got = self.wait_refund(f.json["id"], "failed")
        self.assertIsNotNone(got["error"])
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 0)
        hist = self.env.sql("SELECT source FROM refund_history WHERE refund_id = '%s' AND to_state = 'failed'"
                            % f.json["id"])
        self.assertEqual(hist, "webhook")

    def test_refund_idempotency_key(self):
        pid = self.captured(1000)
        a = self.post("/v1/refunds", {"payment_id": pid, "amount": 100}, key="rk-1")
        b = self.post("/v1/refunds", {"payment_id": pid, "amount": 100}, key="rk-1")
        self.assertEqual((a.status, b.status), (201, 201))
        self.assertEqual(a.json["id"], b.json["id"])
        self.assertEqual(b.headers.get("Idempotent-Replayed"), "true")
        other = self.post("/v1/refunds", {"payment_id": pid, "amount": 200}, key="rk-1")
        self.assertEqual((other.status, other.json["error"]["code"]), (422, "idempotency_key_reused"))
        # The same key on another route is another key.
        pid2 = self.authorized(400)
        c = self.post("/v1/payments/%s/cancel" % pid2, key="rk-1")
        self.assertEqual((c.status, c.json["status"]), (200, "canceled"), c)
        self.assertEqual(self.sim_payment(pid)["refund_requests"], 1)

    def test_3ds_approve_and_decline(self):
        for choice, want in (("approve", "succeeded"), ("decline", "failed")):
            r = self.env.pay(amount=1042, return_url="https://shop.example/back?o=1",
                             payment_method={"type": "card_token", "token": "tok_visa"})
            self.assertEqual((r.status, r.json["status"]), (201, "requires_action"), r)
            nxt = r.json["next_action"]
            self.assertEqual(nxt["type"], "redirect_to_url")
            self.assertEqual(nxt["redirect_to_url"]["return_url"], "https://shop.example/back?o=1")
            page = urllib.request.urlopen(nxt["redirect_to_url"]["url"], timeout=10).read().decode()
            forms = _Forms()
            forms.feed(page)
            action, fields = [f for f in forms.forms if f[1].get("result") == choice][0]
            target = urllib.parse.urljoin(nxt["redirect_to_url"]["url"], action)
            opener = urllib.request.build_opener(_NoRedirect)
            try:
                opener.open(urllib.request.Request(target, urllib.parse.urlencode(fields).encode()), timeout=10)
                self.fail("no redirect to return_url")
            except urllib.error.HTTPError as e:
                self.assertEqual(e.code, 303)
                self.assertEqual(e.headers["Location"], "https://shop.example/back?o=1")
            self.assertEqual(self.env.wait_status(r.json["id"], (want,), timeout=15).json["status"], want)

    def test_unknown_webhook_type_acknowledged(self):
        pid = self.captured(1000)
        before = self.env.get(pid).json
        body = {"event_id": "evt_dispute_1", "type": "dispute", "tx_id": before["provider_reference_id"],
                "status": "OPENED"}
        w = self.env.webhook(body)
        self.assertTrue(200 <= w.status < 300, w)
        self.assertEqual(self.env.sql("SELECT kind FROM webhook_events WHERE event_id = 'evt_dispute_1'"),
                         "ignored")
        after = self.env.get(pid).json
        self.assertEqual((after["status"], after["updated_at"]), (before["status"], before["updated_at"]))

    def test_concurrent_refunds_never_exceed(self):
        pid = self.captured(1000)
        results = []

        def one():
            results.append(self.post("/v1/refunds", {"payment_id": pid, "amount": 30}))

        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [r for r in results if r.status == 201]
        self.assertEqual(len(ok), 33)  # 33 * 30 = 990 <= 1000 < 34 * 30
        self.assertTrue(all(r.status == 422 and r.json["error"]["field"] == "amount"
                            for r in results if r.status != 201))
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 990)
        bank = self.sim_payment(pid)
        self.assertEqual(bank["refund_requests"], 33)

    def test_concurrent_captures_one_wins(self):
        pid = self.authorized(1000)
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            self.post("/v1/payments/%s/capture" % pid, {"amount_to_capture": 100}))) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r.status for r in results), [200] + [409] * 9)
        bank = self.sim_payment(pid)
        self.assertEqual((bank["captured"], bank["capture_requests"]), (100, 1))

    def test_cancel_vs_capture_race(self):
        pid = self.authorized(1000)
        results = {}
        ops = [("capture", "/v1/payments/%s/capture" % pid), ("cancel", "/v1/payments/%s/cancel" % pid)]
        threads = [threading.Thread(target=lambda n=n, p=p: results.__setitem__(n, self.post(p))) for n, p in ops]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r.status for r in results.values()), [200, 409])
        final = self.env.get(pid).json["status"]
        bank = self.sim_payment(pid)
        self.assertEqual(bank["capture_requests"] + bank["void_requests"], 1)
        self.assertIn((final, bank["status"]), (("succeeded", "CAPTURED"), ("canceled", "VOIDED")))


    # ---- the reconciler settles refunds, captures and voids ----------------

    def test_refund_without_webhook_settled_by_sync(self):
        pid = self.captured(1000)
        f = self.post("/v1/refunds", {"payment_id": pid, "amount": 177})
        self.assertEqual((f.status, f.json["status"]), (201, "pending"), f)
        got = self.wait_refund(f.json["id"], "succeeded", timeout=15)
        self.assertEqual(got["provider_reference_id"][:3], "rf_")
        self.assertEqual(self.env.sql("SELECT source FROM refund_history WHERE refund_id = '%s'"
                                      " AND to_state = 'succeeded'" % f.json["id"]), "sync")
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 177)

    def test_refund_503_resent_with_same_key_and_settled(self):
        pid = self.captured(1000)
        f = self.post("/v1/refunds", {"payment_id": pid, "amount": 255})
        self.assertEqual((f.status, f.json["status"]), (201, "pending"), f)
        self.assertIsNone(f.json["provider_reference_id"])  # the 503: outcome unknown
        self.wait_refund(f.json["id"], "succeeded", timeout=15)
        bank = self.sim_payment(pid)
        self.assertEqual([(r["amount"], r["ref"]) for r in bank["refunds"]], [(255, f.json["id"])])
        self.assertGreaterEqual(bank["refund_requests"], 2)  # the 503 and the re-send
        self.assertEqual(self.env.get(pid).json["amount_refunded"], 255)

    def test_capture_503_retried_and_succeeds_once(self):
        pid = self.authorized(1000)
        c = self.post("/v1/payments/%s/capture" % pid, {"amount_to_capture": 655})
        self.assertEqual((c.status, c.json["status"], c.json["pending_operation"]),
                         (202, "requires_capture", "capture"), c)
        p = self.env.wait_status(pid, ("succeeded",), timeout=15).json
        self.assertEqual((p["amount_received"], p["pending_operation"]), (655, None))
        bank = self.sim_payment(pid)
        self.assertEqual((bank["status"], bank["captured"], len(bank["captures"])), ("CAPTURED", 655, 1))
        # Settled: a later cancel is refused by state, not operation_in_progress.
        v = self.post("/v1/payments/%s/cancel" % pid)
        self.assertEqual((v.status, v.json["error"]["code"]), (409, "invalid_state"), v)

if __name__ == "__main__":
    unittest.main()
