#!/usr/bin/env python3
"""Behaviour tests for banksim, the Banco X simulator (banco_x_api.md).

Usage: test_banksim.py /path/to/banksim

Starts banksim on 127.0.0.1 port 0 (--port-file), runs webhook receivers on
127.0.0.1 (http.server in threads) and checks the contract and the sandbox
rules. Python 3 standard library only; everything is bounded in time.
"""
import base64
import hashlib
import hmac
import html.parser
import http.client
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
import urllib.parse
import urllib.request

BANKSIM = None  # set from argv in __main__
KEY = "test_api_key_123"
SECRET = "test_webhook_secret_456"
SECRET2 = "rotated_secret_789"
ID_RE = re.compile(r"^bx_[0-9a-z]{26}$")
RF_RE = re.compile(r"^rf_[0-9a-z]{26}$")
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

    def where(self, **match):
        """The webhooks whose JSON has every key=value of match."""
        with self.cond:
            return [h for h in self.hooks
                    if h["json"] and all(h["json"].get(k) == v for k, v in match.items())]

    def wait_where(self, count=1, timeout=5.0, **match):
        """Waits until count webhooks match (see where); returns them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [h for h in self.hooks
                       if h["json"] and all(h["json"].get(k) == v for k, v in match.items())]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self.cond.wait(left)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FormParser(html.parser.HTMLParser):
    """Collects the forms of a page: [{"action", "method", "fields": {name: value}}]."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": (a.get("method") or "get").lower(),
                               "fields": {}})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")

    def handle_data(self, data):
        self.text.append(data)


class Sim:
    """One banksim process on a free loopback port."""

    def __init__(self, *extra, env=None):
        self.dir = tempfile.TemporaryDirectory(prefix="banksim-test-")
        port_file = os.path.join(self.dir.name, "port")
        self.log_path = os.path.join(self.dir.name, "log")
        self.log = open(self.log_path, "wb")
        args = [BANKSIM, "--port", "0", "--port-file", port_file, "--seed", "7",
                "--webhook-backoff-ms", "100"] + list(extra)
        # Secrets through the environment: banksim refuses them on its command line.
        env = dict(os.environ, BANCOX_API_KEY=KEY, BANCOX_SECRET=SECRET, **(env or {}))
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
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

    def post(self, path, body, key, auth=KEY):
        headers = {"Authorization": "Bearer " + auth}
        if key is not False:
            headers["Idempotency-Key"] = key
        return self.request("POST", path, body, headers)

    def capture(self, tx_id, amount, key, **kw):
        return self.post("/pay/%s/capture" % tx_id, {"amount": amount}, key, **kw)

    def void(self, tx_id, key, **kw):
        return self.post("/pay/%s/void" % tx_id, {}, key, **kw)

    def refund(self, tx_id, amount, ref, callback, key=None, **kw):
        return self.post("/refunds", {"tx_id": tx_id, "amount": amount, "ref": ref,
                                      "callback_url": callback}, key or ref, **kw)

    def get_refund(self, rf_id, auth=KEY):
        return self.request("GET", "/refunds/" + rf_id, headers={"Authorization": "Bearer " + auth})

    def inspect(self, tx_id):
        status, doc = self.request("GET", "/_sim/payments/" + tx_id)
        assert status == 200, (status, doc)
        return doc

    def browser(self, method, url, form=None, raw=None, content_type=None):
        """One browser request, redirects NOT followed: (status, headers, text).
        form is sent urlencoded; raw (bytes) with content_type."""
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            body, headers = raw, {}
            if form is not None:
                body = urllib.parse.urlencode(form).encode()
                content_type = "application/x-www-form-urlencoded"
            if content_type:
                headers["Content-Type"] = content_type
            conn.request(method, u.path + ("?" + u.query if u.query else ""), body, headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode()
        finally:
            conn.close()

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
    SIM_ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.recv = Receiver()
        cls.sim = Sim(*cls.SIM_ARGS, env=cls.SIM_ENV)

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
        self.assertEqual(self.sim.get_pay(tx), (200, {"id": tx, "ref": ref, "status": "PENDING",
                                                      "captured": 0}))
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
        self.assertEqual({k: ev[k] for k in ("type", "tx_id", "ref", "status", "amount",
                                             "currency")},
                         {"type": "payment", "tx_id": tx, "ref": ref, "status": "APPROVED",
                          "amount": 1050, "currency": "ARS"})
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "APPROVED")
        self.assertEqual(self.sim.get_pay(tx)[1]["captured"], 1050)

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
                         (200, {"id": doc77["id"], "ref": ref77, "status": "APPROVED",
                                "captured": 1077}))
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
        self.assertEqual(self.sim.request("GET", "/v2/pay/x"), (404, {"error": "no such endpoint"}))

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


