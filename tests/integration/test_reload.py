"""Hot reload: SIGHUP adds, removes and upgrades connectors; a broken
replacement keeps the last good version serving; overwriting a loaded .so in
place crashes nothing; `pagoflex reload` and `pagoflex status` work."""
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Env, http  # noqa: E402

ECHO_SECRET = "echo_" + uuid.uuid4().hex


def fixture(name):
    return os.path.join(BUILD, "fixtures", name + ".so")


def install(env, src, dest_name="echo_pay"):
    """cp semantics: write over the existing file in place (same inode)."""
    with open(src, "rb") as f:
        data = f.read()
    with open(os.path.join(env.plugin_dir, dest_name + ".so"), "wb") as f:
        f.write(data)


def echo_webhook(env, pid, result="paid"):
    body = json.dumps({"event": "e-" + uuid.uuid4().hex, "payment": pid, "result": result}).encode()
    sig = hmac.new(ECHO_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return http("POST", env.url + "/webhooks/echopay", body, {"X-Echo-Signature": sig})


class Reload(unittest.TestCase):
    def setUp(self):
        self.env = Env()

    def tearDown(self):
        self.env.close()

    def test_add_upgrade_break_and_remove(self):
        env = self.env
        self.assertEqual(sorted(env.connectors()), ["BANCO_X"])
        self.assertEqual(env.pay(amount=100, currency="EUR", connector="ECHO_PAY").json["error"]["code"],
                         "unknown_connector")

        # Add: drop in the .so and its credentials, SIGHUP.
        env.add_plugin("echo_pay", {"ECHOPAY_SECRET": ECHO_SECRET})
        gen = env.reload()
        c = env.connectors()
        self.assertEqual(c["ECHO_PAY"]["version"], "0.3.0")
        self.assertEqual(c["ECHO_PAY"]["generation"], gen)
        self.assertIsNone(c["ECHO_PAY"]["last_error"])
        p = env.pay(amount=100, currency="EUR", connector="ECHO_PAY")
        self.assertEqual(p.status, 201, p)
        self.assertEqual(http("GET", env.url + "/healthz").json["generation"], gen)
        metrics = http("GET", env.admin_url + "/metrics").raw.decode()
        self.assertRegex(metrics, r"pagoflex_reloads_total(\{[^}]*\})? 1\n")

        # Upgrade: overwrite the file in place with 0.4.0.
        install(env, fixture("echo_pay_v2"))
        env.reload()
        c = env.connectors()
        self.assertEqual(c["ECHO_PAY"]["version"], "0.4.0")
        self.assertEqual(c["ECHO_PAY"]["sha256"], hashlib.sha256(open(fixture("echo_pay_v2"), "rb").read()).hexdigest())
        self.assertEqual(echo_webhook(env, p.json["id"]).status, 200)
        self.assertEqual(env.get(p.json["id"]).json["status"], "succeeded")

        # A broken replacement: the last good version (0.4.0) keeps serving, with the reason.
        install(env, fixture("bad_magic"))
        env.reload()
        c = env.connectors()
        self.assertEqual(c["ECHO_PAY"]["version"], "0.4.0")
        self.assertIn("field=magic", c["ECHO_PAY"]["last_error"])
        self.assertIn("last good version", env.log())
        self.assertEqual(env.pay(amount=200, currency="EUR", connector="ECHO_PAY").status, 201)

        # A replacement whose init fails: same.
        install(env, fixture("init_fails"))
        env.reload()
        c = env.connectors()
        self.assertEqual(c["ECHO_PAY"]["version"], "0.4.0")
        self.assertIn("field=init", c["ECHO_PAY"]["last_error"])

        # Remove: the connector is gone; its webhooks 404.
        os.unlink(os.path.join(env.plugin_dir, "echo_pay.so"))
        env.reload()
        self.assertEqual(sorted(env.connectors()), ["BANCO_X"])
        r = env.pay(amount=300, currency="EUR", connector="ECHO_PAY")
        self.assertEqual((r.status, r.json["error"]["code"]), (422, "unknown_connector"))
        self.assertEqual(echo_webhook(env, p.json["id"]).status, 404)
        # Banco X served throughout.
        self.assertEqual(env.pay(amount=1000).status, 201)

    def test_new_plugin_that_fails_is_listed_as_rejected(self):
        env = self.env
        shutil.copy(fixture("abi_major2"), os.path.join(env.plugin_dir, "abi_major2.so"))
        env.reload()
        body = http("GET", env.admin_url + "/v1/connectors").json
        self.assertEqual(sorted(c["key"] for c in body["connectors"]), ["BANCO_X"])
        (rej,) = body["rejected"]
        self.assertTrue(rej["file"].endswith("abi_major2.so"))
        self.assertIn("field=abi_major expected=1 found=2", rej["error"])

    def test_overwrite_in_place_without_reload_crashes_nothing(self):
        env = self.env
        env.add_plugin("echo_pay", {"ECHOPAY_SECRET": ECHO_SECRET})
        env.reload()
        for src in ("echo_pay_v2", "bad_magic", "echo_pay"):
            install(env, fixture(src))
            for _ in range(10):
                self.assertEqual(env.pay(amount=100, currency="EUR", connector="ECHO_PAY").status, 201)
        self.assertNotIn("killed by signal", env.log())
        self.assertIsNone(env.host.poll())

    def test_reload_during_reload_is_merged(self):
        env = self.env
        env.add_plugin("echo_pay", {"ECHOPAY_SECRET": ECHO_SECRET})
        # A plugin whose init takes 0.5 s keeps each new generation starting
        # for that long, so these signals arrive during a reload.
        shutil.copy(fixture("slow_init"), os.path.join(env.plugin_dir, "slow_init.so"))
        for _ in range(15):
            env.host.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        # Reloads that arrive while a generation starts are queued and merged:
        # wait until the last generation started is the one serving.
        deadline = time.time() + 30
        while True:
            log = env.log()
            started = [int(g) for g in re.findall(r"starting generation (\d+)", log)]
            if started and "generation %d serving" % started[-1] in log:
                break
            self.assertLess(time.time(), deadline, log[-2000:])
            time.sleep(0.05)
        self.assertIn("queued", log)
        self.assertLessEqual(started[-1], 5, "signals during a reload were not merged")
        self.assertEqual(sorted(env.connectors()), ["BANCO_X", "ECHO_PAY", "SLOW"])
        self.assertIsNone(env.host.poll())
        self.assertNotIn("killed by signal", log)
        env.generation = started[-1]

    def test_unknown_setting_refuses_the_reload(self):
        env = self.env
        with open(env.config, "a") as f:
            f.write("prot = 1;\n")
        env.host.send_signal(signal.SIGHUP)
        want = '%s:%d: unknown setting "prot"; did you mean "port"?' % (
            env.config, sum(1 for _ in open(env.config)))
        deadline = time.time() + 10
        while "keeps serving" not in env.log():
            self.assertLess(time.time(), deadline, env.log()[-1500:])
            time.sleep(0.05)
        self.assertIn("reload refused: " + want + "; generation 1 keeps serving", env.log())
        self.assertNotIn("starting generation 2", env.log())
        self.assertEqual(http("GET", env.url + "/healthz").json["generation"], 1)
        self.assertEqual(env.pay(amount=1000).status, 201)
        self.assertIsNone(env.host.poll())

    def test_cli_reload_and_status(self):
        env = self.env
        env.add_plugin("echo_pay", {"ECHOPAY_SECRET": ECHO_SECRET})
        out = env.cli(["reload", "-c", env.config])
        self.assertIn("reload", out.stdout + out.stderr)
        env.generation += 1
        deadline = time.time() + 20
        while "generation %d serving" % env.generation not in env.log():
            self.assertLess(time.time(), deadline, env.log()[-1500:])
            time.sleep(0.05)
        st = env.cli(["status", "-c", env.config])
        self.assertIn("ECHO_PAY", st.stdout)
        self.assertIn("generation", st.stdout)
        self.assertIn("database: ok", st.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
