"""Issue 13: the upgrade to merchants, on a database made by the host before them.

tests/fixtures/upgrade_pre_merchants/database.sql is a pg_dump of a
database made by pagoflex bf3da52 (schema version 9) through its own API
and CLI (make_fixture.py says how; manifest.json what it holds). It is
restored, its clock moved so it reads as made just now (idempotency keys
live, nothing old enough for the janitor), and today's host is started on
it: migration 10 runs, and nothing may be lost.
"""
import json
import os
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http, record_secret  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "upgrade_pre_merchants")
TABLES = ("payments", "refunds", "payment_history", "refund_history", "webhook_events", "api_keys",
          "idempotency_keys")


class UpgradeToMerchants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIXTURE, "manifest.json")) as f:
            cls.m = json.load(f)
        record_secret(cls.m["api_key"])
        record_secret(cls.m["revoked_key"])
        cls.env = Env(start_host=False, extra_config="reconcile_interval_ms = 100;\n")
        try:
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", cls.env.conninfo, "-f",
                            os.path.join(FIXTURE, "database.sql")], check=True, capture_output=True, text=True)
            cls.shift_clock()
            cls.before = {t: cls.env.sql("SELECT count(*) FROM %s" % t) for t in TABLES}
            cls.version_before = cls.env.sql("SELECT max(version) FROM schema_migrations")
            cls.env.start_host()
            # What the upgrade left, before any test adds to it.
            cls.after = {t: cls.env.sql("SELECT count(*) FROM %s" % t) for t in TABLES}
            cls.owners = {t: cls.env.sql("SELECT string_agg(DISTINCT merchant_id, ',') FROM %s" % t)
                          for t in ("payments", "refunds", "api_keys")}
            cls.scopes = cls.env.sql("SELECT string_agg(scope, ',' ORDER BY scope) FROM idempotency_keys")
        except Exception:
            cls.env.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def shift_clock(cls):
        """Move every timestamp by the fixture's age, in one transaction: the
        database as it stood when it was dumped, upgraded at that moment."""
        cols = cls.env.sql("SELECT table_name || '.' || column_name FROM information_schema.columns"
                           " WHERE table_schema = 'public' AND data_type = 'timestamp with time zone'"
                           " ORDER BY 1").split()
        by_table = {}
        for c in cols:
            t, col = c.split(".")
            by_table.setdefault(t, []).append(col)
        age = "(now() - '%s'::timestamptz)" % cls.m["made_at"]
        sql = "BEGIN;" + "".join("UPDATE %s SET %s;" % (t, ", ".join("%s = %s + %s" % (c, c, age) for c in cs))
                                 for t, cs in sorted(by_table.items())) + "COMMIT;"
        cls.env.sql(sql)

    def call(self, key, method, path, body=None, idem=None):
        h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        if idem:
            h["Idempotency-Key"] = idem
        return http(method, self.env.url + path, body, h)

    def test_fixture_is_from_before_merchants(self):
        self.assertEqual(self.m["schema_version"], 9)
        self.assertEqual(self.version_before, "9")
        with open(os.path.join(FIXTURE, "database.sql")) as f:
            dump = f.read()
        self.assertNotIn("merchant_id", dump)
        self.assertNotIn("CREATE TABLE public.merchants", dump)

    def test_migration_recorded_and_nothing_lost(self):
        self.assertEqual(self.env.sql("SELECT count(*) FROM schema_migrations WHERE version = 10"), "1")
        self.assertEqual(self.after, self.before)
        self.assertEqual(self.owners, {"payments": "mer_default", "refunds": "mer_default", "api_keys": "mer_default"})
        # Every live idempotency scope moved to the merchant, none left on a key's hash.
        self.assertEqual(self.scopes, "mer_default,mer_default POST /v1/refunds")

    def test_old_key_works_and_sees_its_old_payments(self):
        key, p, f = self.m["api_key"], self.m["payments"], self.m["refunds"]
        got = self.call(key, "GET", "/v1/payments/" + p["captured"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual((got.json["status"], got.json["amount"], got.json["amount_refunded"]),
                         ("succeeded", 5000, 1200))
        self.assertEqual(self.call(key, "GET", "/v1/payments/" + p["manual"]).json["status"], "requires_capture")
        events = self.call(key, "GET", "/v1/payments/%s/events" % p["captured"]).json["events"]
        self.assertEqual(events[-1]["to"], "succeeded")
        listed = self.call(key, "GET", "/v1/payments?reference=upgrade-order-1").json["data"]
        self.assertEqual([x["id"] for x in listed], [p["captured"]])
        refund = self.call(key, "GET", "/v1/refunds/" + f["of_captured"])
        self.assertEqual((refund.status, refund.json["status"], refund.json["amount"]), (200, "succeeded", 1200))
        refunds = self.call(key, "GET", "/v1/refunds?payment_id=" + p["captured"]).json["data"]
        self.assertEqual([x["id"] for x in refunds], [f["of_captured"]])
        self.assertEqual(self.call(self.m["revoked_key"], "GET", "/v1/payments/" + p["captured"]).status, 401)
        # The config's key acts for mer_default too.
        self.assertEqual(self.env.get(p["captured"]).status, 200)
        # The old key goes on taking payments, for mer_default. (The bank
        # simulator of this run does not know the fixture's bank ids, so the
        # old authorization is not captured here.)
        new = self.call(key, "POST", "/v1/payments", {"amount": 700, "currency": "ARS", "connector": "BANCO_X"})
        self.assertEqual(new.status, 201, new)
        self.assertEqual(self.env.sql("SELECT merchant_id FROM payments WHERE id = '%s'" % new.json["id"]),
                         "mer_default")
        rows = [line for line in self.env.cli(["apikey", "list", "-c", self.env.config]).stdout.splitlines()
                if key[:16] in line]
        self.assertEqual(len(rows), 1)
        self.assertIn("mer_default", rows[0])

    def test_retry_with_an_old_live_idempotency_key_answers_the_first_answer(self):
        key = self.m["api_key"]
        for req in self.m["idempotent_requests"]:
            payments = self.env.sql("SELECT count(*) FROM payments")
            refunds = self.env.sql("SELECT count(*) FROM refunds")
            r = self.call(key, "POST", req["path"], req["body"].encode(), idem=req["key"])
            self.assertEqual((r.status, r.json["id"]), (201, req["id"]), r)
            self.assertEqual(r.headers.get("Idempotent-Replayed"), "true", req)
            self.assertEqual(self.env.sql("SELECT count(*) FROM payments"), payments)
            self.assertEqual(self.env.sql("SELECT count(*) FROM refunds"), refunds)
            # The key is the old one, matched: another body is refused, not a new object.
            changed = req["body"].replace("100", "101").replace("2100", "2101").encode()
            other = self.call(key, "POST", req["path"], changed, idem=req["key"])
            self.assertEqual((other.status, other.json["error"]["code"]), (422, "idempotency_key_reused"), other)

    def test_a_new_merchant_sees_none_of_it(self):
        out = self.env.cli(["merchant", "create", "After the upgrade", "--json", "-c", self.env.config])
        key = record_secret(json.loads(out.stdout)["api_key"])
        # It pays through Banco X with the operator's account "default" (connector accounts).
        self.env.cli(["merchant", "account", "add", json.loads(out.stdout)["merchant"]["id"], "--connector",
                      "BANCO_X", "--account", "default", "-c", self.env.config])
        self.assertEqual(self.call(key, "GET", "/v1/payments/" + self.m["payments"]["captured"]).status, 404)
        self.assertEqual(self.call(key, "GET", "/v1/payments?reference=upgrade-order-1").json["data"], [])
        req = self.m["idempotent_requests"][0]
        mine = self.call(key, "POST", req["path"], req["body"].encode(), idem=req["key"])
        self.assertEqual(mine.status, 201, mine)
        self.assertNotEqual(mine.json["id"], req["id"])
        self.assertIsNone(mine.headers.get("Idempotent-Replayed"))
        fresh = self.call(key, "POST", "/v1/payments", {"amount": 100, "currency": "ARS", "connector": "BANCO_X"},
                          idem="after-%s" % uuid.uuid4().hex)
        self.assertEqual(fresh.status, 201, fresh)


if __name__ == "__main__":
    unittest.main()