class V11Test(SimCase):
    """API v1.1: authorize/capture, void, refunds, 3-D Secure, card tokens."""
    SIM_ARGS = ("--webhook-delay-ms", "150", "--timeout-ms", "400")

    def authorize(self, amount, **fields):
        """An AUTHORIZED payment (capture false), its AUTHORIZED webhook seen."""
        ref = fresh_ref("auth")
        status, doc = self.sim.pay(amount, ref, self.hook(), capture=False, **fields)
        self.assertEqual((status, doc["status"]), (200, "OK"), doc)
        hooks = self.recv.wait_where(tx_id=doc["id"], status="AUTHORIZED")
        self.assertEqual(len(hooks), 1, "no AUTHORIZED webhook")
        return doc["id"], ref

    def approved(self, amount):
        """An APPROVED payment (capture true), its APPROVED webhook seen."""
        ref = fresh_ref("appr")
        status, doc = self.sim.pay(amount, ref, self.hook())
        self.assertEqual((status, doc["status"]), (200, "OK"), doc)
        self.assertEqual(len(self.recv.wait_where(tx_id=doc["id"], status="APPROVED")), 1)
        return doc["id"], ref

    def assert_signed(self, hook):
        self.assertTrue(verify_signature(hook["headers"]["X-BancoX-Signature"], hook["raw"],
                                         [SECRET]))

    def assert_refund_event(self, hook, rf_id, ref, tx, status, amount):
        self.assert_signed(hook)
        ev = hook["json"]
        self.assertRegex(ev["event_id"], EVT_RE)
        self.assertRegex(ev["occurred_at"], RFC3339_RE)
        self.assertEqual({k: v for k, v in ev.items() if k not in ("event_id", "occurred_at")},
                         {"type": "refund", "refund_id": rf_id, "ref": ref, "tx_id": tx,
                          "status": status, "amount": amount, "currency": "ARS"})

    # ---- authorize, capture ------------------------------------------------

    def test_authorize_then_partial_capture(self):
        tx, ref = self.authorize(1050)
        hook = self.recv.where(tx_id=tx, status="AUTHORIZED")[0]
        self.assert_signed(hook)
        self.assertEqual((hook["json"]["type"], hook["json"]["amount"]), ("payment", 1050))
        self.assertEqual(self.sim.get_pay(tx), (200, {"id": tx, "ref": ref, "status": "AUTHORIZED",
                                                      "captured": 0}))
        status, doc = self.sim.capture(tx, 600, "cap-" + tx)
        self.assertEqual((status, doc), (200, {"status": "CAPTURED", "id": tx, "captured": 600}))
        self.assertEqual(self.sim.get_pay(tx), (200, {"id": tx, "ref": ref, "status": "CAPTURED",
                                                      "captured": 600}))
        hooks = self.recv.wait_where(tx_id=tx, status="CAPTURED")
        self.assertEqual(len(hooks), 1, "no CAPTURED webhook")
        self.assert_signed(hooks[0])
        self.assertEqual((hooks[0]["json"]["type"], hooks[0]["json"]["amount"]), ("payment", 600))
        info = self.sim.inspect(tx)
        self.assertEqual([(c["amount"], c["idempotency_key"]) for c in info["captures"]],
                         [(600, "cap-" + tx)])
        self.assertEqual((info["capture"], info["captured"], info["refundable"]), (False, 600, 600))

    def test_capture_twice_is_409_and_same_key_replays(self):
        tx, _ = self.authorize(2000)
        first = self.sim.capture(tx, 2000, "k1-" + tx)
        self.assertEqual(first[0], 200)
        self.assertEqual(self.sim.capture(tx, 2000, "k1-" + tx), first, "replay of the same key")
        self.assertEqual(self.sim.capture(tx, 100, "k2-" + tx),
                         (409, {"error": "not_capturable", "status": "CAPTURED"}))
        info = self.sim.inspect(tx)
        self.assertEqual((len(info["captures"]), info["captured"], info["capture_requests"]),
                         (1, 2000, 3))
        time.sleep(0.4)
        self.assertEqual(len(self.recv.where(tx_id=tx, status="CAPTURED")), 1,
                         "a replay or a refused capture sent a webhook")

    def test_capture_above_authorization_or_bad_amount_is_422(self):
        tx, _ = self.authorize(1000)
        status, doc = self.sim.capture(tx, 1001, "big-" + tx)
        self.assertEqual(status, 422)
        self.assertIn("amount", doc["error"])
        for bad in (0, -1, "10", 1.5, None):
            body = {} if bad is None else {"amount": bad}
            status, doc = self.sim.post("/pay/%s/capture" % tx, body, "bad-%r" % (bad,))
            self.assertEqual(status, 422, bad)
            self.assertIn("amount", doc["error"], bad)
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "AUTHORIZED", "nothing changed")
        self.assertEqual(self.sim.capture(tx, 1000, "big-" + tx)[0], 200,
                         "a 422 is not stored under its key")

    def test_capture_55_is_503_then_ok_with_the_same_key(self):
        tx, _ = self.authorize(2000)
        key = "c55-" + tx
        self.assertEqual(self.sim.capture(tx, 1055, key), (503, {"error": "unavailable"}))
        self.assertEqual(self.sim.inspect(tx)["captures"], [], "a 503 captures nothing")
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "AUTHORIZED")
        ok = self.sim.capture(tx, 1055, key)
        self.assertEqual(ok, (200, {"status": "CAPTURED", "id": tx, "captured": 1055}))
        self.assertEqual(self.sim.capture(tx, 1055, key), ok)

    def test_capture_needs_an_authorization(self):
        tx_ok, _ = self.approved(1050)
        self.assertEqual(self.sim.capture(tx_ok, 100, "c-" + tx_ok),
                         (409, {"error": "not_capturable", "status": "APPROVED"}))
        status, doc = self.sim.pay(1050, fresh_ref("pend"), self.hook(), capture=False)
        self.assertEqual(self.sim.capture(doc["id"], 100, "c-" + doc["id"]),
                         (409, {"error": "not_capturable", "status": "PENDING"}))
        self.assertEqual(self.sim.capture("bx_" + "0" * 26, 100, "c-none"),
                         (404, {"error": "not_found"}))

    # ---- void ---------------------------------------------------------------

    def test_void_an_authorization(self):
        tx, ref = self.authorize(1050)
        first = self.sim.void(tx, "v-" + tx)
        self.assertEqual(first, (200, {"status": "VOIDED", "id": tx}))
        self.assertEqual(self.sim.void(tx, "v-" + tx), first, "replay of the same key")
        self.assertEqual(self.sim.get_pay(tx), (200, {"id": tx, "ref": ref, "status": "VOIDED",
                                                      "captured": 0}))
        hooks = self.recv.wait_where(tx_id=tx, status="VOIDED")
        self.assertEqual(len(hooks), 1, "no VOIDED webhook")
        self.assert_signed(hooks[0])
        self.assertEqual(self.sim.capture(tx, 100, "c-" + tx),
                         (409, {"error": "not_capturable", "status": "VOIDED"}))
        self.assertEqual(self.sim.void(tx, "v2-" + tx),
                         (409, {"error": "not_voidable", "status": "VOIDED"}))
        self.assertEqual(self.sim.refund(tx, 100, fresh_ref("rv"), self.hook())[0], 422)
        info = self.sim.inspect(tx)
        self.assertEqual([(v["by"], v["idempotency_key"]) for v in info["voids"]],
                         [("request", "v-" + tx)])

    def test_void_after_capture_or_decline_is_409(self):
        tx, _ = self.authorize(1050)
        self.assertEqual(self.sim.capture(tx, 1050, "c-" + tx)[0], 200)
        self.assertEqual(self.sim.void(tx, "v-" + tx),
                         (409, {"error": "not_voidable", "status": "CAPTURED"}))
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "CAPTURED")
        status, doc = self.sim.pay(1013, fresh_ref("d13"), self.hook(), capture=False)
        self.recv.wait_where(tx_id=doc["id"], status="DECLINED")
        self.assertEqual(self.sim.void(doc["id"], "v-" + doc["id"]),
                         (409, {"error": "not_voidable", "status": "DECLINED"}))
        tx_ok, _ = self.approved(1050)
        self.assertEqual(self.sim.void(tx_ok, "v-" + tx_ok),
                         (409, {"error": "not_voidable", "status": "APPROVED"}))

    # ---- refunds ------------------------------------------------------------

    def test_two_partial_refunds_then_one_too_many(self):
        tx, _ = self.approved(1050)
        refs = [fresh_ref("rf") for _ in range(4)]
        st1, r1 = self.sim.refund(tx, 300, refs[0], self.hook())
        self.assertEqual((st1, r1["status"]), (200, "OK"))
        self.assertRegex(r1["id"], RF_RE)
        self.assertEqual(self.sim.refund(tx, 300, refs[0], self.hook()), (st1, r1),
                         "replay of the same key")
        st2, r2 = self.sim.refund(tx, 500, refs[1], self.hook())
        self.assertEqual((st2, r2["status"]), (200, "OK"))
        status, doc = self.sim.refund(tx, 251, refs[2], self.hook())
        self.assertEqual(status, 422)
        self.assertIn("amount", doc["error"])
        self.assertEqual(self.sim.request("GET", "/_sim/refunds?ref=" + refs[2])[1]["count"], 0)
        for rf, ref, amount in ((r1["id"], refs[0], 300), (r2["id"], refs[1], 500)):
            hooks = self.recv.wait_where(refund_id=rf)
            self.assertEqual(len(hooks), 1)
            self.assert_refund_event(hooks[0], rf, ref, tx, "REFUNDED", amount)
            self.assertEqual(self.sim.get_refund(rf),
                             (200, {"id": rf, "ref": ref, "tx_id": tx, "status": "REFUNDED",
                                    "amount": amount}))
        self.assertEqual(self.sim.refund(tx, 250, refs[3], self.hook())[0], 200, "exactly what is left")
        info = self.sim.inspect(tx)
        self.assertEqual([r["amount"] for r in info["refunds"]], [300, 500, 250])
        self.assertEqual(info["refundable"], 0)
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "APPROVED", "refunds keep the status")

    def test_refund_13_sends_refund_failed_and_frees_its_amount(self):
        tx, _ = self.approved(2000)
        ref = fresh_ref("rf13")
        status, doc = self.sim.refund(tx, 1513, ref, self.hook())
        self.assertEqual((status, doc["status"]), (200, "OK"))
        rf = doc["id"]
        self.assertEqual(self.sim.get_refund(rf)[1]["status"], "PENDING")
        # While pending it holds its amount: 2000 - 1513 = 487 left.
        status, err = self.sim.refund(tx, 600, fresh_ref("rf-held"), self.hook())
        self.assertEqual(status, 422, "a pending refund must count against the total")
        hooks = self.recv.wait_where(refund_id=rf)
        self.assertEqual(len(hooks), 1)
        self.assert_refund_event(hooks[0], rf, ref, tx, "REFUND_FAILED", 1513)
        self.assertEqual(self.sim.get_refund(rf)[1]["status"], "REFUND_FAILED")
        self.assertEqual(self.sim.refund(tx, 1600, fresh_ref("rf-free"), self.hook())[0], 200,
                         "a failed refund frees its amount")

    def test_refund_77_no_webhook_get_says_refunded(self):
        tx, _ = self.approved(1050)
        ref = fresh_ref("rf77")
        status, doc = self.sim.refund(tx, 177, ref, self.hook())
        self.assertEqual((status, doc["status"]), (200, "OK"))
        time.sleep(0.5)  # webhook delay is 0.15 s
        self.assertEqual(self.recv.where(refund_id=doc["id"]), [])
        self.assertEqual(self.sim.get_refund(doc["id"]),
                         (200, {"id": doc["id"], "ref": ref, "tx_id": tx, "status": "REFUNDED",
                                "amount": 177}))

    def test_refund_99_rejected(self):
        tx, _ = self.approved(1050)
        status, doc = self.sim.refund(tx, 199, fresh_ref("rf99"), self.hook())
        self.assertEqual(status, 200)
        self.assertEqual((doc["status"], doc["reason"]), ("REJECTED", "refund window closed"))
        self.assertRegex(doc["id"], RF_RE)
        got = self.sim.get_refund(doc["id"])[1]
        self.assertEqual((got["status"], got["reason"]), ("REFUND_FAILED", "refund window closed"))
        self.assertEqual(self.sim.inspect(tx)["refundable"], 1050, "a rejected refund holds nothing")
        time.sleep(0.4)
        self.assertEqual(self.recv.where(refund_id=doc["id"]), [])

    def test_refund_55_is_503_then_ok_with_the_same_key(self):
        tx, _ = self.approved(1050)
        ref = fresh_ref("rf55")
        self.assertEqual(self.sim.refund(tx, 155, ref, self.hook()), (503, {"error": "unavailable"}))
        self.assertEqual(self.sim.request("GET", "/_sim/refunds?ref=" + ref)[1]["count"], 0)
        ok = self.sim.refund(tx, 155, ref, self.hook())
        self.assertEqual((ok[0], ok[1]["status"]), (200, "OK"))
        self.assertEqual(self.sim.refund(tx, 155, ref, self.hook()), ok)
        self.assertEqual(self.sim.request("GET", "/_sim/refunds?ref=" + ref)[1]["ids"], [ok[1]["id"]])
        self.assertEqual(self.sim.inspect(tx)["refund_requests"], 3, "503, OK and replay all counted")
        self.assertEqual(len(self.recv.wait_where(refund_id=ok[1]["id"], status="REFUNDED")), 1)

    def test_refund_needs_a_captured_payment(self):
        tx, _ = self.authorize(1050)
        status, doc = self.sim.refund(tx, 100, fresh_ref("rfa"), self.hook())
        self.assertEqual(status, 422)
        self.assertIn("not captured", doc["error"])
        self.assertEqual(self.sim.refund("bx_" + "1" * 26, 100, fresh_ref("rfu"), self.hook())[0], 422)
        self.assertEqual(self.sim.capture(tx, 400, "c-" + tx)[0], 200)
        self.assertEqual(self.sim.refund(tx, 401, fresh_ref("rfc"), self.hook())[0], 422,
                         "only the captured amount can be refunded")
        self.assertEqual(self.sim.refund(tx, 400, fresh_ref("rfc"), self.hook())[0], 200)
        self.assertEqual(self.sim.get_refund("rf_" + "0" * 26), (404, {"error": "not_found"}))

    # ---- 3-D Secure -----------------------------------------------------------

    def challenge(self, return_url=None, capture=True):
        """Creates a 42 payment; returns (tx, the page's forms by result)."""
        fields = {"capture": capture, "description": "Café <b>& co</b>"}
        if return_url:
            fields["return_url"] = return_url
        status, doc = self.sim.pay(1042, fresh_ref("3ds"), self.hook(), **fields)
        self.assertEqual((status, doc["status"]), (200, "ACTION_REQUIRED"), doc)
        tx = doc["id"]
        self.assertEqual(doc["redirect_url"], self.sim.base + "/3ds/" + tx)
        got = self.sim.get_pay(tx)[1]
        self.assertEqual((got["status"], got["captured"]), ("ACTION_REQUIRED", 0))
        status, headers, page = self.sim.browser("GET", doc["redirect_url"])
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        parser = FormParser()
        parser.feed(page)
        self.assertIn("Café <b>& co</b>", "".join(parser.text), "description shown, escaped")
        self.assertNotIn("<b>", page)
        forms = {f["fields"].get("result"): f for f in parser.forms}
        self.assertEqual(set(forms), {"approve", "decline"})
        for f in forms.values():
            self.assertEqual((f["method"], f["action"]), ("post", "/3ds/" + tx))
        return tx, forms

    def submit(self, form):
        return self.sim.browser("POST", self.sim.base + form["action"], form["fields"])

    def test_3ds_approve_through_the_page(self):
        back = "http://127.0.0.1:9/shop/return?order=7"
        tx, forms = self.challenge(back)
        self.assertEqual(self.recv.for_tx(tx), [], "no webhook while the customer decides")
        status, headers, _ = self.submit(forms["approve"])
        self.assertEqual((status, headers.get("Location")), (303, back))
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "APPROVED")
        hooks = self.recv.wait_where(tx_id=tx)
        self.assertEqual([h["json"]["status"] for h in hooks], ["APPROVED"])
        self.assert_signed(hooks[0])
        self.assertEqual(self.sim.inspect(tx)["challenge"], "approve")

    def test_3ds_decline_through_the_page(self):
        back = "https://shop.example/return"
        tx, forms = self.challenge(back)
        status, headers, _ = self.submit(forms["decline"])
        self.assertEqual((status, headers.get("Location")), (303, back))
        got = self.sim.get_pay(tx)[1]
        self.assertEqual((got["status"], got["captured"]), ("DECLINED", 0))
        self.assertEqual([h["json"]["status"] for h in self.recv.wait_where(tx_id=tx)], ["DECLINED"])
        # A second answer changes nothing (the browser is sent back again).
        status, headers, _ = self.submit(forms["approve"])
        self.assertEqual((status, headers.get("Location")), (303, back))
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "DECLINED")
        time.sleep(0.3)
        self.assertEqual(len(self.recv.for_tx(tx)), 1)

    def test_3ds_approve_authorize_only_then_capture(self):
        tx, forms = self.challenge(capture=False)
        status, _, page = self.submit(forms["approve"])
        self.assertEqual(status, 200, "no return_url: a done page")
        parser = FormParser()
        parser.feed(page)
        self.assertIn("AUTHORIZED", "".join(parser.text))
        self.assertEqual(parser.forms, [], "the done page offers no form")
        self.assertEqual([h["json"]["status"] for h in self.recv.wait_where(tx_id=tx)], ["AUTHORIZED"])
        self.assertEqual(self.sim.capture(tx, 1042, "c-" + tx)[1]["status"], "CAPTURED")

    def test_3ds_bad_form_is_422_and_changes_nothing(self):
        tx, forms = self.challenge()
        url = self.sim.base + "/3ds/" + tx
        self.assertEqual(self.sim.browser("POST", url, {"result": "maybe"})[0], 422)
        self.assertEqual(self.sim.browser("POST", url, {})[0], 422)
        status, _, _ = self.sim.browser("POST", url, raw=b'{"result":"approve"}',
                                        content_type="application/json")
        self.assertEqual(status, 422)
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "ACTION_REQUIRED")
        self.assertEqual(self.sim.browser("GET", self.sim.base + "/3ds/bx_" + "0" * 26)[0], 404)

    # ---- card tokens, validation ----------------------------------------------

    def test_tok_insufficient_is_rejected(self):
        for amount in (1050, 1042, 1055):
            status, doc = self.sim.pay(amount, fresh_ref("tok"), self.hook(),
                                       card_token="tok_insufficient")
            self.assertEqual(status, 200)
            self.assertEqual((doc["status"], doc["reason"]), ("REJECTED", "insufficient funds"))
            got = self.sim.get_pay(doc["id"])[1]
            self.assertEqual((got["status"], got["reason"]), ("DECLINED", "insufficient funds"))
        status, doc = self.sim.pay(1050, fresh_ref("tokok"), self.hook(), card_token="tok_visa_4242")
        self.assertEqual((status, doc["status"]), (200, "OK"))
        self.assertEqual(self.sim.inspect(doc["id"])["card_token"], "tok_visa_4242")
        time.sleep(0.4)
        self.assertEqual(self.recv.where(status="APPROVED", tx_id=doc["id"])[0]["json"]["type"], "payment")

    def test_v11_bad_requests(self):
        ref = fresh_ref("v11bad")
        for change, field in (({"card_token": "card_4242"}, "card_token"),
                              ({"card_token": "tok_"}, "card_token"),
                              ({"card_token": 5}, "card_token"),
                              ({"capture": "no"}, "capture"),
                              ({"return_url": 5}, "return_url"),
                              ({"return_url": "javascript:alert(1)"}, "return_url"),
                              ({"return_url": "http://x/a b"}, "return_url")):
            status, doc = self.sim.pay(1050, ref, self.hook(), **change)
            self.assertEqual(status, 422, change)
            self.assertIn(field, doc["error"], change)
        self.assertEqual(self.sim.count(ref), 0)
        tx, _ = self.authorize(1050)
        posts = (("/pay", {"amount": 1050, "currency": "ARS", "ref": ref,
                           "callback_url": self.hook()}),
                 ("/pay/%s/capture" % tx, {"amount": 100}), ("/pay/%s/void" % tx, {}),
                 ("/refunds", {"tx_id": tx, "amount": 100, "ref": ref, "callback_url": self.hook()}))
        for path, body in posts:
            auth = {"Authorization": "Bearer " + KEY}
            self.assertEqual(self.sim.post(path, body, "k", auth="wrong"),
                             (401, {"error": "unauthorized"}), path)
            status, doc = self.sim.post(path, body, False)
            self.assertEqual(status, 422, path)
            self.assertIn("Idempotency-Key", doc["error"])
            req = urllib.request.Request(self.sim.base + path, data=json.dumps(body).encode(),
                                         method="POST", headers=dict(auth, **{
                                             "Idempotency-Key": "k",
                                             "Content-Type": "text/plain"}))
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(cm.exception.code, 422, path)
            self.assertIn("Content-Type", json.loads(cm.exception.read())["error"])
            status, doc = self.sim.post(path, b"[1]", "k")
            self.assertEqual(status, 422, path)
        for missing in ("tx_id", "amount", "ref", "callback_url"):
            body = {"tx_id": tx, "amount": 100, "ref": ref, "callback_url": self.hook()}
            del body[missing]
            status, doc = self.sim.post("/refunds", body, "k-" + missing)
            self.assertEqual(status, 422)
            self.assertIn(missing, doc["error"])
        self.assertEqual(self.sim.void("bx_" + "0" * 26, "k"), (404, {"error": "not_found"}))
        self.assertEqual(self.sim.get_refund("rf_x", auth="wrong"), (401, {"error": "unauthorized"}))
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "AUTHORIZED", "nothing changed")

    # ---- fault options on the new endpoints ------------------------------------

    def test_timeout_rate_on_capture_does_it_and_replays(self):
        tx, _ = self.authorize(1050)
        self.sim.config(timeout_rate=1.0)
        try:
            t0 = time.monotonic()
            status, doc = self.sim.capture(tx, 1050, "t-" + tx)
            self.assertEqual(status, 503)
            self.assertGreaterEqual(time.monotonic() - t0, 0.39)
        finally:
            self.sim.config(timeout_rate=0.0)
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "CAPTURED", "the bank did it")
        self.assertEqual(self.sim.capture(tx, 1050, "t-" + tx),
                         (200, {"status": "CAPTURED", "id": tx, "captured": 1050}))

    def test_fail_rate_on_refund_creates_nothing(self):
        tx, _ = self.approved(1050)
        ref = fresh_ref("rffail")
        self.sim.config(fail_rate=1.0)
        try:
            self.assertEqual(self.sim.refund(tx, 100, ref, self.hook()), (503, {"error": "unavailable"}))
        finally:
            self.sim.config(fail_rate=0.0)
        self.assertEqual(self.sim.request("GET", "/_sim/refunds?ref=" + ref)[1]["count"], 0)
        self.assertEqual(self.sim.refund(tx, 100, ref, self.hook())[0], 200)


