"""20 reloads with plugin swaps under a steady stream of payments (keyed and
not) and webhooks.

Every request must get a correct answer: zero connection errors, zero 5xx.
Half the clients use keep-alive connections (they must be closed cleanly by
draining workers, never reset), half open a connection per request; one more
keep-alive client sends nothing but keyed POSTs and their replays. The
stream is bounded: it ends when the reloads are done (or after 120 s).
"""
import hashlib
import hmac
import http.client
import json
import os
import signal
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
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
    def __init__(self, env, keep_alive, stop, keyed_only=False):
        super().__init__(daemon=True)
        self.env, self.keep_alive, self.stop, self.keyed_only = env, keep_alive, stop, keyed_only
        self.counts = {"requests": 0, "ok": 0, "wrong": 0, "5xx": 0, "connection_errors": 0}
        self.problems = []
        self.conn = None
        self.replayed = False  # the last answer carried Idempotent-Replayed: true

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
        harness.check_exchange(method, self.env.url + path, data, headers or {}, r.status, raw, dict(r.getheaders()))
        self.replayed = r.getheader("Idempotent-Replayed") == "true"
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
            connector = "ECHO_PAY" if i % 2 and not self.keyed_only else "BANCO_X"
            # Banco X amounts end in 77: no webhook, so the payment stays pending.
            amount = 1000 + i % 90 if connector == "ECHO_PAY" else 77077  # never ..99 (refused)
            # Banco X payments carry an Idempotency-Key and are sent twice:
            # the keyed 201 and its replay are answered like every other reply.
            req = {"amount": amount, "currency": "ARS", "connector": connector}
            headers = auth if connector == "ECHO_PAY" else dict(auth, **{"Idempotency-Key": uuid.uuid4().hex})
            status, body = self.request("POST", "/v1/payments", req, headers)
            if status is None:
                continue
            self.check(status == 201 and body["status"] == "pending", "payment %s: %s %s" % (connector, status, body))
            if status != 201:
                continue
            pid = body["id"]
            if connector == "BANCO_X":
                status, again = self.request("POST", "/v1/payments", req, headers)
                if status is not None:
                    self.check(status == 201 and again == body and self.replayed,
                               "replay: %s %s (first %s)" % (status, again, body))
                if self.keyed_only:
                    continue  # nothing but keyed POSTs on this connection
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
            clients.append(Client(env, keep_alive=True, stop=stop, keyed_only=True))
            for c in clients:
                c.start()
            started = time.time()
            for n in range(RELOADS):
                install(env, "echo_pay_v2" if n % 2 == 0 else "echo_pay")
                env.reload()
                self.assertLess(time.time() - started, 120, "reloads took too long")
                time.sleep(0.1)
            # Keep the stream going until every old generation has drained and
            # exited: a drain that ends under traffic must close, not reset.
            old_workers = env.workers * (env.generation - 1)
            deadline = time.time() + 20
            while env.log().count("worker stopped: generation=") < old_workers and time.time() < deadline:
                time.sleep(0.1)
            self.assertEqual(env.log().count("worker stopped: generation="), old_workers,
                             "old generations did not exit")
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


class DrainingReplies(unittest.TestCase):
    """Issue 10 item 7: every reply a draining worker sends closes its
    keep-alive connection (Connection: close), so the client reconnects
    instead of being reset."""

    def test_every_kind_of_reply_closes_the_connection_while_draining(self):
        env = Env(workers=1)
        try:
            auth = env.auth()
            pay = json.dumps({"amount": 1050, "currency": "ARS", "connector": "BANCO_X"}).encode()
            keyed = dict(auth, **{"Idempotency-Key": "drain-" + uuid.uuid4().hex})
            kinds = {
                "keyed POST /v1/payments": ("POST", "/v1/payments", pay, keyed),
                "GET /metrics": ("GET", "/metrics", None, {}),
                "GET /healthz": ("GET", "/healthz", None, {}),
                "GET /v1/connectors": ("GET", "/v1/connectors", None, {}),
                "404": ("GET", "/nope", None, {}),
            }
            conns = {}
            admin = {"GET /metrics", "GET /v1/connectors"}  # served on the admin listener
            for name, (method, path, body, headers) in kinds.items():
                port = env.admin_port if name in admin else env.port
                conns[name] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conns[name].request(method, path, body, headers)
                r = conns[name].getresponse()
                r.read()
                self.assertLess(r.status, 500, name)
            # Every connection is held by a generation-1 worker; reload while
            # each keeps sending on its own connection.
            env.host.send_signal(signal.SIGHUP)
            closed, errors = set(), []
            deadline = time.time() + 15
            while len(closed) + len(errors) < len(kinds) and time.time() < deadline:
                for name, (method, path, body, headers) in kinds.items():
                    if name in closed or any(e[0] == name for e in errors):
                        continue
                    try:
                        conns[name].request(method, path, body, headers)
                        r = conns[name].getresponse()
                        raw = r.read()
                    except (OSError, http.client.HTTPException) as e:
                        errors.append((name, repr(e)))
                        continue
                    self.assertLess(r.status, 500, name)
                    if name not in admin:
                        harness.check_exchange(method, env.url + path, body, headers, r.status, raw,
                                               dict(r.getheaders()))
                    if (r.getheader("Connection") or "").lower() == "close":
                        closed.add(name)
                        conns[name].close()
                time.sleep(0.05)
            self.assertEqual(errors, [], "a draining worker reset these instead of closing them")
            self.assertEqual(closed, set(kinds), "these never got Connection: close")
            self.assertIn("generation 2 serving", env.log())
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
