"""Payment lifecycle: Idempotency-Key, unknown outcomes settled by the
reconciler (retry, status sync, deadline), out-of-order webhooks, history."""
import hashlib
import json
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, free_port, http, sign_bancox  # noqa: E402

# Short reconciler timings so every path settles in seconds (within the
# start-up rules: lease >= 2 x bank_timeout_ms + 500, recover_after_ms and
# idempotency_stale_ms >= bank_timeout_ms + 500).
FAST = """
bank_timeout_ms = 1500;
reconcile_interval_ms = 100;
retry_base_ms = 200;
retry_max_ms = 800;
webhook_grace_s = 1;
recover_after_ms = 2000;
reconcile_lease_ms = 4000;
idempotency_wait_ms = 3000;
idempotency_stale_ms = 3000;
"""


def sources(env, pid):
    r = env.events(pid)
    assert r.status == 200, r
    return [(e["source"], e["to"]) for e in r.json["events"]]


class Idempotency(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A short wait, so a burst sees both answers: the 201 and 409s.
        cls.env = Env(extra_config=FAST.replace("idempotency_wait_ms = 3000", "idempotency_wait_ms = 300")
                      + "payment_deadline_s = 60;\n")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_same_key_same_body_replays_without_calling_the_bank(self):
        key = "order-" + uuid.uuid4().hex
        before = self.env.sim_stats()["pay_requests"]
        first = self.env.pay_idem(key, amount=1050, reference="o-1")
        self.assertEqual(first.status, 201, first)
        second = self.env.pay_idem(key, amount=1050, reference="o-1")
        self.assertEqual(second.status, 201, second)
        self.assertEqual(second.raw, first.raw)
        self.assertEqual(second.headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(self.env.sim_stats()["pay_requests"] - before, 1)
        self.assertEqual(self.env.sim_refs(first.json["id"])["count"], 1)

    def test_same_key_other_body_is_422(self):
        key = "order-" + uuid.uuid4().hex
        self.assertEqual(self.env.pay_idem(key, amount=1050).status, 201)
        r = self.env.pay_idem(key, amount=2050)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["error"]["code"], "idempotency_key_reused")
        self.assertEqual(r.json["error"]["field"], "Idempotency-Key")

    def test_invalid_key_is_422_naming_the_header(self):
        before = self.env.sql("SELECT count(*) FROM payments")
        for bad in ("k" * 256, "caf\u00e9"):
            r = http("POST", self.env.url + "/v1/payments",
                     {"amount": 1050, "currency": "ARS", "connector": "BANCO_X"},
                     self.env.auth({"Idempotency-Key": bad}))
            self.assertEqual(r.status, 422, r)
            self.assertEqual(r.json["error"]["code"], "invalid_field")
            self.assertEqual(r.json["error"]["field"], "Idempotency-Key")
        self.assertEqual(self.env.sql("SELECT count(*) FROM payments"), before)
        self.assertEqual(self.env.pay_idem("k" * 255).status, 201)

    def test_twenty_concurrent_requests_one_payment(self):
        key = "burst-" + uuid.uuid4().hex
        self.env.sim_config(latency_ms=1000)  # the first request is still at the bank
        try:
            answers = [None] * 20
            def one(i):
                answers[i] = self.env.pay_idem(key, amount=3050)
            threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            self.env.sim_config(latency_ms=0)
        created = [a for a in answers if a.status == 201]
        busy = [a for a in answers if a.status == 409]
        self.assertEqual(len(created) + len(busy), 20, [a for a in answers if a.status not in (201, 409)])
        self.assertTrue(created)
        self.assertTrue(busy)
        print("concurrent Idempotency-Key: %d x 201 (same body), %d x 409" % (len(created), len(busy)))
        again = self.env.pay_idem(key, amount=3050)  # once answered, a retry gets the 201
        self.assertEqual(again.status, 201, again)
        created.append(again)
        self.assertEqual({a.raw for a in created}, {created[0].raw})
        for b in busy:
            self.assertEqual(b.headers.get("Retry-After"), "1")
            self.assertEqual(b.json["error"]["field"], "Idempotency-Key")
        pid = created[0].json["id"]
        self.assertEqual(self.env.sql("SELECT count(*) FROM idempotency_keys WHERE key='%s'" % key), "1")
        self.assertEqual(self.env.sql("SELECT count(*) FROM payments WHERE id='%s'" % pid), "1")
        self.assertEqual(self.env.sql("SELECT count(*) FROM payments WHERE amount=3050"), "1")
        self.assertEqual(self.env.sim_refs(pid)["count"], 1)

    def test_events_endpoint(self):
        r = self.env.pay(amount=1150)
        pid = r.json["id"]
        self.env.wait_status(pid, {"succeeded"})
        ev = self.env.events(pid)
        self.assertEqual(ev.status, 200, ev)
        got = [(e["from"], e["to"], e["source"]) for e in ev.json["events"]]
        self.assertEqual(got, [(None, "created", "api"), ("created", "pending", "bank_reply"),
                               ("pending", "succeeded", "webhook")])
        self.assertTrue(ev.json["events"][2]["detail"].startswith("evt_"))
        self.assertEqual(self.env.events("pay_nope").status, 404)
        self.assertEqual(http("GET", self.env.url + "/v1/payments/%s/events" % pid).status, 401)


class UnknownOutcomes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(extra_config=FAST + "payment_deadline_s = 60;\nidempotency_ttl_s = 1;\n")

    def test_idempotency_key_expires(self):
        key = "ttl-" + uuid.uuid4().hex
        first = self.env.pay_idem(key, amount=1250)
        self.assertEqual(first.status, 201, first)
        time.sleep(1.2)  # idempotency_ttl_s = 1
        other = self.env.pay_idem(key, amount=1350)  # another body is fine once expired
        self.assertEqual(other.status, 201, other)
        self.assertNotEqual(other.json["id"], first.json["id"])

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_transient_55_is_retried_once_charged(self):
        r = self.env.pay(amount=1055)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "processing")  # never failed
        self.assertEqual(r.json["error"]["code"], "bank_unavailable")
        pid = r.json["id"]
        done = self.env.wait_status(pid, {"succeeded", "failed", "requires_review"}, timeout=15)
        self.assertEqual(done.json["status"], "succeeded")
        self.assertIsNone(done.json["error"])
        self.assertEqual(self.env.sim_refs(pid)["count"], 1)
        self.assertIn(("reconciler", "pending"), sources(self.env, pid))

    def test_connector_timeout_cut_to_bank_timeout_ms(self):
        # The harness gives Banco X BANCOX_TIMEOUT_MS = 5000; FAST has
        # bank_timeout_ms = 1500, the bound the lease is checked against.
        self.env.sim_config(latency_ms=3000)
        try:
            t0 = time.time()
            r = self.env.pay(amount=1450)
            took = time.time() - t0
        finally:
            self.env.sim_config(latency_ms=0)
        self.assertEqual(r.status, 201, r)
        # Answered once the cut timeout expired (the bank's webhook may have
        # settled the payment meanwhile), not after the bank's 3 s.
        self.assertLess(took, 2.8, "the call was not cut to bank_timeout_ms: %r" % r)
        self.assertIn("asks for a 5000 ms bank call timeout, above bank_timeout_ms (1500)", self.env.log())
        done = self.env.wait_status(r.json["id"], {"succeeded", "failed", "requires_review"}, timeout=15)
        self.assertEqual(done.json["status"], "succeeded")
        self.assertEqual(self.env.sim_refs(r.json["id"])["count"], 1)

    def test_77_without_webhook_settles_by_sync(self):
        r = self.env.pay(amount=2077)
        self.assertEqual(r.json["status"], "pending")
        pid = r.json["id"]
        done = self.env.wait_status(pid, {"succeeded", "failed", "requires_review"}, timeout=15)
        self.assertEqual(done.json["status"], "succeeded")
        self.assertEqual(sources(self.env, pid)[-1], ("sync", "succeeded"))
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_events WHERE payment_id='%s'" % pid), "0")


