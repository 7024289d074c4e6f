"""Issue 13: merchant accounts.

Two merchants made with `pagoflex merchant create` take payments side by
side on one host (two hosts for disabling): each sees and changes only its
own payments and refunds, another merchant's ids answer exactly like
unknown ids, and Idempotency-Keys are per merchant. Real pagoflexd, real
PostgreSQL, the bank simulator.
"""
import json
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http, record_secret  # noqa: E402

FAST = """
bank_timeout_ms = 1500;
access_log = true;  # test_access_log_names_the_merchant reads it
reconcile_interval_ms = 100;
retry_base_ms = 200;
retry_max_ms = 800;
webhook_grace_s = 1;
recover_after_ms = 2000;
reconcile_lease_ms = 4000;
"""


def unknown_like(pid):
    """An id of the same shape and length that names nothing."""
    prefix = pid.split("_", 1)[0]
    return "%s_%s" % (prefix, uuid.uuid4().hex[:len(pid) - len(prefix) - 1])


def answer(resp, ids):
    """What a client can compare between two answers: the status and the
    body with the ids it asked about and its own request id taken out."""
    if not isinstance(resp.json, dict):
        text = resp.raw.decode(errors="replace")
    else:
        body = dict(resp.json)
        if "error" in body:
            body["error"] = dict(body["error"])
            body["error"].pop("request_id", None)
        text = json.dumps(body, sort_keys=True)
    for i in ids:
        text = text.replace(i, "<id>")
    return resp.status, text


