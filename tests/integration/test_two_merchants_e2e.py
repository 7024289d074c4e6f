"""Issue 13 done: two merchants, each with its own Banco X account, side by side.

Shop A and Shop B are made with `pagoflex merchant create` and bound to Pagoflex accounts acct-a
and acct-b of banco_x, which hold the simulator's accounts "a" and "b" (BANCOX_ACCOUNTS): each its
own API key and webhook secret. Each merchant registers a webhook endpoint at the node receiver
(notify_receiver.js), which checks every delivery with the official npm `standardwebhooks`
package against both endpoints' secrets. Both merchants then do the same things (a payment that
settles, one the bank declines, a refund), with the same reference and the same Idempotency-Key,
and the test shows side by side that:
- each sees only its own data: the other's payment, its events and refunds answer exactly as an
  unknown id does, lists and keys never cross;
- each bank call carried its merchant's key: the simulator filed it under that merchant's account;
- each bank webhook verified against its own account's secret only (the simulator's settled the
  payments; one signed with the other account's secret is refused at either URL);
- each endpoint received its own merchant's events only, every one verified by the official
  library with its own endpoint's secret and by none with the other's.
"""
import json
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http, record_secret, sign_bancox  # noqa: E402
from notify_helpers import NPM_PKG, Receiver, endpoints, install_official_library  # noqa: E402

SIM = {name: (record_secret("sk_%s_%s" % (name, uuid.uuid4().hex)),
              record_secret("whsec_%s_%s" % (name, uuid.uuid4().hex))) for name in ("a", "b")}
NOTIFY = ("notify_allow_private_targets = true;\nnotify_timeout_ms = 1500;\nnotify_poll_interval_ms = 100;\n"
          "notify_retry_schedule_s = [1, 1, 2];\n")


class Merchant:
    """One side: its id, key, Banco X account, endpoint and what it made."""

    def __init__(self, env, name, sim_account):
        self.name = name
        self.sim_account = sim_account
        self.account = "acct-" + sim_account
        self.id, key = env.create_merchant("Shop " + name, account=self.account)
        self.auth = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        self.path = "/shop-" + sim_account
        self.secret = None
        self.endpoint = None
        self.payments = {}  # kind -> payment object as created
        self.refund = None


