"""Crash isolation: a plugin that segfaults takes down only the worker it ran
in; the master logs the signal and replaces the worker at once; the payment
in flight stays stored; repeated crashes quarantine the plugin until the next
reload; other connectors keep serving throughout.

A crash resets the connections of requests in flight *in that worker* (no
process can hide its own death). The Banco X clients here do what a careful
payments client does with a request cut off: send it again with the same
Idempotency-Key until it gets its answer. Every one of their payments must
end up stored exactly once.
"""
import http.client
import json
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Env, http as http_call  # noqa: E402


def post_payment(env, body, key=None):
    """One attempt; (status, json) or (None, error) on a connection failure."""
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=30)
    headers = env.auth({"Idempotency-Key": key} if key else None)
    try:
        conn.request("POST", "/v1/payments", json.dumps(body).encode(), headers)
        r = conn.getresponse()
        raw = r.read()
        harness.check_exchange("POST", env.url + "/v1/payments", json.dumps(body).encode(), headers, r.status, raw,
                               dict(r.getheaders()))
        return r.status, json.loads(raw)
    except (OSError, http.client.HTTPException) as e:
        return None, e
    finally:
        conn.close()


def by_reference(env, ref):
    r = http_call("GET", env.url + "/v1/payments?limit=100&reference=" + ref, headers=env.auth())
    assert r.status == 200, r
    return r.json["data"]


class BancoXStream(threading.Thread):
    def __init__(self, env, stop):
        super().__init__(daemon=True)
        self.env, self.stop = env, stop
        self.refs, self.cut_off, self.errors = [], 0, []

    def run(self):
        while not self.stop.is_set():
            ref = "bx-" + uuid.uuid4().hex
            self.refs.append(ref)
            body = {"amount": 77077, "currency": "ARS", "connector": "BANCO_X", "reference": ref}
            deadline = time.time() + 30
            while True:
                status, answer = post_payment(self.env, body, key=ref)
                if status == 201:
                    break
                if status is None:
                    self.cut_off += 1
                elif status != 409:  # 409: the first attempt is still being answered
                    self.errors.append((status, answer))
                    break
                if time.time() > deadline:
                    self.errors.append(("gave up", ref))
                    break
                time.sleep(0.2)


class CrashIsolation(unittest.TestCase):
    def test_segfault_replaced_payment_kept_plugin_quarantined(self):
        # A key whose first attempt died with its worker is answered from the
        # stored payment after idempotency_stale_ms.
        env = Env(plugins=("banco_x", "crashy"),
                  extra_config="quarantine_after = 3;\nbank_timeout_ms = 500;\nidempotency_stale_ms = 1000;\nidempotency_wait_ms = 500;\n")
        stop = threading.Event()
        streams = [BancoXStream(env, stop) for _ in range(2)]
        try:
            for s in streams:
                s.start()
            time.sleep(0.3)

            # One crash: the worker dies on SIGSEGV and is replaced within a second.
            status, err = post_payment(env, {"amount": 1666, "currency": "ARS", "connector": "CRASHY",
                                             "reference": "crash-1"})
            self.assertIsNone(status, "the crashing request cannot get an answer")
            t0 = time.time()
            while env.log().count("worker ready: generation=1") < 3:
                self.assertLess(time.time() - t0, 1.0, "no replacement worker within a second")
                time.sleep(0.02)
            log = env.log()
            self.assertIn("killed by signal 11 (Segmentation fault)", log)
            self.assertIn("worker crash blamed on plugin crashy", log)
            self.assertEqual(http_call("GET", env.url + "/healthz").status, 200)
            restarts = http_call("GET", env.admin_url + "/metrics").raw.decode()
            self.assertRegex(restarts, r"pagoflex_worker_restarts_total(\{[^}]*\})? [1-9]")

            # The payment in flight was stored before the crash and is not lost.
            (kept,) = by_reference(env, "crash-1")
            self.assertIn(kept["status"], ("created", "processing"))
            self.assertEqual(kept["connector"], "CRASHY")

            # Repeated crashes quarantine the plugin: new workers do not load it.
            answers = []
            for i in range(12):
                status, body = post_payment(env, {"amount": 2666, "currency": "ARS", "connector": "CRASHY"})
                answers.append(status)
                if answers[-4:] == [422] * 4:
                    break
                time.sleep(0.3)  # let the master replace the worker
            self.assertEqual(answers[-4:], [422] * 4, answers)
            self.assertIn("plugin crashy quarantined after 3 worker crashes", env.log())
            self.assertIn("quarantined after repeated worker crashes", env.log())

            # Banco X served throughout; every payment of the stream exists exactly once.
            stop.set()
            for s in streams:
                s.join(60)
            refs = [r for s in streams for r in s.refs]
            self.assertEqual([e for s in streams for e in s.errors], [])
            for ref in refs:
                self.assertEqual(len(by_reference(env, ref)), 1, ref)
            print("crash isolation: %d Banco X payments during %d crashes, %d cut off and retried with their key"
                  % (len(refs), 1 + answers.count(None), sum(s.cut_off for s in streams)), file=sys.stderr)

            # A reload lifts the quarantine.
            env.reload()
            self.assertIn("CRASHY", env.connectors())
        finally:
            stop.set()
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