class ExpiryTest(SimCase):
    SIM_ARGS = ("--webhook-delay-ms", "50", "--auth-expiry-s", "0.6", "--challenge-expiry-s", "0.6")

    def test_uncaptured_authorization_is_voided_with_a_webhook(self):
        status, doc = self.sim.pay(1050, fresh_ref("exp"), self.hook(), capture=False)
        tx = doc["id"]
        status, kept = self.sim.pay(1050, fresh_ref("expcap"), self.hook(), capture=False)
        self.recv.wait_where(tx_id=kept["id"], status="AUTHORIZED")
        self.assertEqual(self.sim.capture(kept["id"], 500, "c-" + kept["id"])[0], 200)
        hooks = self.recv.wait_where(tx_id=tx, status="VOIDED", timeout=3)
        self.assertEqual(len(hooks), 1, "no VOIDED webhook after the expiry")
        self.assertTrue(verify_signature(hooks[0]["headers"]["X-BancoX-Signature"], hooks[0]["raw"],
                                         [SECRET]))
        self.assertEqual(hooks[0]["json"]["type"], "payment")
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "VOIDED")
        self.assertEqual([v["by"] for v in self.sim.inspect(tx)["voids"]], ["expiry"])
        self.assertEqual(self.sim.capture(tx, 100, "late-" + tx),
                         (409, {"error": "not_capturable", "status": "VOIDED"}))
        time.sleep(0.3)
        self.assertEqual(self.sim.get_pay(kept["id"])[1]["status"], "CAPTURED",
                         "a captured authorization does not expire")
        self.assertEqual(self.recv.where(tx_id=kept["id"], status="VOIDED"), [])

    def test_unanswered_challenge_ends_declined(self):
        back = "http://127.0.0.1:9/back"
        status, doc = self.sim.pay(1042, fresh_ref("3dsexp"), self.hook(), return_url=back)
        tx = doc["id"]
        self.assertEqual(doc["status"], "ACTION_REQUIRED")
        hooks = self.recv.wait_where(tx_id=tx, status="DECLINED", timeout=3)
        self.assertEqual(len(hooks), 1, "no DECLINED webhook after the challenge expired")
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "DECLINED")
        status, _, page = self.sim.browser("GET", doc["redirect_url"])
        parser = FormParser()
        parser.feed(page)
        self.assertEqual((status, parser.forms), (200, []), "no form once the challenge is over")
        status, headers, _ = self.sim.browser("POST", doc["redirect_url"], {"result": "approve"})
        self.assertEqual((status, headers.get("Location")), (303, back))
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "DECLINED", "too late to approve")
        self.assertEqual(self.sim.inspect(tx)["challenge"], "expired")


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

    def test_capture_webhook_arrives_before_the_capture_answer(self):
        status, doc = self.sim.pay(1050, fresh_ref("firstcap"), self.hook("/hooks/slow"),
                                   capture=False)
        tx = doc["id"]
        self.assertEqual(self.sim.get_pay(tx)[1]["status"], "AUTHORIZED")
        status, doc = self.sim.capture(tx, 1050, "c-" + tx)
        answered = time.monotonic()
        self.assertEqual(status, 200)
        hooks = self.recv.where(tx_id=tx, status="CAPTURED")  # no waiting: it must be there
        self.assertEqual(len(hooks), 1)
        self.assertLess(hooks[0]["at"], answered)