class OrphanWebhook(unittest.TestCase):
    """An event naming only a bank id we have not stored yet is kept (202) and
    applied when the bank's reply gives us that id."""

    def test_event_before_bank_id_is_applied_later(self):
        env = Env(sim_args=["--timeout-ms", "200", "--no-webhooks"],
                  extra_config=FAST + "payment_deadline_s = 60;\n")
        try:
            env.sim_config(timeout_rate=1)  # the bank takes it; its reply is lost
            r = env.pay(amount=6050)
            self.assertEqual(r.json["status"], "processing", r)
            pid = r.json["id"]
            refs = env.sim_refs(pid)
            self.assertEqual(refs["count"], 1)
            tx = refs["ids"][0]
            ev = {"event_id": "evt_" + uuid.uuid4().hex[:26], "tx_id": tx, "status": "APPROVED",
                  "amount": 6050, "currency": "ARS", "occurred_at": "2026-11-27T12:00:00Z"}
            w = env.webhook(ev)
            self.assertEqual(w.status, 202, w)
            self.assertEqual(w.json["result"], "stored")
            self.assertEqual(env.webhook(ev).json["result"], "duplicate")
            self.assertEqual(env.sql("SELECT count(*) FROM webhook_events WHERE event_id='%s' AND payment_id IS NULL"
                                     % ev["event_id"]), "1")
            self.assertEqual(env.get(pid).json["status"], "processing")
            env.sim_config(timeout_rate=0)  # the reconciler's next re-send gets the reply
            done = env.wait_status(pid, {"succeeded", "failed"}, timeout=15)
            self.assertEqual(done.json["status"], "succeeded")
            self.assertEqual(done.json["provider_reference_id"], tx)
            self.assertEqual(env.sql("SELECT payment_id || ' ' || applied FROM webhook_events WHERE event_id='%s'"
                                     % ev["event_id"]), pid + " true")
            hist = env.events(pid).json["events"]
            self.assertEqual((hist[-1]["source"], hist[-1]["to"], hist[-1]["detail"]),
                             ("webhook", "succeeded", ev["event_id"]))
            self.assertEqual(env.sim_refs(pid)["count"], 1)
        finally:
            env.close()


