"""Three pagoflexd on one PostgreSQL; the simulator delivers every webhook to
all three at once (--webhook-fanout): each event moves its payment once."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

PAYMENTS = 30


class ThreeHosts(unittest.TestCase):
    def test_fanned_out_webhooks_apply_once(self):
        env = Env(extra_hosts=2, sim_args=["--duplicate-rate", "0.3"])
        try:
            urls = [env.url] + env.start_extra_hosts()
            ids = []
            for i in range(PAYMENTS):
                amount = (i + 10) * 100 + (13 if i % 3 == 0 else 50)
                r = http("POST", urls[i % 3] + "/v1/payments",
                         {"amount": amount, "currency": "ARS", "connector": "BANCO_X"}, env.auth())
                self.assertEqual(r.status, 201, r)
                ids.append(r.json["id"])
            for pid in ids:
                env.wait_status(pid, {"succeeded", "failed"}, timeout=20)
            time.sleep(0.5)  # let late fan-out copies arrive
            stats = env.sim_stats()
            events = int(env.sql("SELECT count(*) FROM webhook_events"))
            moves = int(env.sql("SELECT count(*) FROM payment_history WHERE source = 'webhook'"))
            doubled = env.sql("SELECT count(*) FROM (SELECT detail FROM payment_history WHERE source = 'webhook'"
                              " GROUP BY detail HAVING count(*) > 1) d")
            print("3 hosts: %d payments, %d webhook deliveries, %d events stored, %d transitions by webhook"
                  % (PAYMENTS, stats["webhooks_delivered"], events, moves))
            self.assertEqual(events, PAYMENTS)
            self.assertEqual(moves, PAYMENTS)
            self.assertEqual(doubled, "0")
            self.assertGreaterEqual(stats["webhooks_delivered"], 3 * PAYMENTS)
            self.assertEqual(env.sql("SELECT count(*) FROM webhook_events WHERE NOT applied"), "0")
            self.assertEqual(env.sql("SELECT count(*) FROM payment_history h JOIN webhook_events e"
                                     " ON e.event_id = h.detail AND h.source = 'webhook'"), str(PAYMENTS))
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
