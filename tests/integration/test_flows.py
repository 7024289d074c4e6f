"""Issue 11: the payment lifecycle through plugins.

So far: plugins built for the frozen ABI 1.0 and 1.1 headers load in this
host and serve create (and, 1.1, status sync) through the host's adapter
unchanged; /v1/connectors names each connector's flows.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

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
               for c in http("GET", self.env.url + "/v1/connectors").json["connectors"]}
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


if __name__ == "__main__":
    unittest.main()