class ReconcilerLease(unittest.TestCase):
    """A claimed batch is worked one payment at a time. A payment whose lease
    runs out while it waits in a claimer's batch must not be worked by a second
    reconciler at the same time."""

    def test_no_payment_is_resent_twice_at_once(self):
        # Four reconciler threads, batches of 16, a lease (2500 ms) that covers
        # one payment's bank calls but not a batch's: each re-send takes 800 ms.
        env = Env(workers=1, extra_config=FAST.replace("reconcile_lease_ms = 4000", "reconcile_lease_ms = 2500")
                  .replace("bank_timeout_ms = 1500", "bank_timeout_ms = 1000")
                  .replace("retry_base_ms = 200", "retry_base_ms = 1000")
                  .replace("retry_max_ms = 800", "retry_max_ms = 2000")
                  + "reconcile_workers = 4;\nreconcile_batch = 16;\npayment_deadline_s = 60;\n")
        try:
            env.sim_config(latency_ms=800)
            answers = [None] * 16

            def one(i):  # ..55: the first call gets a 503, the re-send is taken
                answers[i] = env.pay(amount=100 * (70 + i) + 55)
            threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual([a.json["status"] for a in answers], ["processing"] * 16, answers)
            for a in answers:
                done = env.wait_status(a.json["id"], {"succeeded", "failed", "requires_review"}, timeout=40)
                self.assertEqual(done.json["status"], "succeeded")
            refs = {a.json["id"]: env.sim_refs(a.json["id"]) for a in answers}
            print("re-sends: %d POST /pay for 16 payments, %d overlapping"
                  % (sum(r["requests"] for r in refs.values()), sum(r["overlapping"] for r in refs.values())),
                  file=sys.stderr)
            for pid, r in refs.items():
                self.assertEqual(r["overlapping"], 0, "payment %s was re-sent by two reconcilers at once: %r"
                                 % (pid, r))
                self.assertEqual(r["count"], 1, r)
        finally:
            env.close()