class Merchants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(extra_config=FAST, extra_hosts=1)
        cls.second_url = cls.env.start_extra_hosts()[0]
        cls.a, cls.ka = cls.create_merchant("Shop A")
        cls.b, cls.kb = cls.create_merchant("Shop B")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def create_merchant(cls, name):
        # A merchant other than mer_default needs a Banco X account to pay (connector accounts);
        # these two share the operator's account "default".
        return cls.env.create_merchant(name)

    def call(self, key, method, path, body=None, url=None, extra=None):
        h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        h.update(extra or {})
        return http(method, (url or self.env.url) + path, body if body is not None or method != "POST" else {}, h)

    def pay(self, key, manual=False, **fields):
        body = dict(amount=1000, currency="ARS", connector="BANCO_X", **fields)
        if manual:
            body["capture_method"] = "manual"
        r = self.call(key, "POST", "/v1/payments", body)
        self.assertEqual(r.status, 201, r)
        return r.json["id"]

    def wait(self, key, pid, want, timeout=15):
        deadline = time.time() + timeout
        r = None
        while time.time() < deadline:
            r = self.call(key, "GET", "/v1/payments/" + pid)
            if r.status == 200 and r.json["status"] == want:
                return r.json
            time.sleep(0.05)
        raise AssertionError("payment %s did not reach %s: %r" % (pid, want, r))

    def sim_payment(self, key, pid):
        ref = self.call(key, "GET", "/v1/payments/" + pid).json["provider_reference_id"]
        return http("GET", self.env.sim_url + "/_sim/payments/" + ref).json

    def test_cli_create_list_and_key_listing(self):
        self.assertRegex(self.a, r"^mer_[0-9a-z]{26}$")
        self.assertNotEqual(self.a, self.b)
        text = self.env.cli(["merchant", "create", "Shop T", "-c", self.env.config])
        mid, key = text.stdout.splitlines()
        record_secret(key)
        self.assertRegex(mid, r"^mer_[0-9a-z]{26}$")
        self.assertRegex(key, r"^pfk_[a-z0-9]{12}_[0-9a-f]{64}$")
        self.assertNotIn(key, text.stderr)
        self.assertEqual(self.call(key, "GET", "/v1/payments?reference=none").status, 200)
        listed = json.loads(self.env.cli(["merchant", "list", "--json", "-c", self.env.config]).stdout)
        got = {m["id"]: (m["name"], m["disabled_at"]) for m in listed["merchants"]}
        self.assertEqual(got["mer_default"], ("default", None))
        self.assertEqual(got[self.a], ("Shop A", None))
        self.assertEqual(got[mid], ("Shop T", None))
        self.assertIn(mid, self.env.cli(["merchant", "list", "-c", self.env.config]).stdout)
        # A second key of a merchant, and apikey list naming every key's merchant.
        more = record_secret(self.env.cli(["apikey", "create", "--merchant", mid, "--name", "second",
                                           "-c", self.env.config]).stdout.strip())
        legacy = record_secret(self.env.cli(["apikey", "create", "--name", "legacy",
                                             "-c", self.env.config]).stdout.strip())
        rows = {}
        for line in self.env.cli(["apikey", "list", "-c", self.env.config]).stdout.splitlines()[1:]:
            words = line.split()
            rows[[w for w in words if w.startswith("pfk_")][0]] = [w for w in words if w.startswith("mer_")][0]
        self.assertEqual(rows[more[:16]], mid)
        self.assertEqual(rows[key[:16]], mid)
        self.assertEqual(rows[legacy[:16]], "mer_default")
        pid = self.pay(legacy)
        self.assertEqual(self.env.sql("SELECT merchant_id FROM payments WHERE id = '%s'" % pid), "mer_default")
        # An unknown merchant gets no key, and nothing is stored.
        before = self.env.sql("SELECT count(*) FROM api_keys")
        bad = self.env.cli(["apikey", "create", "--merchant", "mer_nope", "--name", "x", "-c", self.env.config],
                           check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("mer_nope", bad.stderr)
        self.assertEqual(self.env.sql("SELECT count(*) FROM api_keys"), before)
        self.assertEqual(self.env.cli(["merchant", "create", "", "-c", self.env.config], check=False).returncode, 2)

    def test_another_merchants_ids_answer_like_unknown_ids(self):
        pb = self.pay(self.kb, reference="order-shared")
        pbm = self.pay(self.kb, manual=True, reference="order-shared")
        pa = self.pay(self.ka, reference="order-shared")
        self.wait(self.kb, pb, "succeeded")
        self.wait(self.kb, pbm, "requires_capture")
        self.wait(self.ka, pa, "succeeded")
        rb = self.call(self.kb, "POST", "/v1/refunds", {"payment_id": pb, "amount": 100})
        self.assertEqual(rb.status, 201, rb)
        rb = rb.json["id"]
        bank_before = self.sim_payment(self.kb, pbm)

        # Every merchant route, on B's ids with A's key and on unknown ids of the same shape.
        for method, path, body, theirs in (
                ("GET", "/v1/payments/%s", None, pb),
                ("GET", "/v1/payments/%s/events", None, pb),
                ("POST", "/v1/payments/%s/capture", {}, pbm),
                ("POST", "/v1/payments/%s/cancel", {}, pbm),
                ("POST", "/v1/refunds", {"payment_id": "%s", "amount": 100}, pb),
                ("GET", "/v1/refunds/%s", None, rb),
                ("GET", "/v1/refunds?payment_id=%s", None, pb)):
            unknown = unknown_like(theirs)

            def fill(v, i):
                return json.loads(json.dumps(v).replace("%s", i)) if v is not None else None
            got = self.call(self.ka, method, path.replace("%s", theirs), fill(body, theirs))
            want = self.call(self.ka, method, path.replace("%s", unknown), fill(body, unknown))
            self.assertEqual(answer(got, [theirs]), answer(want, [unknown]), (method, path))
            self.assertIn(got.status, (404, 200), (method, path, got))
            if got.status == 200:  # a list: empty, as for a payment that does not exist
                self.assertEqual(got.json["data"], [])

        # Nothing of B's moved, and nothing was sent to the bank for it.
        mine = self.call(self.kb, "GET", "/v1/payments/" + pbm).json
        self.assertEqual((mine["status"], mine["pending_operation"]), ("requires_capture", None))
        bank_after = self.sim_payment(self.kb, pbm)
        self.assertEqual((bank_after["capture_requests"], bank_after["void_requests"]),
                         (bank_before["capture_requests"], bank_before["void_requests"]))
        self.assertEqual(self.call(self.kb, "GET", "/v1/payments/" + pb).json["amount_refunded"], 100)
        self.assertEqual(self.env.sql("SELECT count(*) FROM refunds WHERE payment_id = '%s'" % pb), "1")

        # Lists by reference: each merchant sees its own only.
        la = self.call(self.ka, "GET", "/v1/payments?reference=order-shared").json["data"]
        lb = self.call(self.kb, "GET", "/v1/payments?reference=order-shared").json["data"]
        self.assertEqual([p["id"] for p in la], [pa])
        self.assertEqual(sorted(p["id"] for p in lb), sorted([pb, pbm]))

        # B itself still reads and changes its own.
        self.assertEqual(self.call(self.kb, "GET", "/v1/refunds/" + rb).status, 200)
        self.assertEqual([f["id"] for f in self.call(self.kb, "GET", "/v1/refunds?payment_id=" + pb).json["data"]],
                         [rb])
        self.assertEqual(self.call(self.kb, "GET", "/v1/payments/%s/events" % pb).status, 200)
        cap = self.call(self.kb, "POST", "/v1/payments/%s/capture" % pbm, {})
        self.assertEqual((cap.status, cap.json["status"]), (200, "succeeded"), cap)
        # The config's key acts for mer_default: it does not see B's either.
        self.assertEqual(self.env.get(pb).status, 404)
        self.assertEqual(self.env.sql("SELECT merchant_id FROM refunds WHERE id = '%s'" % rb), self.b)

    def test_idempotency_keys_are_per_merchant(self):
        body = {"amount": 1234, "currency": "ARS", "connector": "BANCO_X"}
        idem = {"Idempotency-Key": "order-%s" % uuid.uuid4().hex}
        a1 = self.call(self.ka, "POST", "/v1/payments", body, extra=idem)
        b1 = self.call(self.kb, "POST", "/v1/payments", body, extra=idem)
        self.assertEqual((a1.status, b1.status), (201, 201), (a1, b1))
        self.assertNotEqual(a1.json["id"], b1.json["id"])
        self.assertIsNone(b1.headers.get("Idempotent-Replayed"))
        # Two keys of one merchant share their Idempotency-Keys.
        ka2 = record_secret(self.env.cli(["apikey", "create", "--merchant", self.a, "--name", "a2",
                                          "-c", self.env.config]).stdout.strip())
        a2 = self.call(ka2, "POST", "/v1/payments", body, extra=idem)
        self.assertEqual((a2.status, a2.json["id"]), (201, a1.json["id"]), a2)
        self.assertEqual(a2.headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(self.env.sql("SELECT count(*) FROM payments WHERE amount = 1234"), "2")
        # On a flow route too: the same key refunds for A and for B separately.
        pa = self.pay(self.ka)
        pb = self.pay(self.kb)
        self.wait(self.ka, pa, "succeeded")
        self.wait(self.kb, pb, "succeeded")
        rkey = {"Idempotency-Key": "refund-%s" % uuid.uuid4().hex}
        ra = self.call(self.ka, "POST", "/v1/refunds", {"payment_id": pa, "amount": 10}, extra=rkey)
        rb = self.call(self.kb, "POST", "/v1/refunds", {"payment_id": pb, "amount": 10}, extra=rkey)
        self.assertEqual((ra.status, rb.status), (201, 201), (ra, rb))
        self.assertNotEqual(ra.json["id"], rb.json["id"])
        # A's key replayed by B on A's payment id: B's scope has no such key and no such payment.
        stolen = self.call(self.kb, "POST", "/v1/refunds", {"payment_id": pa, "amount": 10},
                           extra={"Idempotency-Key": "other-%s" % uuid.uuid4().hex})
        self.assertEqual(stolen.status, 404, stolen)

    def test_access_log_names_the_merchant(self):
        rid = "mer-" + uuid.uuid4().hex
        r = self.call(self.ka, "GET", "/v1/payments/pay_nope", extra={"X-Request-Id": rid})
        self.assertEqual(r.status, 404)
        deadline = time.time() + 5
        while time.time() < deadline and ("request_id=" + rid) not in self.env.log():
            time.sleep(0.05)
        (line,) = [x for x in self.env.log().splitlines() if " access " in x and "request_id=" + rid in x]
        self.assertIn(" key=%s merchant=%s " % (self.ka[:16], self.a), line)
        self.assertNotIn(self.ka, self.env.log())

    def test_disabled_merchant_is_refused_at_once_on_every_host(self):
        mid, key = self.create_merchant("Shop D")
        pid = self.pay(key)
        for url in (self.env.url, self.second_url):
            self.assertEqual(self.call(key, "GET", "/v1/payments/" + pid, url=url).status, 200, url)
        out = self.env.cli(["merchant", "disable", mid, "-c", self.env.config])
        self.assertIn("disabled merchant " + mid, out.stderr)
        for url in (self.env.url, self.second_url):
            r = self.call(key, "GET", "/v1/payments/" + pid, url=url)
            self.assertEqual(r.status, 401, (url, r))
            self.assertEqual(self.call(key, "POST", "/v1/payments",
                                       {"amount": 1000, "currency": "ARS", "connector": "BANCO_X"},
                                       url=url).status, 401)
        # Other merchants are served; the payment is kept; the listing says when.
        self.assertEqual(self.call(self.ka, "GET", "/v1/payments?reference=x", url=self.second_url).status, 200)
        self.assertEqual(self.env.sql("SELECT merchant_id FROM payments WHERE id = '%s'" % pid), mid)
        listed = json.loads(self.env.cli(["merchant", "list", "--json", "-c", self.env.config]).stdout)
        self.assertIsNotNone({m["id"]: m for m in listed["merchants"]}[mid]["disabled_at"])
        # No new key for it; twice is not an error; mer_default and unknown ids are refused.
        self.assertEqual(self.env.cli(["apikey", "create", "--merchant", mid, "--name", "n", "-c",
                                       self.env.config], check=False).returncode, 1)
        self.assertEqual(self.env.cli(["merchant", "disable", mid, "-c", self.env.config]).returncode, 0)
        self.assertEqual(self.env.cli(["merchant", "disable", "mer_default", "-c", self.env.config],
                                      check=False).returncode, 1)
        self.assertEqual(self.env.cli(["merchant", "disable", "mer_nope", "-c", self.env.config],
                                      check=False).returncode, 1)
        self.assertEqual(self.env.pay().status, 201)


if __name__ == "__main__":
    unittest.main()
