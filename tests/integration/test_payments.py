"""The core payment path, end to end: pagoflexd + banco_x.so + PostgreSQL + simulator."""
import json
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Env, http, sign_bancox  # noqa: E402


class PaymentFlow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_approved_payment_succeeds_by_webhook(self):
        r = self.env.pay(amount=1050, currency="ARS", reference="order-1", description="two coffees")
        self.assertEqual(r.status, 201, r)
        p = r.json
        self.assertTrue(p["id"].startswith("pay_"))
        self.assertEqual(p["status"], "pending")
        self.assertTrue(p["provider_reference_id"].startswith("bx_"))
        self.assertEqual((p["amount"], p["currency"], p["connector"]), (1050, "ARS", "BANCO_X"))
        self.assertEqual(p["reference"], "order-1")
        self.assertIsNone(p["error"])
        done = self.env.wait_status(p["id"], {"succeeded", "failed"})
        self.assertEqual(done.json["status"], "succeeded")
        self.assertEqual(done.json["provider_reference_id"], p["provider_reference_id"])
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_events WHERE payment_id='%s'" % p["id"]), "1")

    def test_declined_13_fails_by_webhook(self):
        r = self.env.pay(amount=2013)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "pending")
        done = self.env.wait_status(r.json["id"], {"succeeded", "failed"})
        self.assertEqual(done.json["status"], "failed")
        self.assertEqual(done.json["error"]["code"], "declined")

    def test_rejected_99_fails_at_once(self):
        r = self.env.pay(amount=5099)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "failed")
        self.assertEqual(r.json["error"]["code"], "rejected")
        self.assertIn("insufficient funds", r.json["error"]["message"])

    def test_transient_55_stays_processing_never_failed(self):
        r = self.env.pay(amount=1055)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "processing")
        self.assertEqual(r.json["error"]["code"], "bank_unavailable")

    def _pending_payment(self, amount=77077):
        # amount % 100 == 77: the simulator never sends a webhook, so the test owns the events.
        r = self.env.pay(amount=amount)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "pending")
        return r.json

    def _event(self, p, status="APPROVED", event_id=None):
        return {"event_id": event_id or "evt_" + uuid.uuid4().hex[:26], "tx_id": p["provider_reference_id"],
                "ref": p["id"], "status": status, "amount": p["amount"], "currency": p["currency"],
                "occurred_at": "2026-11-27T12:00:00Z"}

    def test_duplicate_webhook_changes_nothing(self):
        p = self._pending_payment()
        ev = self._event(p)
        first = self.env.webhook(ev)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.json["result"], "applied")
        after_first = self.env.get(p["id"]).json
        second = self.env.webhook(ev)
        self.assertEqual(second.status, 200, second)
        self.assertEqual(second.json["result"], "duplicate")
        self.assertEqual(self.env.get(p["id"]).json, after_first)
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_events WHERE payment_id='%s'" % p["id"]), "1")

    def test_terminal_state_never_regresses(self):
        p = self._pending_payment()
        self.assertEqual(self.env.webhook(self._event(p, "APPROVED")).json["result"], "applied")
        late = self.env.webhook(self._event(p, "DECLINED"))
        self.assertEqual(late.status, 200, late)
        self.assertEqual(late.json["result"], "ignored")
        self.assertEqual(self.env.get(p["id"]).json["status"], "succeeded")

    def test_bad_signature_leaves_state_alone(self):
        p = self._pending_payment()
        raw = json.dumps(self._event(p)).encode()
        cases = {
            "wrong secret": sign_bancox(raw, secret="whsec_wrong"),
            "stale timestamp": sign_bancox(raw, t=int(time.time()) - 3600),
            "garbage": "nonsense",
        }
        for name, sig in cases.items():
            r = self.env.webhook(raw, signature=sig)
            self.assertEqual(r.status, 401, name)
            self.assertEqual(r.json["error"]["code"], "invalid_signature")
        self.assertEqual(self.env.webhook(raw, signature=False).status, 401)
        tampered = raw.replace(b"APPROVED", b"DECLINED")
        self.assertEqual(self.env.webhook(tampered, signature=sign_bancox(raw)).status, 401)
        self.assertEqual(self.env.get(p["id"]).json["status"], "pending")
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_events WHERE payment_id='%s'" % p["id"]), "0")

    def test_webhook_garbage_body_is_400(self):
        raw = b"{not json"
        r = self.env.webhook(raw, signature=sign_bancox(raw))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"]["code"], "invalid_webhook")

    def test_webhook_for_unknown_payment_is_404(self):
        ev = {"event_id": "evt_x" + uuid.uuid4().hex, "tx_id": "bx_nope", "ref": "pay_nope", "status": "APPROVED",
              "amount": 1, "currency": "ARS", "occurred_at": "2026-11-27T12:00:00Z"}
        r = self.env.webhook(ev)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_events WHERE event_id='%s'" % ev["event_id"]), "0")

    def test_webhook_unknown_path_is_404(self):
        self.assertEqual(self.env.webhook({"a": 1}, path="nobank").status, 404)

    def test_get_unknown_payment_is_404(self):
        r = self.env.get("pay_doesnotexist")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json["error"]["code"], "not_found")

    def test_connectors_and_health(self):
        r = http("GET", self.env.url + "/v1/connectors")
        self.assertEqual(r.status, 200)
        (c,) = r.json["connectors"]
        self.assertEqual((c["key"], c["webhook_path"], c["abi_version"]), ("BANCO_X", "bancox", "1.2"))
        self.assertTrue(c["file"].endswith("banco_x.so"))
        self.assertEqual(len(c["sha256"]), 64)
        h = http("GET", self.env.url + "/healthz")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.json["database"], "ok")


