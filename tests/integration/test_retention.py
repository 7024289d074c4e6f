"""Retention: every worker's janitor purges expired idempotency keys, old
webhook events of terminal payments, (when configured) old history of
terminal payments and old notification events with their deliveries, even
with reconcile_workers = 0; private plugin copies nothing uses any more are
removed, the ones in use are kept."""
import hashlib
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Env  # noqa: E402

FAST = "reconcile_workers = 0;\njanitor_interval_ms = 200;\n"

# Payments of every kind, 40 days old unless named "new", with two history
# rows and two webhook events each (received when the payment was last
# changed), and two orphan events (no payment) as old.
FIXTURE = """
INSERT INTO payments (connector_account, merchant_id, id, connector, amount, currency, state, provider_reference_id, created_at, updated_at)
SELECT 'default', 'mer_default', id, 'BANCO_X', 100, 'EUR', state, 'bx_' || id, at, at FROM (VALUES
    ('pay_old_succeeded', 'succeeded', now() - interval '40 days'),
    ('pay_old_failed', 'failed', now() - interval '40 days'),
    ('pay_old_canceled', 'canceled', now() - interval '40 days'),
    ('pay_old_pending', 'pending', now() - interval '40 days'),
    ('pay_old_review', 'requires_review', now() - interval '40 days'),
    ('pay_new_succeeded', 'succeeded', now() - interval '2 days')) AS v (id, state, at);
INSERT INTO payment_history (payment_id, from_state, to_state, source, at)
SELECT id, NULL, 'created', 'api', updated_at FROM payments WHERE id LIKE 'pay\\_%'
UNION ALL
SELECT id, 'created', state, 'webhook', updated_at FROM payments WHERE id LIKE 'pay\\_%';
INSERT INTO webhook_events (connector_account, connector, event_id, payment_id, state, tx_id, body, received_at, applied)
SELECT 'default', 'BANCO_X', 'evt_' || id || '_' || n, id, state, 'bx_' || id, repeat('x', 2000), updated_at, true
FROM payments, generate_series(1, 2) n WHERE id LIKE 'pay\\_%';
INSERT INTO webhook_events (connector_account, connector, event_id, payment_id, state, tx_id, body, received_at, applied)
SELECT 'default', 'BANCO_X', 'evt_orphan_' || n, NULL, 'succeeded', 'bx_unknown_' || n, '{}',
       now() - interval '40 days', false FROM generate_series(1, 2) n;
"""


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def per_payment(env, table):
    rows = env.sql("SELECT payment_id, count(*) FROM %s WHERE payment_id IS NOT NULL "
                   "GROUP BY payment_id" % table)
    return {line.split("|")[0]: int(line.split("|")[1]) for line in rows.splitlines() if line}


