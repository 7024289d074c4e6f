"""A connector the host has never seen is served by dropping in its .so and credentials.

echo_pay (tests/fixtures/echo_pay) is built outside the host, carries its own
execute_request and its own webhook signature; nothing about it is compiled
into pagoflexd.
"""
import hashlib
import hmac
import json
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

ECHO_SECRET = "echo_" + uuid.uuid4().hex


class SecondConnector(unittest.TestCase):
    def test_dropped_in_connector_is_served(self):
        env = Env(start_host=False)
        try:
            env.add_plugin("echo_pay", {"ECHOPAY_SECRET": ECHO_SECRET})
            env.start_host()
            keys = sorted(c["key"] for c in http("GET", env.admin_url + "/v1/connectors").json["connectors"])
            self.assertEqual(keys, ["BANCO_X", "ECHO_PAY"])

            r = env.pay(amount=700, currency="EUR", connector="ECHO_PAY")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["status"], "pending")
            self.assertEqual(r.json["provider_reference_id"], "ep_" + r.json["id"])

            body = json.dumps({"event": "e1-" + r.json["id"], "payment": r.json["id"], "result": "paid"}).encode()
            sig = hmac.new(ECHO_SECRET.encode(), body, hashlib.sha256).hexdigest()
            bad = http("POST", env.url + "/webhooks/echopay", body, {"X-Echo-Signature": "0" * 64})
            self.assertEqual(bad.status, 401)
            ok = http("POST", env.url + "/webhooks/echopay", body, {"X-Echo-Signature": sig})
            self.assertEqual(ok.status, 200, ok)
            self.assertEqual(env.get(r.json["id"]).json["status"], "succeeded")
            # Banco X still works beside it.
            self.assertEqual(env.pay(amount=1000).status, 201)
        finally:
            env.close()

    def test_plugin_without_credentials_is_not_loaded_others_are(self):
        env = Env(start_host=False)
        try:
            env.add_plugin("echo_pay", creds={})  # no credentials file
            env.start_host()
            keys = [c["key"] for c in http("GET", env.admin_url + "/v1/connectors").json["connectors"]]
            self.assertEqual(keys, ["BANCO_X"])
            log = env.log()
            self.assertIn("plugin rejected", log)
            self.assertIn("echo_pay", log)
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