class ResendRefused(unittest.TestCase):
    """A re-send of a payment whose first call may have reached the bank is
    answered 401/422 (an API-key rotation, say): that does not prove the bank
    lacks the payment, so it stays open, and needs review at the deadline."""

    def start(self, deadline_s):
        # The bank takes the first call but its reply is lost: the bank HAS it.
        env = Env(sim_args=["--timeout-ms", "300", "--no-webhooks"],
                  extra_config=FAST + "payment_deadline_s = %d;\n" % deadline_s)
        env.sim_config(timeout_rate=1)
        r = env.pay(amount=1050)
        self.assertEqual(r.json["status"], "processing", r)
        self.assertEqual(env.sim_refs(r.json["id"])["count"], 1)
        return env, r.json["id"]

    def wait_requests(self, env, pid, n):
        deadline = time.time() + 15
        while env.sim_refs(pid)["requests"] < n:
            now = env.get(pid).json
            self.assertEqual(now["status"], "processing", now)
            self.assertLess(time.time(), deadline, env.sim_refs(pid))
            time.sleep(0.05)

    def test_401_on_resend_keeps_it_open_until_the_bank_answers(self):
        env, pid = self.start(60)
        try:
            env.sim_config(timeout_rate=0, fail_rate=1, fail_status=401)
            self.wait_requests(env, pid, 3)  # two re-sends answered 401
            time.sleep(0.2)
            self.assertEqual(env.get(pid).json["status"], "processing")
            self.assertNotIn("failed", [to for _, to in sources(env, pid)])
            self.assertIn("401", env.sql("SELECT last_attempt_error FROM payments WHERE id='%s'" % pid))
            env.sim_config(fail_rate=0)  # the new key is in place: the bank's first answer again
            done = env.wait_status(pid, {"succeeded", "failed", "requires_review"}, timeout=15)
            self.assertEqual(done.json["status"], "succeeded")
            self.assertEqual(env.sim_refs(pid)["count"], 1)
        finally:
            env.close()

    def test_422_on_resend_until_the_deadline_needs_review(self):
        env, pid = self.start(3)
        try:
            env.sim_config(timeout_rate=0, fail_rate=1, fail_status=422)
            done = env.wait_status(pid, {"succeeded", "failed", "requires_review"}, timeout=15)
            self.assertEqual(done.json["status"], "requires_review", done)
            self.assertEqual(done.json["error"]["code"], "outcome_unknown")
            self.assertGreaterEqual(env.sim_refs(pid)["requests"], 2)
            self.assertNotIn("failed", [to for _, to in sources(env, pid)])
        finally:
            env.close()


class Deadline(unittest.TestCase):
    def test_bank_never_reached_expires(self):
        closed = free_port()  # nothing listens there
        env = Env(bancox={"BANCOX_BASE_URL": "http://127.0.0.1:%d" % closed},
                  extra_config=FAST + "payment_deadline_s = 2;\n")
        try:
            r = env.pay(amount=1050)
            self.assertEqual(r.json["status"], "processing", r)
            self.assertEqual(r.json["error"]["code"], "bank_unreachable")
            done = env.wait_status(r.json["id"], {"failed", "requires_review", "succeeded"}, timeout=15)
            self.assertEqual(done.json["status"], "failed")
            self.assertEqual(done.json["error"]["code"], "expired")
            self.assertIn("never received", done.json["error"]["message"])
            last = env.events(r.json["id"]).json["events"][-1]
            self.assertEqual((last["source"], last["detail"]), ("reconciler", "deadline"))
            self.assertGreater(int(env.sql("SELECT attempts FROM payments WHERE id='%s'" % r.json["id"])), 1)
        finally:
            env.close()

    def test_bank_that_never_answers_needs_review(self):
        env = Env(sim_args=["--timeout-rate", "1", "--timeout-ms", "150", "--no-webhooks"],
                  extra_config=FAST + "payment_deadline_s = 2;\n")
        try:
            r = env.pay(amount=1050)
            self.assertEqual(r.json["status"], "processing", r)
            done = env.wait_status(r.json["id"], {"failed", "requires_review", "succeeded"}, timeout=15)
            # The bank may have the payment: not failed, a person must look.
            self.assertEqual(done.json["status"], "requires_review")
            self.assertEqual(done.json["error"]["code"], "outcome_unknown")
            self.assertEqual(env.sim_refs(r.json["id"])["count"], 1)
        finally:
            env.close()