class Validation(unittest.TestCase):
    """Each bad input gets its status and error, and nothing is stored."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def post(self, body, headers=None):
        before = self.env.sql("SELECT count(*) FROM payments")
        r = http("POST", self.env.url + "/v1/payments", body, headers or self.env.auth())
        self.assertEqual(self.env.sql("SELECT count(*) FROM payments"), before, "a refused request stored a row")
        self.assertEqual(self.env.sim_stats()["pay_requests"], self.sim_before)
        return r

    def setUp(self):
        self.sim_before = self.env.sim_stats()["pay_requests"]

    def expect(self, r, status, code, field=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"]["code"], code, r)
        self.assertEqual(r.json["error"]["field"], field, r)
        self.assertTrue(r.json["error"]["message"])

    def good(self, **over):
        b = {"amount": 1050, "currency": "ARS", "connector": "BANCO_X"}
        b.update(over)
        return b

    def test_malformed_json(self):
        self.expect(self.post(b'{"amount": 10,'), 400, "invalid_json")
        self.expect(self.post(b'[1,2]'), 400, "invalid_json")
        self.expect(self.post(b''), 400, "invalid_json")

    def test_auth(self):
        h = {"Content-Type": "application/json"}
        self.expect(self.post(self.good(), h), 401, "unauthorized")
        h["Authorization"] = "Bearer pk_wrong"
        self.expect(self.post(self.good(), h), 401, "unauthorized")
        h["Authorization"] = "Basic abc"
        self.expect(self.post(self.good(), h), 401, "unauthorized")

    def test_content_type(self):
        self.expect(self.post(self.good(), self.env.auth({"Content-Type": "text/plain"})), 415,
                    "unsupported_media_type")

    def test_body_too_large(self):
        big = self.good(description="x" * (70 * 1024))
        self.expect(self.post(big), 413, "payload_too_large")

    def test_amount(self):
        for bad in (0, -5, 10.5, "100", True, None, 10 ** 16):
            self.expect(self.post(self.good(amount=bad)), 422, "invalid_field", "amount")
        b = self.good()
        del b["amount"]
        self.expect(self.post(b), 422, "missing_field", "amount")

    def test_currency(self):
        for bad in ("XXX", "ars", "EURO", 978, ""):
            self.expect(self.post(self.good(currency=bad)), 422, "invalid_field", "currency")
        b = self.good()
        del b["currency"]
        self.expect(self.post(b), 422, "missing_field", "currency")
        # A real currency Banco X does not take.
        self.expect(self.post(self.good(currency="EUR")), 422, "unsupported_currency", "currency")

    def test_connector(self):
        self.expect(self.post(self.good(connector="NOPE")), 422, "unknown_connector", "connector")
        self.expect(self.post(self.good(connector=7)), 422, "invalid_field", "connector")
        b = self.good()
        del b["connector"]
        self.expect(self.post(b), 422, "missing_field", "connector")

    def test_optional_strings(self):
        self.expect(self.post(self.good(reference=5)), 422, "invalid_field", "reference")
        self.expect(self.post(self.good(description="y" * 2000)), 422, "invalid_field", "description")

    def test_unknown_route_and_method(self):
        r = http("GET", self.env.url + "/v2/nothing")
        self.assertEqual(r.status, 404)
        r = http("DELETE", self.env.url + "/v1/payments", headers=self.env.auth())
        self.assertEqual(r.status, 405)


class WebhookBeforeReply(unittest.TestCase):
    """The simulator delivers the webhook before it answers POST /pay."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env(sim_args=["--webhook-first"])

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_webhook_overtakes_reply(self):
        r = self.env.pay(amount=4321)
        self.assertEqual(r.status, 201, r)
        # The webhook was applied while the row was still `created`; the late
        # reply did not move it back to pending.
        self.assertEqual(r.json["status"], "succeeded")
        self.assertTrue(r.json["provider_reference_id"].startswith("bx_"))
        time.sleep(0.3)
        self.assertEqual(self.env.get(r.json["id"]).json["status"], "succeeded")

    def test_declined_overtakes_reply(self):
        r = self.env.pay(amount=4313)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "failed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
