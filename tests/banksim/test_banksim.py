#!/usr/bin/env python3
"""Behaviour tests for banksim, the Banco X simulator (banco_x_api.md).

Usage: test_banksim.py /path/to/banksim

Starts banksim on 127.0.0.1 port 0 (--port-file), runs webhook receivers on
127.0.0.1 (http.server in threads) and checks the contract and the sandbox
rules. Python 3 standard library only; everything is bounded in time.
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

BANKSIM = None  # set from argv in __main__
KEY = "test_api_key_123"
SECRET = "test_webhook_secret_456"
SECRET2 = "rotated_secret_789"
ID_RE = re.compile(r"^bx_[0-9a-z]{26}$")
EVT_RE = re.compile(r"^evt_[0-9a-z]{26}$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def verify_signature(header, body, secrets):
    """Returns True when a v1= entry of header is a valid HMAC for body under
    any of secrets and t= is within 300 s of now (as a receiver must)."""
    parts = [p.split("=", 1) for p in header.split(",")]
    ts = [v for k, v in parts if k == "t"]
    sigs = [v for k, v in parts if k == "v1"]
    if len(ts) != 1 or not sigs or abs(int(ts[0]) - time.time()) > 300:
        return False
    signed = ts[0].encode() + b"." + body
    for secret in secrets:
        want = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(want, s) for s in sigs):
            return True
    return False


class Receiver:
    """A webhook receiver. Paths decide its answer:
    /hooks/ok     200
    /hooks/flaky  500 for the first two attempts of each event, then 200
    /hooks/slow   waits 0.3 s, then 200
    Every request is recorded as a dict (path, headers, raw, json, at)."""

    def __init__(self):
        self.hooks = []
        self.cond = threading.Condition()
        self.flaky = {}
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    doc = json.loads(raw)
                except ValueError:
                    doc = None
                code = 200
                if self.path.startswith("/hooks/slow"):
                    time.sleep(0.3)
                if self.path.startswith("/hooks/flaky") and doc:
                    with recv.cond:
                        n = recv.flaky.get(doc.get("event_id"), 0)
                        recv.flaky[doc.get("event_id")] = n + 1
                    code = 500 if n < 2 else 200
                with recv.cond:
                    recv.hooks.append({"path": self.path, "headers": dict(self.headers),
                                       "raw": raw, "json": doc, "at": time.monotonic(),
                                       "code": code})
                    recv.cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def for_tx(self, tx_id):
        with self.cond:
            return [h for h in self.hooks if h["json"] and h["json"].get("tx_id") == tx_id]

    def wait_for(self, tx_id, count=1, timeout=5.0):
        """Waits until count webhooks for tx_id arrived; returns them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [h for h in self.hooks if h["json"] and h["json"].get("tx_id") == tx_id]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self.cond.wait(left)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Sim:
    """One banksim process on a free loopback port."""

    def __init__(self, *extra):
        self.dir = tempfile.TemporaryDirectory(prefix="banksim-test-")
        port_file = os.path.join(self.dir.name, "port")
        self.log_path = os.path.join(self.dir.name, "log")
        self.log = open(self.log_path, "wb")
        args = [BANKSIM, "--port", "0", "--port-file", port_file, "--api-key", KEY,
                "--secret", SECRET, "--seed", "7", "--webhook-backoff-ms", "100"] + list(extra)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("banksim did not start: " + self.read_log())
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.base = "http://127.0.0.1:%d" % self.port

    def read_log(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, parsed JSON body)."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def pay(self, amount, ref, callback, key=None, auth=KEY, **fields):
        body = {"amount": amount, "currency": "ARS", "ref": ref, "callback_url": callback}
        body.update(fields)
        headers = {}
        if auth is not None:
            headers["Authorization"] = "Bearer " + auth
        if key is not False:
            headers["Idempotency-Key"] = key or ref
        return self.request("POST", "/pay", body, headers)

    def get_pay(self, tx_id, auth=KEY):
        return self.request("GET", "/pay/" + tx_id, headers={"Authorization": "Bearer " + auth})

    def count(self, ref):
        status, doc = self.request("GET", "/_sim/payments?ref=" + ref)
        assert status == 200 and doc["ref"] == ref and len(doc["ids"]) == doc["count"], doc
        return doc["count"]

    def stats(self):
        return self.request("GET", "/_sim/stats")[1]

    def config(self, **knobs):
        return self.request("POST", "/_sim/config", knobs)

    def stop(self):
        """SIGTERM; returns the exit code (bounded wait)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "hung"
        finally:
            self.log.close()
            self.dir.cleanup()


_counter = [0]


def fresh_ref(tag):
    _counter[0] += 1
    return "pf_%s_%d_%d" % (tag, os.getpid(), _counter[0])


class SimCase(unittest.TestCase):
    SIM_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.recv = Receiver()
        cls.sim = Sim(*cls.SIM_ARGS)

    @classmethod
    def tearDownClass(cls):
        rc = cls.sim.stop()
        cls.recv.close()
        if rc != 0:
            raise AssertionError("banksim exited with %r on SIGTERM, expected 0" % rc)

    def hook(self, path="/hooks/ok"):
        return self.recv.base + path


class ContractTest(SimCase):
    SIM_ARGS = ("--webhook-delay-ms", "300", "--timeout-ms", "400")

    def test_auth_missing_or_wrong_key_is_401(self):
        for auth in (None, "wrong"):
            status, doc = self.sim.pay(1050, fresh_ref("auth"), self.hook(), auth=auth)
            self.assertEqual((status, doc), (401, {"error": "unauthorized"}))
        status, doc = self.sim.get_pay("bx_" + "0" * 26, auth="wrong")
        self.assertEqual((status, doc), (401, {"error": "unauthorized"}))

    def test_bad_bodies_are_422_naming_the_field(self):
        ref = fresh_ref("bad")
        cases = [
            ({"amount": 0}, "amount"), ({"amount": -5}, "amount"),
            ({"amount": "10"}, "amount"), ({"amount": 1.5}, "amount"),
            ({"currency": "EUR"}, "currency"), ({"currency": None}, "currency"),
            ({"ref": None}, "ref"), ({"callback_url": None}, "callback_url"),
            ({"description": "x" * 141}, "description"),
        ]
        for change, field in cases:
            body = {"amount": 1050, "currency": "ARS", "ref": ref, "callback_url": self.hook()}
            body.update(change)
            body = {k: v for k, v in body.items() if v is not None}
            status, doc = self.sim.request("POST", "/pay", body, {
                "Authorization": "Bearer " + KEY, "Idempotency-Key": ref})
            self.assertEqual(status, 422, change)
            self.assertIn(field, doc["error"], change)
        status, doc = self.sim.pay(1050, ref, self.hook(), key=False)
        self.assertEqual(status, 422)
        self.assertIn("Idempotency-Key", doc["error"])
        status, doc = self.sim.request("POST", "/pay", b"{not json", {
            "Authorization": "Bearer " + KEY, "Idempotency-Key": ref})
        self.assertEqual(status, 422)
        self.assertEqual(self.sim.count(ref), 0)
        status, doc = self.sim.pay(1050, ref, self.hook(), description="é" * 140)
        self.assertEqual(status, 200, doc)

    def test_ok_then_signed_approved_webhook(self):
        ref = fresh_ref("ok")
        status, doc = self.sim.pay(1050, ref, self.hook())
        self.assertEqual(status, 200)
        self.assertEqual(doc["status"], "OK")
        self.assertRegex(doc["id"], ID_RE)
        tx = doc["id"]
        self.assertEqual(self.sim.get_pay(tx), (200, {"id": tx, "ref": ref, "status": "PENDING"}))
        hooks = self.recv.wait_for(tx)
        self.assertEqual(len(hooks), 1)
        h = hooks[0]
        self.assertEqual(h["path"], "/hooks/ok")
        self.assertEqual(h["headers"]["Content-Type"], "application/json")
        self.assertTrue(verify_signature(h["headers"]["X-BancoX-Signature"], h["raw"], [SECRET]),
                        h["headers"]["X-BancoX-Signature"])
        self.assertFalse(verify_signature(h["headers"]["X-BancoX-Signature"], h["raw"] + b" ",
                                          [SECRET]))
        ev = h["json"]
        self.assertRegex(ev["event_id"], EVT_RE)
        self.assertRegex(ev["occurred_at"], RFC3339_RE)
        self.assertEqual({k: ev[k] for k in ("tx_id", "ref", "status", "amount", "currency")},
                         {"tx_id": tx, "ref": ref, "status": "APPROVED", "amount": 1050,
                          "currency": "ARS"})
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "APPROVED")

    def test_13_declined(self):
        ref = fresh_ref("d13")
        status, doc = self.sim.pay(2013, ref, self.hook(), currency="BRL")
        self.assertEqual((status, doc["status"]), (200, "OK"))
        hooks = self.recv.wait_for(doc["id"])
        self.assertEqual(hooks[0]["json"]["status"], "DECLINED")
        self.assertEqual(hooks[0]["json"]["currency"], "BRL")
        self.assertEqual(self.sim.get_pay(doc["id"])[1]["status"], "DECLINED")

    def test_55_transient_503_then_ok_creates_one_payment(self):
        ref = fresh_ref("t55")
        status, doc = self.sim.pay(1055, ref, self.hook())
        self.assertEqual((status, doc), (503, {"error": "unavailable"}))
        self.assertEqual(self.sim.count(ref), 0, "a 503 must not create a bank-side payment")
        status, doc = self.sim.pay(1055, ref, self.hook())
        self.assertEqual((status, doc["status"]), (200, "OK"))
        status2, doc2 = self.sim.pay(1055, ref, self.hook())
        self.assertEqual((status2, doc2), (200, doc))
        self.assertEqual(self.sim.count(ref), 1)
        self.assertEqual(self.recv.wait_for(doc["id"])[0]["json"]["status"], "APPROVED")

    def test_77_and_99_send_no_webhook(self):
        ref77, ref99 = fresh_ref("n77"), fresh_ref("r99")
        status, doc77 = self.sim.pay(1077, ref77, self.hook())
        self.assertEqual((status, doc77["status"]), (200, "OK"))
        status, doc99 = self.sim.pay(1099, ref99, self.hook())
        self.assertEqual(status, 200)
        self.assertEqual(doc99["status"], "REJECTED")
        self.assertEqual(doc99["reason"], "insufficient funds")
        self.assertRegex(doc99["id"], ID_RE)
        time.sleep(1.0)  # webhook delay is 0.3 s
        self.assertEqual(self.recv.for_tx(doc77["id"]), [])
        self.assertEqual(self.recv.for_tx(doc99["id"]), [])
        self.assertEqual(self.sim.get_pay(doc77["id"]),
                         (200, {"id": doc77["id"], "ref": ref77, "status": "APPROVED"}))
        self.assertEqual(self.sim.get_pay(doc99["id"])[1]["status"], "DECLINED")

    def test_same_idempotency_key_returns_first_answer(self):
        ref = fresh_ref("idem")
        before = self.sim.stats()
        first = self.sim.pay(1050, ref, self.hook())
        again = self.sim.pay(1050, ref, self.hook())
        self.assertEqual(first[0], 200)
        self.assertEqual(again, first)
        self.assertEqual(self.sim.count(ref), 1)
        other = self.sim.pay(1050, ref, self.hook(), key=ref + "-other")
        self.assertNotEqual(other[1]["id"], first[1]["id"])
        self.assertEqual(self.sim.count(ref), 2)
        after = self.sim.stats()
        self.assertEqual(after["payments"] - before["payments"], 2)
        self.assertEqual(after["pay_requests"] - before["pay_requests"], 3)
        self.assertEqual(after["idempotent_replays"] - before["idempotent_replays"], 1)

    def test_unknown_payment_is_404(self):
        # The contract's own body; any other 404 is not Banco X speaking.
        self.assertEqual(self.sim.get_pay("bx_" + "z" * 26), (404, {"error": "not_found"}))
        self.assertEqual(self.sim.request("GET", "/v2/pay/x"), (404, {"error": "not found"}))

    def test_fail_status_answers_401_like_a_rotated_key(self):
        ref = fresh_ref("f401")
        self.assertEqual(self.sim.config(fail_status=200)[0], 422)
        self.sim.config(fail_rate=1.0, fail_status=401)
        try:
            self.assertEqual(self.sim.pay(1050, ref, self.hook()), (401, {"error": "unauthorized"}))
        finally:
            self.sim.config(fail_rate=0.0, fail_status=503)
        self.assertEqual(self.sim.count(ref), 0, "nothing created")

    def test_requests_and_overlaps_counted_per_key(self):
        ref = fresh_ref("ovl")
        self.sim.config(latency_ms=300)
        try:
            threads = [threading.Thread(target=self.sim.pay, args=(1050, ref, self.hook()))
                       for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.sim.pay(1050, ref, self.hook())  # after both were answered
        finally:
            self.sim.config(latency_ms=0)
        doc = self.sim.request("GET", "/_sim/payments?ref=" + ref)[1]
        self.assertEqual((doc["count"], doc["requests"], doc["overlapping"]), (1, 3, 1), doc)

    def test_receiver_500_is_retried_until_2xx(self):
        before = self.sim.stats()
        status, doc = self.sim.pay(1050, fresh_ref("retry"), self.hook("/hooks/flaky"))
        self.assertEqual(status, 200)
        hooks = self.recv.wait_for(doc["id"], count=3)
        self.assertEqual([h["code"] for h in hooks], [500, 500, 200])
        self.assertEqual(len({h["json"]["event_id"] for h in hooks}), 1)
        time.sleep(0.5)  # a 2xx stops the retries
        self.assertEqual(len(self.recv.for_tx(doc["id"])), 3)
        after = self.sim.stats()
        self.assertGreaterEqual(after["webhooks_failed"] - before["webhooks_failed"], 2)
        self.assertGreaterEqual(after["webhooks_delivered"] - before["webhooks_delivered"], 1)

    def test_latency_via_config(self):
        status, cfg = self.sim.config(latency_ms=300)
        self.assertEqual((status, cfg["latency_ms"]), (200, 300))
        try:
            t0 = time.monotonic()
            status, _ = self.sim.pay(1050, fresh_ref("lat"), self.hook())
            self.assertEqual(status, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        finally:
            self.sim.config(latency_ms=0)
        self.assertEqual(self.sim.config(latency_ms=-1)[0], 422)
        self.assertEqual(self.sim.config(no_such_knob=1)[0], 422)

    def test_timeout_rate_creates_payment_but_answers_503_late(self):
        ref = fresh_ref("tmo")
        self.sim.config(timeout_rate=1.0)
        try:
            t0 = time.monotonic()
            status, doc = self.sim.pay(1050, ref, self.hook())
            self.assertEqual(status, 503)
            self.assertGreaterEqual(time.monotonic() - t0, 0.39)
        finally:
            self.sim.config(timeout_rate=0.0)
        self.assertEqual(self.sim.count(ref), 1, "the bank took it; the reply was lost")
        status, doc = self.sim.pay(1050, ref, self.hook())
        self.assertEqual(status, 200)
        self.assertEqual(self.sim.request("GET", "/_sim/payments?ref=" + ref)[1]["ids"],
                         [doc["id"]])


class WebhookFirstTest(SimCase):
    SIM_ARGS = ("--webhook-first",)

    def test_webhook_arrives_before_the_pay_answer(self):
        t0 = time.monotonic()
        status, doc = self.sim.pay(1050, fresh_ref("first"), self.hook("/hooks/slow"))
        answered = time.monotonic()
        self.assertEqual((status, doc["status"]), (200, "OK"))
        hooks = self.recv.for_tx(doc["id"])  # no waiting: it must be there
        self.assertEqual(len(hooks), 1)
        self.assertLess(hooks[0]["at"], answered)
        self.assertGreaterEqual(answered - t0, 0.29, "the answer waits for the receiver")
        self.assertEqual(self.sim.get_pay(doc["id"])[1]["status"], "APPROVED")


class DuplicateTest(SimCase):
    SIM_ARGS = ("--duplicate-rate", "1.0", "--webhook-delay-ms", "20", "--extra-secret", SECRET2)

    def test_every_webhook_delivered_twice_with_same_event_id(self):
        status, doc = self.sim.pay(1050, fresh_ref("dup"), self.hook())
        self.assertEqual(status, 200)
        hooks = self.recv.wait_for(doc["id"], count=2)
        self.assertEqual(len(hooks), 2)
        self.assertEqual(hooks[0]["json"]["event_id"], hooks[1]["json"]["event_id"])
        self.assertEqual(hooks[0]["raw"], hooks[1]["raw"])
        for h in hooks:  # rotation: both v1 entries verify
            sig = h["headers"]["X-BancoX-Signature"]
            self.assertEqual(sig.count("v1="), 2)
            self.assertTrue(verify_signature(sig, h["raw"], [SECRET]))
            self.assertTrue(verify_signature(sig, h["raw"], [SECRET2]))


class FanoutTest(unittest.TestCase):
    def test_each_webhook_goes_to_every_base_url(self):
        a, b = Receiver(), Receiver()
        sim = Sim("--webhook-fanout", a.base + "," + b.base + "/", "--webhook-delay-ms", "20")
        try:
            # callback_url's host is unused with fanout; only its path counts
            status, doc = sim.pay(1050, fresh_ref("fan"), "http://127.0.0.1:9/hooks/ok?x=1")
            self.assertEqual(status, 200)
            for r in (a, b):
                hooks = r.wait_for(doc["id"])
                self.assertEqual(len(hooks), 1)
                self.assertEqual(hooks[0]["path"], "/hooks/ok?x=1")
        finally:
            rc = sim.stop()
            a.close()
            b.close()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_banksim.py /path/to/banksim")
    BANKSIM = sys.argv.pop(1)
    unittest.main(verbosity=2)
