"""An answer is never sent before its write commits.

The bank takes 1.5 s to answer; while it does, PostgreSQL is stopped. The
bank's reply can then not be recorded, so the client must get 503 (with the
payment id, so it can look it up later), never a 201 claiming a state that
is not stored. After PostgreSQL returns, the stored payment is still there,
in the state the database last committed, and the reconciler settles it.
Stops and restarts the shared cluster: runs alone (RUN_SERIAL).
"""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env  # noqa: E402
from test_pg_outage import pg_ctl  # noqa: E402


class CommitBeforeAnswer(unittest.TestCase):
    def test_reply_waits_for_the_commit(self):
        env = Env(sim_args=["--latency-ms", "1500", "--no-webhooks", "--quiet"])
        try:
            answer = {}
            t = threading.Thread(target=lambda: answer.update(r=env.pay(amount=4242, reference="commit-1")))
            t.start()
            time.sleep(0.6)  # the row is stored; the bank call is in flight
            pg_ctl("-m", "fast", "stop")
            try:
                t.join(30)
                r = answer["r"]
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json["error"]["code"], "database_unavailable")
                self.assertIn("was sent to the bank", r.json["error"]["message"])
            finally:
                log = os.path.join(os.path.dirname(os.environ["PAGOFLEX_PG_DATA"]), "postgres.log")
                pg_ctl("-l", log, "start")
            deadline = time.time() + 30
            while time.time() < deadline:
                rows = env.sql("SELECT state FROM payments WHERE reference = 'commit-1'")
                if rows:
                    break
                time.sleep(0.2)
            self.assertIn(rows, ("created", "processing", "pending"),
                          "the stored payment must survive, in a state the database committed")
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
