"""The notifier's bookkeeping (issue 16): deliveries are claimed ahead, a
batch per claim, into per-endpoint queues, and a queued delivery whose lease
could no longer cover an attempt is given back unsent.

Deliveries are written straight into the outbox (events and deliveries for
one endpoint, due now), as the outbox triggers would write them, and received
by notify_receiver.js, which verifies each with the official Standard
Webhooks library.
"""
import calendar
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, record_secret  # noqa: E402
from notify_helpers import NPM_PKG, Receiver, endpoints, install_official_library, verified_by_all  # noqa: E402

FAST = "notify_allow_private_targets = true;\nnotify_poll_interval_ms = 500;\nnotify_retry_schedule_s = [1, 1, 2];\n"


def claims(env):
    m = re.search(r"^pagoflex_notify_claims_total (\d+)$", env.metrics(), re.M)
    assert m, "pagoflex_notify_claims_total is not on /metrics"
    return int(m.group(1))


def queue_deliveries(env, endpoint_id, prefix, n):
    """n due deliveries of n events to endpoint_id, in one transaction."""
    merchant = env.sql("SELECT merchant_id FROM webhook_endpoints WHERE id = '%s'" % endpoint_id)
    env.sql("BEGIN; INSERT INTO notify_events (id, merchant_id, type, object_id, payload)"
            " SELECT '%(p)s' || g, '%(m)s', 'payment.succeeded', 'pay_%(p)s' || g,"
            " json_build_object('id', '%(p)s' || g, 'type', 'payment.succeeded')::text"
            " FROM generate_series(1, %(n)d) g;"
            " INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)"
            " SELECT 'dlv_%(p)s' || g, '%(p)s' || g, '%(e)s', now() FROM generate_series(1, %(n)d) g; COMMIT"
            % {"p": prefix, "m": merchant, "n": n, "e": endpoint_id})
    return {"%s%d" % (prefix, g) for g in range(1, n + 1)}


class ClaimBase:
    CONFIG = FAST

    def setUp(self):
        if not install_official_library():
            self.skipTest("npm could not install " + NPM_PKG)
        self.recv = Receiver()
        self.env = Env(extra_config=self.CONFIG, workers=self.WORKERS)

    def tearDown(self):
        self.env.close()
        self.recv.close()

    def endpoint(self, path, mode="ok", **conf):
        r = endpoints(self.env, self.env.auth(), {"url": self.recv.base + path})
        self.assertEqual(r.status, 201, r)
        self.recv.set(path, [record_secret(r.json["secret"])], mode)
        if conf:
            self.recv.conf[path].update(conf)
            self.recv._write()
        return r.json["id"]

    def wait_all_succeeded(self, prefix, n, timeout):
        deadline = time.time() + timeout
        done = 0
        while time.time() < deadline:
            done = int(self.env.sql("SELECT count(*) FROM notify_deliveries WHERE id LIKE 'dlv_%s%%'"
                                    " AND status = 'succeeded'" % prefix))
            if done == n:
                return
            time.sleep(0.1)
        self.fail("%d of %d deliveries succeeded in %ds" % (done, n, timeout))

    def received_once(self, path, events):
        recs = self.recv.records(path)
        ids = [x["headers"]["webhook-id"] for x in recs]
        self.assertEqual(sorted(ids), sorted(events), "every delivery arrives exactly once")
        self.assertTrue(all(verified_by_all(x) for x in recs))
        for x in recs:
            self.assertEqual(json.loads(x["body"])["id"], x["headers"]["webhook-id"])


class ClaimAheadTest(ClaimBase, unittest.TestCase):
    """A backlog for one fast endpoint (notify_endpoint_max_in_flight = 4) is
    claimed a batch at a time, not a claim per delivery."""
    WORKERS = 2

    def test_few_claims_per_delivery_each_arrives_once(self):
        n = 400
        ep = self.endpoint("/fast")
        time.sleep(1.2)  # both notifiers polling, idle
        before = claims(self.env)
        started = time.time()
        events = queue_deliveries(self.env, ep, "evt_ca", n)
        self.wait_all_succeeded("evt_ca", n, timeout=60)
        elapsed = time.time() - started
        made = claims(self.env) - before
        print("%d deliveries in %.2fs with %d claims (%.3f per delivery)" % (n, elapsed, made, made / n))
        # Idle polls included: 2 workers every 500 ms.
        self.assertLessEqual(made / n, 0.3, "%d claims for %d deliveries" % (made, n))
        time.sleep(1)  # nothing is sent twice afterwards
        self.received_once("/fast", events)
        self.assertEqual(self.env.sql("SELECT count(*) FROM notify_deliveries WHERE id LIKE 'dlv_evt_ca%'"
                                      " AND attempts <> 1"), "0")


class ShortLeaseTest(ClaimBase, unittest.TestCase):
    """One worker, one slot per endpoint, a receiver that takes 2.5 s per
    delivery: the first claim queues a second delivery behind the first, and
    that one waits in the queue longer than NOTIFIER_HOLD_MS (1 s), so its
    lease could no longer cover a whole attempt. It is given back unsent and
    delivered later, once, with no attempt counted for the give-back."""
    WORKERS = 1
    CONFIG = FAST + "notify_timeout_ms = 5000;\nnotify_endpoint_max_in_flight = 1;\n"

    def test_queued_delivery_with_short_lease_given_back_then_delivered_once(self):
        ep = self.endpoint("/slow", mode="slow", delay_ms=2500)
        events = queue_deliveries(self.env, ep, "evt_sl", 3)
        self.wait_all_succeeded("evt_sl", 3, timeout=40)
        log = self.env.log()
        back = set(re.findall(r"delivery (dlv_evt_sl\d+) to endpoint %s given back unsent" % ep, log))
        self.assertTrue(back, "no queued delivery was given back:\n" + log[-3000:])
        recs = self.recv.records("/slow")
        # Each given-back delivery was sent only after it was given back:
        # never while this host held it with a short lease.
        for dlv in back:
            line = next(x for x in log.splitlines() if dlv + " to endpoint" in x and "given back" in x)
            given_at = calendar.timegm(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + line[19:23])
            sent = [x["at"] / 1000.0 for x in recs if "dlv_" + x["headers"]["webhook-id"] == dlv]
            self.assertEqual(len(sent), 1, dlv)
            self.assertGreater(sent[0], given_at - 0.05, dlv)
        time.sleep(1)
        self.received_once("/slow", events)
        # Each was attempted once: the give-back took back the attempt its claim counted.
        self.assertEqual(self.env.sql("SELECT string_agg(attempts::text, ',') FROM notify_deliveries"
                                      " WHERE id LIKE 'dlv_evt_sl%'"), "1,1,1")


if __name__ == "__main__":
    unittest.main()
