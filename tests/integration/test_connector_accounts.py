"""Connector accounts per merchant (issue 13): two merchants, each with its own Banco X account.

The simulator holds three Banco X accounts: "default" (the harness's key and secret), "b" and
"b2" (BANCOX_ACCOUNTS). A payment at the simulator belongs to the account whose API key made it,
and /_sim/payments/{id} names that account: so the test sees which key each bank call carried.
The default merchant (mer_default) uses Pagoflex account "default" of banco_x (<plugin>.cfg.enc);
merchant mer_b is bound to Pagoflex account "acct-b" (banco_x/acct-b.cfg.enc), which holds the
simulator's account "b" key and secret, later rotated to "b2".

The steps run in order (test_1_..., test_2_...): each builds on the state the previous left.
"""
import json
import os
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Env, http, record_secret, sign_bancox  # noqa: E402

KEY_B = record_secret("sk_b_" + uuid.uuid4().hex)
SECRET_B = record_secret("whsec_b_" + uuid.uuid4().hex)
KEY_B2 = record_secret("sk_b2_" + uuid.uuid4().hex)
SECRET_B2 = record_secret("whsec_b2_" + uuid.uuid4().hex)


class ConnectorAccounts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(sim_env={"BANCOX_ACCOUNTS": "b:%s:%s,b2:%s:%s" % (KEY_B, SECRET_B, KEY_B2, SECRET_B2)})
        env = cls.env
        env.sql("INSERT INTO merchants (id, name) VALUES ('mer_b', 'merchant b')")
        out = env.cli(["apikey", "create", "--name", "merchant-b", "-c", env.config]).stdout.strip()
        cls.key_b = record_secret(out.splitlines()[-1])
        env.sql("UPDATE api_keys SET merchant_id = 'mer_b' WHERE name = 'merchant-b'")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    # ---- helpers ------------------------------------------------------
    def pay_b(self, amount=1050, **fields):
        body = dict(amount=amount, currency="ARS", connector="BANCO_X", **fields)
        return http("POST", self.env.url + "/v1/payments", body,
                    {"Authorization": "Bearer " + self.key_b, "Content-Type": "application/json"})

    def get_b(self, pid):
        return http("GET", self.env.url + "/v1/payments/" + pid,
                    headers={"Authorization": "Bearer " + self.key_b})

    def wait_b(self, pid, want, timeout=15):
        deadline = time.time() + timeout
        r = None
        while time.time() < deadline:
            r = self.get_b(pid)
            if r.status == 200 and r.json["status"] in want:
                return r
            time.sleep(0.05)
        raise AssertionError("payment %s did not reach %s: last %r" % (pid, want, r))

    def sim_account(self, bank_id):
        r = http("GET", self.env.sim_url + "/_sim/payments/" + bank_id)
        self.assertEqual(r.status, 200, r)
        return r.json

    def write_account(self, account, key, secret):
        self.env.add_account(account, key, secret)

    def sim_pay_requests(self):
        return self.env.sim_stats()["pay_requests"]

    def payments_of(self, merchant):
        return int(self.env.sql("SELECT count(*) FROM payments WHERE merchant_id = '%s'" % merchant))

    def accounts(self):
        doc = http("GET", self.env.admin_url + "/v1/connectors").json
        return {(c["key"], c["account"]) for c in doc["connectors"]}, doc

    def event(self, p, status="APPROVED"):
        return {"event_id": "evt_" + uuid.uuid4().hex[:26], "tx_id": p["provider_reference_id"], "ref": p["id"],
                "status": status, "amount": p["amount"], "currency": p["currency"],
                "occurred_at": "2026-12-02T12:00:00Z"}

    def post_webhook(self, ev, secret, path):
        raw = json.dumps(ev).encode()
        return http("POST", self.env.url + "/webhooks/" + path, raw,
                    {"Content-Type": "application/json", "X-BancoX-Signature": sign_bancox(raw, secret)})

    # ---- steps --------------------------------------------------------
    def test_1_merchant_without_account_gets_422_and_nothing_is_written(self):
        sent = self.sim_pay_requests()
        r = self.pay_b()
        self.assertEqual(r.status, 422, r)
        self.assertEqual((r.json["error"]["code"], r.json["error"]["field"]), ("connector_not_configured", "connector"))
        self.assertEqual(self.payments_of("mer_b"), 0)
        self.assertEqual(self.sim_pay_requests(), sent)
        # The default merchant keeps account "default" without any binding (an upgraded deployment).
        r = self.env.pay()
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.env.wait_status(r.json["id"], {"succeeded", "failed"}).json["status"], "succeeded")
        self.assertEqual(self.sim_account(r.json["provider_reference_id"])["account"], "default")

    def test_2_bound_account_without_credentials_is_503_nothing_sent(self):
        r = self.env.cli(["merchant", "account", "add", "mer_b", "--connector", "BANCO_X", "--account", "acct-b",
                          "-c", self.env.config])
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = self.env.cli(["merchant", "account", "list", "-c", self.env.config]).stdout
        self.assertRegex(listed, r"mer_b\s+BANCO_X\s+acct-b")
        sent = self.sim_pay_requests()
        r = self.pay_b()
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["error"]["code"], "connector_account_unavailable")
        self.assertIn("acct-b", r.json["error"]["message"])
        self.assertEqual(self.payments_of("mer_b"), 0)
        self.assertEqual(self.sim_pay_requests(), sent)

    def test_3_reload_adds_the_account_and_each_merchant_uses_its_own_key(self):
        self.write_account("acct-b", KEY_B, SECRET_B)
        # A file no one can decrypt fails that account only, with a line naming plugin and account.
        with open(os.path.join(self.env.cred_dir, "banco_x", "broken.cfg.enc"), "wb") as f:
            f.write(b"PFX1 not an encrypted file")
        self.env.reload()
        loaded, doc = self.accounts()
        self.assertIn(("BANCO_X", "default"), loaded)
        self.assertIn(("BANCO_X", "acct-b"), loaded)
        self.assertNotIn(("BANCO_X", "broken"), loaded)
        self.assertEqual([(a["plugin"], a["account"]) for a in doc["rejected_accounts"]], [("banco_x", "broken")])
        self.assertIn("connector account rejected: plugin=banco_x account=broken", self.env.log())
        os.unlink(os.path.join(self.env.cred_dir, "banco_x", "broken.cfg.enc"))
        # The operator's checks see the account too.
        r = self.env.cli(["secrets", "check", "--credentials-dir", self.env.cred_dir, "--plugin-dir",
                          self.env.plugin_dir, "--key-file", self.env.key_file], check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("banco_x/acct-b.cfg.enc: 4 settings", r.stdout)
        self.assertIn("key BANCO_X, account acct-b", r.stdout)
        r = subprocess.run([os.path.join(harness.BUILD, "host", "pagoflexd"), "-t", "-c", self.env.config],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("account acct-b", r.stdout + r.stderr)

        rb = self.pay_b(amount=2050)
        self.assertEqual(rb.status, 201, rb)
        ra = self.env.pay(amount=3050)
        self.assertEqual(ra.status, 201, ra)
        self.assertEqual(self.env.sql("SELECT connector_account FROM payments WHERE id = '%s'" % rb.json["id"]),
                         "acct-b")
        self.assertEqual(self.env.sql("SELECT connector_account FROM payments WHERE id = '%s'" % ra.json["id"]),
                         "default")
        # Each bank call carried its merchant's key: the simulator filed each under its account ...
        self.assertEqual(self.sim_account(rb.json["provider_reference_id"])["account"], "b")
        self.assertEqual(self.sim_account(ra.json["provider_reference_id"])["account"], "default")
        # ... and each settles by the simulator's webhook, signed with that account's secret and
        # sent to that account's URL (the default account's at /webhooks/bancox).
        self.assertEqual(self.wait_b(rb.json["id"], {"succeeded", "failed"}).json["status"], "succeeded")
        self.assertEqual(self.env.wait_status(ra.json["id"], {"succeeded", "failed"}).json["status"], "succeeded")
        # Settled by that webhook (not by a sync): the simulator signed it with account b's secret and
        # sent it to /webhooks/bancox/acct-b, the only place that secret verifies.
        self.assertEqual(self.env.sql("SELECT source FROM payment_history WHERE payment_id = '%s' "
                                      "AND to_state = 'succeeded'" % rb.json["id"]), "webhook")
        # Merchant isolation at the bank: B's payment is unknown to A's key.
        r = http("GET", self.env.sim_url + "/pay/" + rb.json["provider_reference_id"],
                 headers={"Authorization": "Bearer " + harness.BANCOX_API_KEY})
        self.assertEqual(r.status, 404, r)

    def test_4_webhooks_verify_only_with_their_accounts_secret(self):
        # amount % 100 == 77: the simulator sends no webhook; the test owns the events.
        pb = self.pay_b(amount=1077).json
        self.assertEqual(pb["status"], "pending", pb)
        declined = self.event(pb, "DECLINED")
        # Signed with A's (the default account's) secret, at B's URL: refused.
        r = self.post_webhook(declined, harness.BANCOX_SECRET, "bancox/acct-b")
        self.assertEqual((r.status, r.json["error"]["code"]), (401, "invalid_signature"))
        # Signed with A's secret at A's URL: A's account has no such payment.
        r = self.post_webhook(declined, harness.BANCOX_SECRET, "bancox")
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "unknown_payment"), r)
        # Naming only B's bank id, it is kept for account "default" and never reaches B's payment.
        by_tx = dict(declined, ref=None)
        r = self.post_webhook(by_tx, harness.BANCOX_SECRET, "bancox")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(self.env.sql("SELECT connector_account || ' ' || (payment_id IS NULL) FROM webhook_events "
                                      "WHERE event_id = '%s'" % declined["event_id"]), "default true")
        self.assertEqual(self.get_b(pb["id"]).json["status"], "pending")
        # An unknown account's URL is 404.
        r = self.post_webhook(declined, SECRET_B, "bancox/nobody")
        self.assertEqual(r.status, 404, r)
        # B's own secret at B's URL: applied.
        r = self.post_webhook(self.event(pb, "APPROVED"), SECRET_B, "bancox/acct-b")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.get_b(pb["id"]).json["status"], "succeeded")

    def test_5_refund_uses_the_payments_account(self):
        pb = self.pay_b(amount=4050).json
        self.assertEqual(self.wait_b(pb["id"], {"succeeded", "failed"}).json["status"], "succeeded")
        f = http("POST", self.env.url + "/v1/refunds", {"payment_id": pb["id"]},
                 {"Authorization": "Bearer " + self.key_b, "Content-Type": "application/json"})
        self.assertIn(f.status, (200, 201, 202), f)
        self.assertEqual(self.env.sql("SELECT connector_account FROM refunds WHERE id = '%s'" % f.json["id"]),
                         "acct-b")
        deadline = time.time() + 15
        while time.time() < deadline:
            g = http("GET", self.env.url + "/v1/refunds/" + f.json["id"], headers={"Authorization": "Bearer " + self.key_b})
            if g.json["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
        self.assertEqual(g.json["status"], "succeeded", g)
        bank = self.sim_account(pb["provider_reference_id"])
        self.assertEqual((bank["account"], len(bank["refunds"])), ("b", 1))

    def test_6_rotating_an_accounts_credentials_is_a_reload(self):
        # The bank issued account b a new key and secret (its account "b2" here).
        before = self.pay_b(amount=5050).json
        self.write_account("acct-b", KEY_B2, SECRET_B2)
        self.env.reload()
        after = self.pay_b(amount=6050)
        self.assertEqual(after.status, 201, after)
        self.assertEqual(self.sim_account(after.json["provider_reference_id"])["account"], "b2")
        self.assertEqual(self.wait_b(after.json["id"], {"succeeded", "failed"}).json["status"], "succeeded")
        # The old secret no longer verifies at B's URL; the new one does.
        pending = self.pay_b(amount=6077).json
        r = self.post_webhook(self.event(pending), SECRET_B, "bancox/acct-b")
        self.assertEqual(r.status, 401, r)
        r = self.post_webhook(self.event(pending), SECRET_B2, "bancox/acct-b")
        self.assertEqual(r.status, 200, r)
        # The default merchant never noticed.
        ra = self.env.pay(amount=7050)
        self.assertEqual(self.sim_account(ra.json["provider_reference_id"])["account"], "default")
        self.assertIn(self.get_b(before["id"]).json["status"], ("succeeded", "pending"))

    def test_6b_a_changed_binding_is_used_at_once_by_every_worker(self):
        self.write_account("acct-c", KEY_B, SECRET_B)
        self.env.reload()
        # Every worker remembers acct-b for mer_b after these ...
        for _ in range(6):
            r = self.pay_b(amount=8050)
            self.assertEqual(self.sim_account(r.json["provider_reference_id"])["account"], "b2")
        r = self.env.cli(["merchant", "account", "add", "mer_b", "--connector", "BANCO_X", "--account", "acct-c",
                          "-c", self.env.config])
        self.assertEqual(r.returncode, 0, r.stderr)
        # ... yet the payment INSERT resolves the account itself: none goes out with acct-b's key.
        for _ in range(6):
            r = self.pay_b(amount=9050)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(self.sim_account(r.json["provider_reference_id"])["account"], "b")
            self.assertEqual(self.env.sql("SELECT connector_account FROM payments WHERE id = '%s'" % r.json["id"]),
                             "acct-c")
        self.env.cli(["merchant", "account", "add", "mer_b", "--connector", "BANCO_X", "--account", "acct-b",
                      "-c", self.env.config])

    def test_7_removed_account_is_gone_after_reload(self):
        os.unlink(os.path.join(self.env.cred_dir, "banco_x", "acct-b.cfg.enc"))
        self.env.reload()
        self.assertNotIn(("BANCO_X", "acct-b"), self.accounts()[0])
        sent = self.sim_pay_requests()
        r = self.pay_b()
        self.assertEqual((r.status, r.json["error"]["code"]), (503, "connector_account_unavailable"))
        self.assertEqual(self.sim_pay_requests(), sent)
        r = self.env.cli(["merchant", "account", "remove", "mer_b", "--connector", "BANCO_X", "-c", self.env.config])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.pay_b()
        self.assertEqual((r.status, r.json["error"]["code"]), (422, "connector_not_configured"))
        self.assertEqual(self.env.pay().status, 201)


if __name__ == "__main__":
    unittest.main(verbosity=2)