class Janitor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(workers=2, extra_config=FAST + "payment_history_retention_days = 30;\n")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_expired_idempotency_keys_purged_without_reconciler(self):
        env = self.env
        env.sql("INSERT INTO idempotency_keys (scope, key, request_hash, expires_at)"
                " SELECT 'test', 'expired-' || g, 'h', now() - interval '1 hour'"
                " FROM generate_series(1, 20000) g;"
                "INSERT INTO idempotency_keys (scope, key, request_hash, expires_at)"
                " SELECT 'test', 'live-' || g, 'h', now() + interval '1 hour'"
                " FROM generate_series(1, 100) g")
        t0 = time.time()
        wait_until(lambda: env.sql("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'expired-%'") == "0",
                   5, "20,000 expired keys to be purged (janitor every 200 ms, no reconciler)")
        took = time.time() - t0
        self.assertEqual(env.sql("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'live-%'"), "100")
        sys.stderr.write("\n  20,000 expired keys gone %.2f s after insert (%.0f rows/s at most)\n"
                         % (took, 20000 / max(took, 0.001)))
        self.assertIn("janitor:", env.log())

    def test_old_events_and_history_of_terminal_payments_only(self):
        env = self.env
        env.sql(FIXTURE)
        wait_until(lambda: "pay_old_succeeded" not in per_payment(env, "webhook_events"), 5,
                   "old events of terminal payments to be purged")
        time.sleep(0.5)  # a few more rounds: nothing else may go
        events = per_payment(env, "webhook_events")
        history = per_payment(env, "payment_history")
        for gone in ("pay_old_succeeded", "pay_old_failed", "pay_old_canceled"):
            self.assertNotIn(gone, events)
            self.assertNotIn(gone, history)
            # The payment itself, with its final state, is kept forever.
            self.assertEqual(env.sql("SELECT count(*) FROM payments WHERE id = '%s'" % gone), "1")
        # Open payments keep everything, however old; recent terminal ones too.
        for kept in ("pay_old_pending", "pay_old_review", "pay_new_succeeded"):
            self.assertEqual(events.get(kept), 2, kept)
            self.assertEqual(history.get(kept), 2, kept)
        # Orphans still wait for their payment's bank id.
        self.assertEqual(env.sql("SELECT count(*) FROM webhook_events WHERE payment_id IS NULL"), "2")
        # A purged payment still answers, with an empty history.
        r = env.events("pay_old_succeeded")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["events"], [])

    def test_old_notification_events_go_with_their_deliveries(self):
        # Old events whose deliveries are done go, their deliveries with them
        # (no foreign key cascades since migration 19); an old event with a
        # delivery still pending stays, and so do recent ones. A pending
        # delivery whose endpoint is gone (left by a state change racing the
        # endpoint's DELETE) is removed whatever its age.
        env = self.env
        env.sql("INSERT INTO webhook_endpoints (id, merchant_id, url, secret_enc)"
                " VALUES ('we_ret', 'mer_default', 'https://example.com/ret', 'sealed');"
                "INSERT INTO notify_events (id, merchant_id, type, object_id, payload, created_at)"
                " SELECT 'evt_ret_' || n, 'mer_default', 'payment.succeeded', 'pay_ret', '{}', now() - age"
                " FROM (VALUES ('old_done', interval '40 days'), ('old_pending', interval '40 days'),"
                " ('new_done', interval '2 days')) AS v (n, age);"
                "INSERT INTO notify_deliveries"
                " (id, event_id, endpoint_id, status, next_attempt_at, created_at)"
                " SELECT 'dlv_ret_' || n, 'evt_ret_' || e, ep, st,"
                " CASE WHEN st = 'pending' THEN now() + interval '1 day' END, now() - interval '40 days'"
                " FROM (VALUES ('old_done_1', 'old_done', 'we_ret', 'succeeded'),"
                " ('old_done_2', 'old_done', 'we_ret', 'failed'),"
                " ('old_pending', 'old_pending', 'we_ret', 'pending'),"
                " ('new_done', 'new_done', 'we_ret', 'succeeded'),"
                " ('orphan', 'new_done', 'we_gone', 'pending')) AS v (n, e, ep, st)")
        wait_until(lambda: env.sql("SELECT count(*) FROM notify_events WHERE id = 'evt_ret_old_done'") == "0",
                   5, "the old delivered notification event to be purged")
        wait_until(lambda: env.sql("SELECT count(*) FROM notify_deliveries"
                                   " WHERE id = 'dlv_ret_orphan'") == "0", 5,
                   "the delivery of a deleted endpoint to be removed")
        time.sleep(0.5)
        self.assertEqual(env.sql("SELECT string_agg(id, ',' ORDER BY id) FROM notify_events"
                                 " WHERE id LIKE 'evt_ret_%'"), "evt_ret_new_done,evt_ret_old_pending")
        self.assertEqual(env.sql("SELECT string_agg(id, ',' ORDER BY id) FROM notify_deliveries"
                                 " WHERE id LIKE 'dlv_ret_%'"), "dlv_ret_new_done,dlv_ret_old_pending")

class Defaults(unittest.TestCase):
    def test_history_is_kept_forever_by_default(self):
        env = Env(workers=1, extra_config=FAST)
        try:
            env.sql(FIXTURE)
            wait_until(lambda: "pay_old_succeeded" not in per_payment(env, "webhook_events"), 5,
                       "old events of terminal payments to be purged (30 days by default)")
            time.sleep(0.5)
            history = per_payment(env, "payment_history")
            for pid in ("pay_old_succeeded", "pay_old_failed", "pay_old_canceled", "pay_new_succeeded"):
                self.assertEqual(history.get(pid), 2, pid)
            self.assertEqual(per_payment(env, "webhook_events").get("pay_new_succeeded"), 2)
        finally:
            env.close()


class PrivateCopies(unittest.TestCase):
    def test_unused_copies_removed_used_ones_kept(self):
        secret = "echo_" + uuid.uuid4().hex
        env = Env(workers=2, extra_config=FAST)
        try:
            cache = os.path.join(env.dir, "cache")

            def copy_of(fixture):
                with open(os.path.join(BUILD, "fixtures", fixture + ".so"), "rb") as f:
                    return "echo_pay-%.16s.so" % hashlib.sha256(f.read()).hexdigest()

            v1, v2 = copy_of("echo_pay"), copy_of("echo_pay_v2")
            env.add_plugin("echo_pay", {"ECHOPAY_SECRET": secret})
            env.reload()
            self.assertIn(v1, os.listdir(cache))
            # Upgrade to v2: once generation 2 has drained, nothing uses v1.
            with open(os.path.join(BUILD, "fixtures", "echo_pay_v2.so"), "rb") as f:
                data = f.read()
            with open(os.path.join(env.plugin_dir, "echo_pay.so"), "wb") as f:
                f.write(data)
            env.reload()
            wait_until(lambda: v1 not in os.listdir(cache), 15,
                       "the unused copy %s to be removed: %s" % (v1, os.listdir(cache)))
            names = os.listdir(cache)
            self.assertIn(v2, names)
            self.assertTrue(any(n.startswith("banco_x-") for n in names), names)
            # A broken replacement falls back to v2, which therefore stays.
            with open(os.path.join(BUILD, "fixtures", "bad_magic.so"), "rb") as f:
                data = f.read()
            with open(os.path.join(env.plugin_dir, "echo_pay.so"), "wb") as f:
                f.write(data)
            env.reload()
            self.assertEqual(env.connectors()["ECHO_PAY"]["version"], "0.4.0")
            time.sleep(1.0)
            self.assertIn(v2, os.listdir(cache))
            self.assertEqual(env.pay(amount=100, currency="EUR", connector="ECHO_PAY").status, 201)
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
