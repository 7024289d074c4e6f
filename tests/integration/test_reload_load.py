"""20 reloads with plugin swaps under a steady stream of payments and webhooks.

Every request must get a correct answer: zero connection errors, zero 5xx.
Half the clients use keep-alive connections (they must be closed cleanly by
draining workers, never reset), half open a connection per request. The
stream is bounded: it ends when the reloads are done (or after 120 s).
"""
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Env  # noqa: E402

ECHO_SECRET = "echo_" + uuid.uuid4().hex
RELOADS = 20
CLIENTS = 4


def install(env, name):
    with open(os.path.join(BUILD, "fixtures", name + ".so"), "rb") as f:
        data = f.read()
    with open(os.path.join(env.plugin_dir, "echo_pay.so"), "wb") as f:
        f.write(data)


class Client(threading.Thread):
    def __init__(self, env, keep_alive, stop):
        super().__init__(daemon=True)
        self.env, self.keep_alive, self.stop = env, keep_alive, stop
        self.counts = {"requests": 0, "ok": 0, "wrong": 0, "5xx": 0, "connection_errors": 0}
        self.problems = []
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        if self.conn is None or not self.keep_alive:
            if self.conn:
                self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.env.port, timeout=30)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.counts["requests"] += 1
        try:
            self.conn.request(method, path, data, headers or {})
            r = self.conn.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.counts["connection_errors"] += 1
            self.problems.append("%s %s: %r" % (method, path, e))
            self.conn.close()
            self.conn = None
            return None, None
        if not self.keep_alive:
            self.conn.close()
        if r.status >= 500:
            self.counts["5xx"] += 1
            self.problems.append("%s %s: %d %s" % (method, path, r.status, raw[:200]))
        return r.status, json.loads(raw) if raw else None

    def check(self, ok, what):
        if ok:
            self.counts["ok"] += 1
        else:
            self.counts["wrong"] += 1
            self.problems.append(what)

    def run(self):
        auth = self.env.auth()
        i = 0
        while not self.stop.is_set():
            i += 1
            connector = "ECHO_PAY" if i % 2 else "BANCO_X"
            # Banco X amounts end in 77: no webhook, so the payment stays pending.
            amount = 1000 + i % 90 if connector == "ECHO_PAY" else 77077  # never ..99 (refused)
            status, body = self.request("POST", "/v1/payments",
                                        {"amount": amount, "currency": "ARS", "connector": connector}, auth)
            if status is None:
                continue
            self.check(status == 201 and body["status"] == "pending", "payment %s: %s %s" % (connector, status, body))
            if status != 201:
                continue
            pid = body["id"]
            if connector == "ECHO_PAY":
                ev = json.dumps({"event": "e-" + pid, "payment": pid, "result": "paid"}).encode()
                sig = hmac.new(ECHO_SECRET.encode(), ev, hashlib.sha256).hexdigest()
                status, body = self.request("POST", "/webhooks/echopay", ev,
                                            {"X-Echo-Signature": sig, "Content-Type": "application/json"})
                if status is not None:
                    self.check(status == 200 and body["result"] == "applied", "webhook: %s %s" % (status, body))
            status, body = self.request("GET", "/v1/payments/" + pid, None, auth)
            if status is not None:
                want = "succeeded" if connector == "ECHO_PAY" else "pending"
                self.check(status == 200 and body["status"] == want, "get: %s %s" % (status, body))
        if self.conn:
            self.conn.close()


class ReloadUnderLoad(unittest.TestCase):
    def test_twenty_reloads_under_traffic(self):
        env = Env()
        stop = threading.Event()
        clients = []
        try:
            env.add_plugin("echo_pay", {"ECHOPAY_SECRET": ECHO_SECRET})
            env.reload()
            clients = [Client(env, keep_alive=(n % 2 == 0), stop=stop) for n in range(CLIENTS)]
            for c in clients:
                c.start()
            started = time.time()
            for n in range(RELOADS):
                install(env, "echo_pay_v2" if n % 2 == 0 else "echo_pay")
                env.reload()
                self.assertLess(time.time() - started, 120, "reloads took too long")
                time.sleep(0.1)
            stop.set()
            for c in clients:
                c.join(60)
            totals = {k: sum(c.counts[k] for c in clients) for k in clients[0].counts}
            print("reload under load: %d reloads, %s" % (RELOADS, totals), file=sys.stderr)
            problems = [p for c in clients for p in c.problems]
            self.assertEqual(problems, [], problems[:10])
            self.assertEqual(totals["connection_errors"], 0)
            self.assertEqual(totals["5xx"], 0)
            self.assertEqual(totals["wrong"], 0)
            self.assertGreater(totals["ok"], RELOADS * 5, "the stream was too thin to prove anything")
            self.assertNotIn("killed by signal", env.log())
        finally:
            stop.set()
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