class DuplicateTest(SimCase):
    SIM_ARGS = ("--duplicate-rate", "1.0", "--webhook-delay-ms", "20")
    SIM_ENV = {"BANCOX_EXTRA_SECRET": SECRET2}

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

    def test_refund_webhooks_are_duplicated_too(self):
        status, doc = self.sim.pay(1050, fresh_ref("duprf"), self.hook())
        self.recv.wait_for(doc["id"], count=2)
        status, rf = self.sim.refund(doc["id"], 100, fresh_ref("duprf"), self.hook())
        self.assertEqual(status, 200)
        hooks = self.recv.wait_where(count=2, refund_id=rf["id"])
        self.assertEqual(len(hooks), 2)
        self.assertEqual(hooks[0]["raw"], hooks[1]["raw"])


def std_webhooks_headers(secret, msg_id, body, ts=None, extra_sigs=()):
    """Standard Webhooks headers for body, signed under secret ("whsec_<base64>")."""
    ts = str(int(time.time()) if ts is None else ts)
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body, hashlib.sha256).digest()
    sigs = list(extra_sigs) + ["v1," + base64.b64encode(mac).decode()]
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": " ".join(sigs),
            "Content-Type": "application/json"}


class SinkTest(SimCase):
    """POST /sink/notifications: the benchmark's notification endpoint. It
    accepts (204) and counts every delivery; once a secret is set, only those
    whose Standard Webhooks signature and timestamp verify, the rest are 401
    and counted bad."""
    SINK_SECRET = "whsec_c2luay10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm"

    def _post(self, headers, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=10)
        try:
            conn.request("POST", "/sink/notifications", body, headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def sink(self, body=None):
        return self.sim.request("POST" if body is not None else "GET", "/_sim/sink", body)

    def test_sink_verifies_and_counts(self):
        body = b'{"type":"payment.pending","data":{"id":"pay_1"}}'
        # No secret yet: accepted unverified.
        self.assertEqual(self._post(std_webhooks_headers("whsec_b3RoZXI=", "evt_a", body), body), 204)
        status, doc = self.sink()
        self.assertEqual((status, doc["received"], doc["accepted"], doc["bad"], doc["verifying"]),
                         (200, 1, 1, 0, False))
        for bad in ({"secret": "nope"}, {"secret": "whsec_%%%"}, {"secret": 3}, {"other": 1}):
            status, doc = self.sink(bad)
            self.assertEqual(status, 422, bad)
            self.assertIn("secret", doc["error"])
        status, doc = self.sink({"secret": self.SINK_SECRET})
        self.assertEqual((status, doc["verifying"]), (200, True))
        self.assertNotIn(self.SINK_SECRET[6:], self.sim.read_log())
        good = std_webhooks_headers(self.SINK_SECRET, "evt_b", body)
        self.assertEqual(self._post(dict(good), body), 204)
        self.assertEqual(self._post(dict(good), body), 204)  # a retry: one more accepted, not distinct
        # The old secret beside the new one, as during a rotation: one entry suffices.
        rotated = std_webhooks_headers(self.SINK_SECRET, "evt_c", body, extra_sigs=["v1,AAAA"])
        self.assertEqual(self._post(rotated, body), 204)
        self.assertEqual(self._post(dict(good), body + b" "), 401)  # body changed
        self.assertEqual(self._post(std_webhooks_headers("whsec_b3RoZXI=", "evt_d", body), body), 401)
        self.assertEqual(self._post(std_webhooks_headers(self.SINK_SECRET, "evt_e", body,
                                                         ts=int(time.time()) - 301), body), 401)
        no_id = dict(good)
        del no_id["webhook-id"]
        self.assertEqual(self._post(no_id, body), 400)
        status, doc = self.sink()
        self.assertEqual((doc["received"], doc["accepted"], doc["distinct"], doc["bad"]), (8, 4, 3, 4))


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