class TwoMerchants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not install_official_library():
            raise unittest.SkipTest("npm could not install " + NPM_PKG)
        accounts = ",".join("%s:%s:%s" % (name, key, secret) for name, (key, secret) in SIM.items())
        cls.recv = Receiver()
        cls.env = Env(extra_config=NOTIFY, sim_env={"BANCOX_ACCOUNTS": accounts})
        env = cls.env
        for name, (key, secret) in SIM.items():
            env.add_account("acct-" + name, key, secret)
        env.reload()
        cls.m = [Merchant(env, "A", "a"), Merchant(env, "B", "b")]
        for m in cls.m:
            r = endpoints(env, m.auth, {"url": cls.recv.base + m.path})
            assert r.status == 201, r
            m.endpoint = r.json["id"]
            m.secret = record_secret(r.json["secret"])
        # Each path is checked against its own endpoint's secret first, then the other's.
        a, b = cls.m
        cls.recv.set(a.path, [a.secret, b.secret])
        cls.recv.set(b.path, [b.secret, a.secret])
        cls.reference = "order-" + uuid.uuid4().hex[:8]
        cls.idem = "same-key-" + uuid.uuid4().hex[:8]
        cls.run_both()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()
        cls.recv.close()

    @classmethod
    def run_both(cls):
        """Both merchants, interleaved: a payment that settles, one declined (amount ending in 13:
        declined by webhook), under the same reference and the same Idempotency-Key; then a
        refund of the settled one."""
        env = cls.env
        for kind, amount in (("settled", 2050), ("declined", 2013)):
            for m in cls.m:
                headers = dict(m.auth, **({"Idempotency-Key": cls.idem} if kind == "settled" else {}))
                r = http("POST", env.url + "/v1/payments", {"amount": amount, "currency": "ARS", "connector": "BANCO_X",
                                                            "reference": cls.reference}, headers)
                assert r.status == 201, r
                m.payments[kind] = r.json
        for m in cls.m:
            for kind, want in (("settled", "succeeded"), ("declined", "failed")):
                cls.wait(m, "/v1/payments/" + m.payments[kind]["id"], want)
        for m in cls.m:
            r = http("POST", env.url + "/v1/refunds", {"payment_id": m.payments["settled"]["id"], "amount": 500},
                     m.auth)
            assert r.status in (200, 201, 202), r
            m.refund = r.json
        for m in cls.m:
            cls.wait(m, "/v1/refunds/" + m.refund["id"], "succeeded")

    @classmethod
    def wait(cls, m, path, want, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = http("GET", cls.env.url + path, headers=m.auth)
            if r.status == 200 and r.json["status"] == want:
                return r.json
            time.sleep(0.05)
        raise AssertionError("%s %s did not reach %s: %r" % (m.name, path, want, r))

    def get(self, m, path):
        return http("GET", self.env.url + path, headers=m.auth)

    def own_ids(self, m):
        return {p["id"] for p in m.payments.values()} | {m.refund["id"]}

    # ---- each sees only its own data ------------------------------------------
    def test_each_sees_only_its_own_data(self):
        for me, other in (self.m, self.m[::-1]):
            theirs = other.payments["settled"]["id"]
            for path in ("/v1/payments/%s", "/v1/payments/%s/events"):
                got = self.get(me, path % theirs)
                unknown = self.get(me, path % "pay_nosuchpayment0000000000")
                self.assertEqual((got.status, got.json["error"]["code"]), (404, "not_found"), got)
                self.assertEqual(got.json["error"]["message"].replace(theirs, "X"),
                                 unknown.json["error"]["message"].replace("pay_nosuchpayment0000000000", "X"))
            got = self.get(me, "/v1/refunds/" + other.refund["id"])
            self.assertEqual((got.status, got.json["error"]["code"]), (404, "not_found"), got)
            self.assertEqual(self.get(me, "/v1/refunds?payment_id=" + theirs).json["data"], [])
            mine = self.get(me, "/v1/refunds?payment_id=" + me.payments["settled"]["id"]).json["data"]
            self.assertEqual([f["id"] for f in mine], [me.refund["id"]])
            # The same reference lists only its own payments.
            listed = self.get(me, "/v1/payments?reference=" + self.reference).json["data"]
            self.assertEqual({p["id"] for p in listed}, {p["id"] for p in me.payments.values()})
            # Its endpoints only; the other's endpoint is not found.
            self.assertEqual([e["id"] for e in endpoints(self.env, me.auth).json["data"]], [me.endpoint])
            self.assertEqual(endpoints(self.env, me.auth, path="/" + other.endpoint).status, 404)
            self.assertEqual(endpoints(self.env, me.auth, path="/%s/deliveries" % other.endpoint).status, 404)
        # The same Idempotency-Key made one payment per merchant, and a replay gives each its own.
        a, b = self.m
        self.assertNotEqual(a.payments["settled"]["id"], b.payments["settled"]["id"])
        for m in self.m:
            again = http("POST", self.env.url + "/v1/payments",
                         {"amount": 2050, "currency": "ARS", "connector": "BANCO_X", "reference": self.reference},
                         dict(m.auth, **{"Idempotency-Key": self.idem}))
            self.assertEqual((again.status, again.headers.get("Idempotent-Replayed")), (201, "true"), again)
            self.assertEqual(again.json["id"], m.payments["settled"]["id"])

    # ---- each bank call carries the right key --------------------------------
    def test_each_bank_call_carries_its_merchants_key(self):
        for m in self.m:
            for kind, p in m.payments.items():
                self.assertEqual(self.env.sql("SELECT merchant_id || ' ' || connector_account FROM payments "
                                              "WHERE id = '%s'" % p["id"]), "%s %s" % (m.id, m.account))
                bank = http("GET", self.env.sim_url + "/_sim/payments/" + p["provider_reference_id"]).json
                self.assertEqual(bank["account"], m.sim_account, (m.name, kind, bank))
            bank = http("GET", self.env.sim_url + "/_sim/payments/"
                        + m.payments["settled"]["provider_reference_id"]).json
            self.assertEqual([f["amount"] for f in bank["refunds"]], [500])
            # The other account's key does not even find it at the bank.
            other = SIM["b" if m.sim_account == "a" else "a"][0]
            r = http("GET", self.env.sim_url + "/pay/" + m.payments["settled"]["provider_reference_id"],
                     headers={"Authorization": "Bearer " + other})
            self.assertEqual(r.status, 404, r)

    # ---- each bank webhook verifies only against its own account's secret ----------
    def test_each_bank_webhook_verifies_only_with_its_accounts_secret(self):
        for m in self.m:
            # The simulator's signed webhooks, each to its account's URL, settled everything.
            for kind, want in (("settled", "succeeded"), ("declined", "failed")):
                self.assertEqual(self.env.sql("SELECT source FROM payment_history WHERE payment_id = '%s' "
                                              "AND to_state = '%s'" % (m.payments[kind]["id"], want)), "webhook")
            self.assertEqual(self.env.sql("SELECT source FROM refund_history WHERE refund_id = '%s' "
                                          "AND to_state = 'succeeded'" % m.refund["id"]), "webhook")
        for me, other in (self.m, self.m[::-1]):
            # amount % 100 == 77: no webhook from the simulator; the test owns the events.
            p = http("POST", self.env.url + "/v1/payments", {"amount": 3077, "currency": "ARS",
                                                             "connector": "BANCO_X"}, me.auth).json
            ev = json.dumps({"event_id": "evt_" + uuid.uuid4().hex[:26], "type": "payment",
                             "tx_id": p["provider_reference_id"], "ref": p["id"], "status": "APPROVED",
                             "amount": 3077, "currency": "ARS", "occurred_at": "2026-12-02T12:00:00Z"}).encode()
            mine, theirs = SIM[me.sim_account][1], SIM[other.sim_account][1]
            for secret, account in ((theirs, me.account), (theirs, other.account), (mine, other.account)):
                r = http("POST", self.env.url + "/webhooks/bancox/" + account, ev,
                         {"Content-Type": "application/json", "X-BancoX-Signature": sign_bancox(ev, secret)})
                if secret == theirs and account == me.account:
                    self.assertEqual((r.status, r.json["error"]["code"]), (401, "invalid_signature"), r)
                elif secret == theirs:
                    # The other account's own secret at its own URL: that account has no such payment.
                    self.assertEqual((r.status, r.json["error"]["code"]), (404, "unknown_payment"), r)
                else:
                    self.assertEqual((r.status, r.json["error"]["code"]), (401, "invalid_signature"), r)
            self.assertEqual(self.get(me, "/v1/payments/" + p["id"]).json["status"], "pending")
            r = http("POST", self.env.url + "/webhooks/bancox/" + me.account, ev,
                     {"Content-Type": "application/json", "X-BancoX-Signature": sign_bancox(ev, mine)})
            self.assertEqual((r.status, r.json["result"]), (200, "applied"), r)
            self.assertEqual(self.get(me, "/v1/payments/" + p["id"]).json["status"], "succeeded")

    # ---- each endpoint receives only its own events, verified by the official library -----
    def test_each_endpoint_receives_only_its_own_events_verified(self):
        for m in self.m:
            want = {(m.payments["settled"]["id"], "payment.succeeded"),
                    (m.payments["declined"]["id"], "payment.failed"),
                    (m.refund["id"], "refund.succeeded")}

            def arrived():
                got = {(json.loads(r["body"])["data"]["id"], json.loads(r["body"])["type"])
                       for r in self.recv.records(m.path)}
                return got if want <= got else None
            self.recv.wait(arrived, what="%s's events at %s" % (m.name, m.path))
        for me, other in (self.m, self.m[::-1]):
            # Every event its delivery log names (the other tests add some) has arrived, at its path.
            log = endpoints(self.env, me.auth, path="/%s/deliveries" % me.endpoint).json["data"]
            self.assertEqual({d["endpoint_id"] for d in log}, {me.endpoint})
            logged = {d["event_id"] for d in log}

            def all_logged():
                got = self.recv.records(me.path)
                return got if logged <= {x["headers"]["webhook-id"] for x in got} else None
            recs = self.recv.wait(all_logged, what="the events of %s's delivery log" % me.name)
            for r in recs:
                # verified = [with its own endpoint's secret, with the other merchant's]
                self.assertEqual(r["verified"], [True, False], r)
                data = json.loads(r["body"])["data"]
                self.assertNotIn(data["id"], self.own_ids(other), r)
                self.assertNotIn(data.get("payment_id"), {p["id"] for p in other.payments.values()}, r)
                owner = self.env.sql("SELECT merchant_id FROM payments WHERE id = '%s' UNION ALL "
                                     "SELECT p.merchant_id FROM refunds f JOIN payments p ON p.id = f.payment_id "
                                     "WHERE f.id = '%s'" % (data["id"], data["id"]))
                self.assertEqual(owner, me.id, r)
            # None of the other merchant's events went to this endpoint, nor to any other.
            theirs = {x["headers"]["webhook-id"] for x in self.recv.records(other.path)}
            self.assertFalse(theirs & {x["headers"]["webhook-id"] for x in recs})
        self.assertEqual({r["path"] for r in self.recv.records()}, {m.path for m in self.m})


if __name__ == "__main__":
    unittest.main(verbosity=2)
