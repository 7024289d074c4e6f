"""PostgreSQL stopped under the host: 503 with a JSON error, then recovery by itself."""
import os
import subprocess
import sys
import time
import unittest

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
            self.assertEqual(env.get(before.json["id"]).status, 200)
            env.wait_status(before.json["id"], {"succeeded"})
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