# One worker with two HTTP threads, so a thread held by a waiting request
# would show at once; the reconciler stays away from the rows under test.
WAITING = """
workers = 1;
threads = 2;
idempotency_wait_ms = 3000;
idempotency_stale_ms = 60000;
recover_after_ms = 60000;
"""


class IdempotencyWaiting(unittest.TestCase):
    """Issue 10 item 6: a request waiting for another request's answer to its
    Idempotency-Key is a suspended connection, not a sleeping HTTP thread."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env(extra_config=WAITING)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def start_first_and_waiters(self, key, amount, waiters):
        """The first request (at the bank) and `waiters` retries of it, each
        started in a thread; returns [(answer, seconds)] filled on join."""
        answers = [None] * (1 + waiters)
        def one(i):
            t = time.time()
            answers[i] = (self.env.pay_idem(key, amount=amount), time.time() - t)
        threads = [threading.Thread(target=one, args=(0,))]
        threads[0].start()
        time.sleep(0.3)  # the first request is suspended at the bank
        for i in range(1, 1 + waiters):
            threads.append(threading.Thread(target=one, args=(i,)))
            threads[-1].start()
            time.sleep(0.1)
        time.sleep(0.2)  # every waiter is waiting
        return threads, answers

    def assert_healthz_prompt(self):
        for _ in range(3):
            t = time.time()
            r = http("GET", self.env.url + "/healthz", timeout=10)
            took = time.time() - t
            self.assertEqual(r.status, 200, r)
            self.assertLess(took, 1.0, "/healthz took %.2f s while requests waited on a key" % took)

    def test_waiters_hold_no_http_thread_and_get_the_first_answer(self):
        key = "wait-" + uuid.uuid4().hex
        self.env.sim_config(latency_ms=2000)
        try:
            threads, answers = self.start_first_and_waiters(key, 4050, 3)
            self.assert_healthz_prompt()
            for t in threads:
                t.join(15)
        finally:
            self.env.sim_config(latency_ms=0)
        first = answers[0][0]
        self.assertEqual(first.status, 201, first)
        for answer, took in answers[1:]:
            self.assertEqual(answer.status, 201, answer)
            self.assertEqual(answer.raw, first.raw)
            self.assertEqual(answer.headers.get("Idempotent-Replayed"), "true")
            self.assertGreater(took, 1.0)  # it waited for the first answer
        self.assertEqual(self.env.sim_refs(first.json["id"])["count"], 1)

    def test_a_wait_that_runs_out_is_409_with_retry_after(self):
        key = "wait-" + uuid.uuid4().hex
        self.env.sim_config(latency_ms=4500)
        try:
            threads, answers = self.start_first_and_waiters(key, 4150, 2)
            self.assert_healthz_prompt()
            for t in threads:
                t.join(15)
        finally:
            self.env.sim_config(latency_ms=0)
        first = answers[0][0]
        self.assertEqual(first.status, 201, first)
        for answer, took in answers[1:]:
            self.assertEqual(answer.status, 409, answer)
            self.assertEqual(answer.json["error"]["code"], "idempotency_key_in_use")
            self.assertEqual(answer.headers.get("Retry-After"), "1")
            self.assertGreater(took, 2.8)  # idempotency_wait_ms = 3000
            self.assertLess(took, 4.4)
        again = self.env.pay_idem(key, amount=4150)
        self.assertEqual(again.raw, first.raw)

    def test_stopping_answers_waiting_requests(self):
        env = Env(extra_config=WAITING.replace("idempotency_wait_ms = 3000", "idempotency_wait_ms = 20000")
                  + "drain_timeout_ms = 300;\n")
        try:
            # A key whose first request is still at work on another host.
            key = "stop-" + uuid.uuid4().hex
            body = {"amount": 4250, "currency": "ARS", "connector": "BANCO_X"}
            pid = "pay_" + uuid.uuid4().hex[:26]
            env.sql("INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state) VALUES"
                    " ('default', 'mer_default', '%s', 'BANCO_X', 4250, 'ARS', 'created')" % pid)
            env.sql("INSERT INTO idempotency_keys (scope, key, request_hash, payment_id, expires_at) VALUES"
                    " ('%s', '%s', '%s', '%s', now() + interval '1 day')"
                    % ("mer_default", key,
                       hashlib.sha256(json.dumps(body).encode()).hexdigest(), pid))
            answers = []
            t = threading.Thread(target=lambda: answers.append((env.pay_idem(key, amount=4250), time.time())))
            t.start()
            time.sleep(0.5)
            stopped = time.time()
            env.host.terminate()
            self.assertEqual(env.host.wait(15), 0, env.log()[-2000:])
            t.join(15)
            self.assertEqual(len(answers), 1)
            answer, at = answers[0]
            self.assertEqual(answer.status, 409, answer)  # told to retry: its host is stopping
            self.assertEqual(answer.headers.get("Retry-After"), "1")
            self.assertLess(at - stopped, 8, "a stopping host kept a waiting request for its whole wait")
            self.assertNotIn("suspended", env.log())
        finally:
            env.close()


STALE = """
workers = 1;
bank_timeout_ms = 1000;
idempotency_wait_ms = 200;
idempotency_stale_ms = 1500;
recover_after_ms = 4000;
reconcile_interval_ms = 200;
reconcile_lease_ms = 2500;
retry_base_ms = 200;
"""


class IdempotencyStale(unittest.TestCase):
    """Issue 10 item 3: a retry after the stale window never stores a
    `created` snapshot as the key's permanent answer.

    The start-up checks make the stale window longer than any bank call, so
    a key goes stale while its payment is still `created` only when the
    first request's host died: here it is killed during the bank call."""

    def test_retry_after_the_stale_window_does_not_freeze_created(self):
        env = Env(sim_args=["--no-webhooks"], extra_config=STALE)
        try:
            env.sim_config(latency_ms=800)
            key = "stale-" + uuid.uuid4().hex
            first = []

            def send_first():
                try:
                    first.append(env.pay_idem(key, amount=4350))
                except Exception as e:  # the host dies under it
                    first.append(e)
            t0 = time.time()
            t = threading.Thread(target=send_first)
            t.start()
            time.sleep(0.3)
            env.kill_host_hard()
            t.join(15)
            env.start_host()
            time.sleep(max(0, t0 + 1.7 - time.time()))  # past idempotency_stale_ms
            early = env.pay_idem(key, amount=4350)
            self.assertEqual(early.status, 201, early)
            self.assertEqual(early.json["status"], "created", early)  # the payment as it is now
            pid = early.json["id"]
            # The reconciler re-sends it after recover_after_ms: the bank's answer.
            env.wait_status(pid, "pending", timeout=20)
            later = env.pay_idem(key, amount=4350)
            self.assertEqual(later.status, 201, later)
            self.assertEqual(later.json["status"], "pending", later)
            again = env.pay_idem(key, amount=4350)
            self.assertEqual(again.raw, later.raw)  # the key's answer, stored once known
            self.assertEqual(env.sim_refs(pid)["count"], 1)
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
