"""PostgreSQL stopped under the host: 503 with a JSON error, then recovery by itself."""
import os
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"


def pg_ctl(*args):
    data = os.environ["PAGOFLEX_PG_DATA"]
    cmd = [PG_BIN + "/pg_ctl", "-D", data, "-w"] + list(args)
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, check=True, capture_output=True)


class PostgresOutage(unittest.TestCase):
    def test_503_while_down_then_recovers(self):
        env = Env()
        try:
            before = env.pay(amount=1200)
            self.assertEqual(before.status, 201, before)
            pg_ctl("-m", "fast", "stop")
            try:
                for _ in range(3):
                    r = env.pay(amount=1300)
                    self.assertEqual(r.status, 503, r)
                    self.assertEqual(r.json["error"]["code"], "database_unavailable")
                g = env.get(before.json["id"])
                self.assertEqual(g.status, 503, g)
                self.assertEqual(http("GET", env.url + "/healthz").status, 503)
                # the process is alive (never asks the database); it is not ready
                for base in (env.url, env.admin_url):
                    self.assertEqual(http("GET", base + "/livez").status, 200, base)
                    ready = http("GET", base + "/readyz")
                    self.assertEqual((ready.status, ready.json["database"]), (503, "unavailable"), base)
                self.assertIsNone(env.host.poll(), "pagoflexd died while PostgreSQL was down")
            finally:
                log = os.path.join(os.path.dirname(os.environ["PAGOFLEX_PG_DATA"]), "postgres.log")
                pg_ctl("-l", log, "start")
            deadline = time.time() + 20
            r = None
            while time.time() < deadline:
                r = env.pay(amount=1400)
                if r.status == 201:
                    break
                time.sleep(0.25)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(http("GET", env.url + "/readyz").status, 200)
            self.assertEqual(env.get(before.json["id"]).status, 200)
            env.wait_status(before.json["id"], {"succeeded"})
        finally:
            env.close()

    def test_outage_under_load_stays_consistent(self):
        """Clients keep paying while PostgreSQL is stopped for ~2 s and started
        again: every answer is a 201 or a JSON 503, the host survives, and every
        payment that was stored ends final with one bank-side payment."""
        env = Env(extra_config="bank_timeout_ms = 1000;\nreconcile_interval_ms = 100;\nretry_base_ms = 200;\n"
                                "retry_max_ms = 1000;\nrecover_after_ms = 1500;\nreconcile_lease_ms = 3000;\nwebhook_grace_s = 1;\n")
        counts = {"201": 0, "503": 0}
        bad = []
        stop = threading.Event()
        lock = threading.Lock()

        def client(n):
            i = 0
            while not stop.is_set():
                i += 1
                r = env.pay_idem("pg-%d-%d-%s" % (n, i, uuid.uuid4().hex[:8]), amount=100 * (n * 1000 + i) + 50,
                                 timeout=15)
                with lock:
                    if r.status == 201:
                        counts["201"] += 1
                    elif r.status == 503 and r.json and r.json["error"]["code"] == "database_unavailable":
                        counts["503"] += 1
                    else:
                        bad.append(r)
                time.sleep(0.02)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        try:
            for t in threads:
                t.start()
            time.sleep(1.0)
            pg_ctl("-m", "fast", "stop")
            try:
                time.sleep(2.0)
                self.assertIsNone(env.host.poll(), "pagoflexd died while PostgreSQL was down")
            finally:
                log = os.path.join(os.path.dirname(os.environ["PAGOFLEX_PG_DATA"]), "postgres.log")
                pg_ctl("-l", log, "start")
            time.sleep(2.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(bad, [])
        self.assertGreater(counts["503"], 0)
        self.assertGreater(counts["201"], 0)
        self.assertIsNone(env.host.poll())
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                if env.sql("SELECT count(*) FROM payments WHERE state NOT IN ('succeeded', 'failed')") == "0":
                    break
                time.sleep(0.3)
            rows = env.sql("SELECT id, state, coalesce(provider_reference_id, '-') FROM payments").split()
            print("PostgreSQL outage: %d x 201, %d x 503, %d payments stored" % (counts["201"], counts["503"], len(rows)))
            for row in rows:
                pid, state, ref = row.split("|")
                self.assertEqual(state, "succeeded", row)
                self.assertEqual(env.sim_refs(pid)["ids"], [ref], row)
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
