"""A client that hangs up while its bank call is out still gets the bank's answer recorded.

POST /v1/payments (and capture, cancel, refunds) suspends its connection while the bank is
called. The simulator is slowed (latency_ms) and its webhooks are turned off, so the bank's
synchronous answer is the only news the host gets; each client closes its socket once the
simulator has the call. Within a moment of the bank's answer, well before recover_after_ms
(60 s, the default here) and webhook_grace_s (60 s), the payment or refund must show that
answer, recorded once (one bank_reply history row), and the request's Idempotency-Key must hold
it: a retry is answered at once as a replay, and a request already waiting on the key gets it.
"""
import json
import os
import socket
import struct
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

LATENCY_MS = 1500
SOON_S = LATENCY_MS / 1000 + 3  # the bank's answer plus a margin for a loaded machine


class HangUp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.env.sim_config(latency_ms=0, no_webhooks=False)

    # ---- helpers ------------------------------------------------------
    def hang_up(self, path, body, key, counter, reset=False):
        """POST `body` to `path` under Idempotency-Key `key` on a raw socket, and close it once
        the simulator's `counter` (a /_sim/stats field) shows the bank call arrived. reset:
        close with an RST (SO_LINGER 0) instead of a FIN."""
        before = self.env.sim_stats()[counter]
        raw = json.dumps(body).encode()
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nIdempotency-Key: %s\r\nContent-Length: %d\r\n\r\n"
                % (path, self.env.api_key, key, len(raw))).encode()
        s = socket.create_connection(("127.0.0.1", self.env.port))
        s.sendall(head + raw)
        deadline = time.time() + 10
        while self.env.sim_stats()[counter] == before:
            self.assertLess(time.time(), deadline, "the bank call never reached the simulator")
            time.sleep(0.02)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        return time.time()

    def soon(self, fn, what):
        """fn() until it is truthy, for SOON_S seconds."""
        deadline = time.time() + SOON_S
        got = None
        while time.time() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(0.05)
        self.fail("%s: not within %.1f s of the bank call (last %r); the log ends: %s"
                  % (what, SOON_S, got, self.env.log()[-1500:]))

    def key_answer(self, key):
        """(status, response) recorded for Idempotency-Key `key`, or None while unanswered."""
        row = self.env.sql("SELECT coalesce(status, 0) || ' ' || coalesce(response, '') FROM idempotency_keys "
                           "WHERE key = '%s'" % key)
        if not row or row.startswith("0 "):
            return None
        status, response = row.split(" ", 1)
        return int(status), json.loads(response)

    def bank_replies(self, table, column, object_id, to_state):
        """History rows of the bank's synchronous answer moving `object_id` to `to_state`."""
        return int(self.env.sql("SELECT count(*) FROM %s WHERE %s = '%s' AND source = 'bank_reply' "
                                "AND to_state = '%s'" % (table, column, object_id, to_state)))

    def slow_bank(self):
        # No webhook may settle anything: the bank's synchronous answer is the only news.
        self.env.sim_config(latency_ms=LATENCY_MS, no_webhooks=True)

    def payment_by_reference(self, ref):
        r = http("GET", self.env.url + "/v1/payments?reference=" + ref, headers=self.env.auth())
        self.assertEqual(r.status, 200, r)
        return r.json["data"]

    def settled(self, pid, want, **fields):
        body = dict(amount=1000, currency="ARS", connector="BANCO_X", **fields)
        r = http("POST", self.env.url + "/v1/payments", body, self.env.auth())
        self.assertEqual(r.status, 201, r)
        return self.env.wait_status(r.json["id"], (want,), timeout=15).json["id"]

    # ---- create ---------------------------------------------------------
    def check_create(self, reset):
        ref = "hang-" + uuid.uuid4().hex[:12]
        key = "k-" + ref
        body = {"amount": 1050, "currency": "ARS", "connector": "BANCO_X", "reference": ref}
        self.slow_bank()
        self.hang_up("/v1/payments", body, key, "pay_requests", reset=reset)
        rows = self.payment_by_reference(ref)
        self.assertEqual(len(rows), 1, rows)
        pid = rows[0]["id"]
        p = self.soon(lambda: [x for x in self.payment_by_reference(ref) if x["status"] != "created"],
                      "payment %s left created" % pid)[0]
        self.assertEqual(p["status"], "pending", p)
        self.assertTrue(p["provider_reference_id"], p)
        answer = self.soon(lambda: self.key_answer(key), "the Idempotency-Key's answer was recorded")
        self.assertEqual(answer[0], 201)
        self.assertEqual((answer[1]["id"], answer[1]["status"]), (pid, "pending"))
        self.assertEqual(self.bank_replies("payment_history", "payment_id", pid, "pending"), 1)
        # A retry with the key is answered at once from the recorded answer; the bank saw one call.
        t0 = time.time()
        again = self.env.pay_idem(key, amount=1050, reference=ref)
        self.assertLess(time.time() - t0, 1.0)
        self.assertEqual((again.status, again.headers.get("Idempotent-Replayed")), (201, "true"), again)
        self.assertEqual(again.json["id"], pid)
        self.assertEqual(self.env.sim_refs(pid)["count"], 1)

    def test_create_client_closes(self):
        self.check_create(reset=False)

    def test_create_client_resets(self):
        self.check_create(reset=True)

    def test_waiter_on_the_key_gets_the_answer_of_a_request_that_hung_up(self):
        ref = "hang-" + uuid.uuid4().hex[:12]
        key = "k-" + ref
        body = {"amount": 1050, "currency": "ARS", "connector": "BANCO_X", "reference": ref}
        self.slow_bank()
        got = {}

        def wait_on_key():
            got["r"] = self.env.pay_idem(key, amount=1050, reference=ref)
            got["at"] = time.time()

        # The waiter asks while the first request's bank call is out, then the first hangs up.
        before = self.env.sim_stats()["pay_requests"]
        waiter = threading.Thread(target=wait_on_key)
        closer = threading.Thread(target=lambda: got.setdefault(
            "closed", self.hang_up("/v1/payments", body, key, "pay_requests")))
        closer.start()
        deadline = time.time() + 10
        while self.env.sim_stats()["pay_requests"] == before and time.time() < deadline:
            time.sleep(0.02)
        waiter.start()
        closer.join()
        waiter.join()
        r = got["r"]
        self.assertEqual((r.status, r.headers.get("Idempotent-Replayed")), (201, "true"), r)
        self.assertEqual(r.json["status"], "pending", r)
        self.assertLess(got["at"] - got["closed"], SOON_S)
        self.assertEqual(self.env.sim_refs(r.json["id"])["count"], 1)

    # ---- capture, cancel, refund ------------------------------------------
    def check_operation(self, op, want):
        pid = self.settled(None, "requires_capture", capture_method="manual")
        key = "k-%s-%s" % (op, uuid.uuid4().hex[:12])
        self.slow_bank()
        self.hang_up("/v1/payments/%s/%s" % (pid, op), {}, key,
                     "capture_requests" if op == "capture" else "void_requests")
        p = self.soon(lambda: (lambda g: g.json if g.json["status"] == want else None)(self.env.get(pid)),
                      "payment %s became %s" % (pid, want))
        self.assertIsNone(p["pending_operation"], p)
        answer = self.soon(lambda: self.key_answer(key), "the Idempotency-Key's answer was recorded")
        self.assertEqual((answer[0], answer[1]["status"]), (200, want))
        self.assertEqual(self.bank_replies("payment_history", "payment_id", pid, want), 1)

    def test_capture_client_closes(self):
        self.check_operation("capture", "succeeded")

    def test_cancel_client_closes(self):
        self.check_operation("cancel", "canceled")

    def test_refund_client_closes(self):
        pid = self.settled(None, "succeeded")
        key = "k-refund-" + uuid.uuid4().hex[:12]
        self.slow_bank()
        self.hang_up("/v1/refunds", {"payment_id": pid, "amount": 400}, key, "refund_requests")
        listed = http("GET", self.env.url + "/v1/refunds?payment_id=" + pid, headers=self.env.auth()).json
        self.assertEqual(len(listed["data"]), 1, listed)
        rid = listed["data"][0]["id"]
        state = self.soon(lambda: (lambda s: s if s != "created" else None)(
            self.env.sql("SELECT state FROM refunds WHERE id = '%s'" % rid)), "refund %s left created" % rid)
        self.assertEqual(state, "pending")
        self.assertTrue(self.env.sql("SELECT provider_reference_id FROM refunds WHERE id = '%s'" % rid))
        answer = self.soon(lambda: self.key_answer(key), "the Idempotency-Key's answer was recorded")
        self.assertEqual((answer[0], answer[1]["id"]), (201, rid))
        self.assertEqual(self.bank_replies("refund_history", "refund_id", rid, "pending"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
