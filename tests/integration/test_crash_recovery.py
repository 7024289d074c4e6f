"""kill -9 under load: 500 payments in flight from 20 clients, the host
SIGKILLed three times at random moments and restarted. Afterwards every
payment reaches its final state through the reconciler and the bank holds
exactly one payment per Pagoflex payment."""
import os
import queue
import random
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, stable_port  # noqa: E402

PAYMENTS = 500
CLIENTS = 20
KILLS = 3
CONFIG = """
bank_timeout_ms = 1000;
reconcile_interval_ms = 100;
retry_base_ms = 200;
retry_max_ms = 1000;
webhook_grace_s = 2;
recover_after_ms = 1500;
reconcile_lease_ms = 3000;
idempotency_wait_ms = 2000;
idempotency_stale_ms = 1500;
payment_deadline_s = 120;
"""
# amount % 100 -> final state
EXPECT = {50: "succeeded", 13: "failed", 55: "succeeded", 77: "succeeded", 99: "failed"}


class CrashRecovery(unittest.TestCase):
    def test_kill9_three_times_under_load(self):
        random.seed()
        # The host's port is free between a kill and the restart: keep it out
        # of the range other tests draw their ports from.
        env = Env(extra_config=CONFIG, bancox={"BANCOX_TIMEOUT_MS": "2000"}, port=stable_port())
        try:
            self.run_load(env)
        finally:
            env.close()

    def restart(self, env):
        for attempt in range(20):
            try:
                env.start_host()
                return
            except RuntimeError:  # e.g. the port is still held for a moment
                if attempt == 19:
                    print(env.log()[-2000:])
                    raise
                time.sleep(0.25)

    def run_load(self, env):
        jobs = queue.Queue()
        suffixes = sorted(EXPECT)
        for i in range(PAYMENTS):
            jobs.put(("crash-" + uuid.uuid4().hex, (i + 10) * 100 + suffixes[i % len(suffixes)]))
        results = {}
        lock = threading.Lock()
        stop_at = time.time() + 120
        stop = [False]
        retries = [0]

        def client():
            while True:
                try:
                    key, amount = jobs.get_nowait()
                except queue.Empty:
                    return
                while time.time() < stop_at and not stop[0]:
                    try:
                        r = env.pay_idem(key, amount=amount, timeout=10)
                    except OSError:
                        r = None  # connection refused or cut by the kill
                    if r is not None and r.status == 201:
                        with lock:
                            results[key] = (r.json["id"], amount)
                        break
                    if r is not None and r.status not in (409, 503):
                        raise AssertionError("unexpected answer %r" % r)
                    with lock:
                        retries[0] += 1
                    time.sleep(0.2)

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            for k in range(KILLS):
                time.sleep(random.uniform(0.3, 1.0))
                killed = env.kill_host_hard()
                self.assertGreater(killed, 0, "no worker process found to kill")
                self.restart(env)
        except BaseException:
            stop[0] = True
            raise
        finally:
            for t in threads:
                t.join()
        self.assertEqual(len(results), PAYMENTS, "clients gave up")

        deadline = time.time() + 60
        open_count = None
        while time.time() < deadline:
            open_count = int(env.sql("SELECT count(*) FROM payments WHERE state NOT IN ('succeeded', 'failed')"))
            if open_count == 0:
                break
            time.sleep(0.5)
        states = dict(line.split("|") for line in env.sql("SELECT state, count(*) FROM payments GROUP BY state").split())
        print("kill -9 x%d: %d payments, %d client retries, states %s" % (KILLS, PAYMENTS, retries[0], states))
        self.assertEqual(open_count, 0, "payments still open: %s" % states)
        self.assertEqual(env.sql("SELECT count(*) FROM payments"), str(PAYMENTS))
        self.assertEqual(env.sql("SELECT count(DISTINCT payment_id) FROM idempotency_keys"), str(PAYMENTS))

        rows = env.sql("SELECT id, amount, state, coalesce(provider_reference_id, '-') FROM payments").split()
        bank_one = bank_none = 0
        for row in rows:
            pid, amount, state, ref = row.split("|")
            self.assertEqual(state, EXPECT[int(amount) % 100], row)
            sim = env.sim_refs(pid)
            self.assertLessEqual(sim["count"], 1, row)
            if ref != "-":
                self.assertEqual(sim["ids"], [ref], row)
            if sim["count"] == 1:
                bank_one += 1
            else:
                bank_none += 1
        touched = env.sql("SELECT count(DISTINCT payment_id) FROM payment_history WHERE source IN ('reconciler', 'sync')")
        print("settled by the reconciler (re-send or sync): %s payments" % touched)
        print("bank side: %d payments with exactly one bank payment, %d the bank never saw, 0 doubled"
              % (bank_one, bank_none))
        self.assertEqual(bank_one, PAYMENTS)  # every amount here reaches the bank eventually


if __name__ == "__main__":
    unittest.main(verbosity=2)
