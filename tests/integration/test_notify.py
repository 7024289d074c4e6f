"""Notifications to merchants (issue 13): webhook endpoints, the outbox, and
delivery per the Standard Webhooks spec.

Every delivery is received by tests/integration/notify_receiver.js, which
verifies it with the official npm `standardwebhooks` package (pinned in
notify_helpers.py, installed by the first test that needs it; the test is
skipped, exit 77, only when npm cannot install it). The host runs with notify_allow_private_targets so it
may deliver to the receiver on 127.0.0.1, except in the SSRF test, which
runs with the default (refused).
"""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import PG, Env, http, record_secret  # noqa: E402
from notify_helpers import (NPM_PKG, Receiver, add_merchant, endpoints, install_official_library,  # noqa: E402
                            verified_by_all)

FAST = ("notify_allow_private_targets = true;\nnotify_timeout_ms = 1500;\nnotify_poll_interval_ms = 100;\n"
        "notify_retry_schedule_s = [1, 1, 2];\n")


class NotifyBase:
    """A host (merchants A, the default one, and B) and a receiver for the class's tests."""
    CONFIG = FAST

    @classmethod
    def setUpClass(cls):
        if not install_official_library():
            raise unittest.SkipTest("npm could not install " + NPM_PKG)
        cls.recv = Receiver()
        cls.env = Env(extra_config=cls.CONFIG)
        cls.a = cls.env.auth()
        cls.b = add_merchant(cls.env, "mer_b")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()
        cls.recv.close()

    def make_endpoint(self, path, auth=None, events=None, mode="ok"):
        body = {"url": self.recv.base + path, "description": "test " + path}
        if events:
            body["events"] = events
        r = endpoints(self.env, auth or self.a, body)
        self.assertEqual(r.status, 201, r)
        secret = record_secret(r.json["secret"])
        self.recv.set(path, [secret], mode)
        return r.json

    def history(self, pid):
        return self.env.sql("SELECT string_agg(to_state, ',' ORDER BY id) FROM payment_history"
                            " WHERE payment_id = '%s' AND from_state IS NOT NULL" % pid).split(",")


class NotifyTest(NotifyBase, unittest.TestCase):
    # ---- the routes -------------------------------------------------------
    def test_create_validates_and_shows_secret_once(self):
        bad = [({"url": "ftp://example.com/x"}, 422, "url"), ({}, 422, "url"), ({"url": 7}, 422, "url"),
               ({"url": "https://example.com/" + "a" * 2048}, 422, "url"),
               ({"url": "https://user:pw@example.com/"}, 422, "url"),
               ({"url": "https://example.com/", "events": ["payment.nope"]}, 422, "events"),
               ({"url": "https://example.com/", "events": []}, 422, "events"),
               ({"url": "https://example.com/", "colour": "red"}, 400, "colour")]
        before = self.env.sql("SELECT count(*) FROM webhook_endpoints")
        for body, status, field in bad:
            r = endpoints(self.env, self.a, body)
            self.assertEqual((r.status, r.json["error"]["field"]), (status, field), (body, r))
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_endpoints"), before)
        every = endpoints(self.env, self.a, {"url": "https://example.com/every", "events": ["*"]})
        self.assertEqual((every.status, every.json["events"]), (201, ["*"]), every)
        endpoints(self.env, self.a, path="/" + every.json["id"], method="DELETE")
        made = self.make_endpoint("/created", events=["payment.succeeded", "payment.succeeded"])
        self.assertTrue(made["secret"].startswith("whsec_"))
        self.assertEqual(made["events"], ["payment.succeeded"])
        got = endpoints(self.env, self.a, path="/" + made["id"])
        self.assertEqual(got.status, 200, got)
        self.assertNotIn("secret", got.json)
        listed = endpoints(self.env, self.a).json["data"]
        self.assertIn(made["id"], [e["id"] for e in listed])
        self.assertFalse(any("secret" in e for e in listed))
        # The secret is stored encrypted: its text is nowhere in the row.
        row = self.env.sql("SELECT encode(secret_enc, 'escape') FROM webhook_endpoints WHERE id = '%s'" % made["id"])
        self.assertNotIn(made["secret"][6:], row)
        self.assertNotIn(made["secret"], self.env.log())
        r = endpoints(self.env, self.a, path="/" + made["id"], method="DELETE")
        self.assertEqual((r.status, r.json["deleted"]), (200, True), r)
        self.assertEqual(endpoints(self.env, self.a, path="/" + made["id"]).status, 404)

    def test_other_merchants_endpoint_is_404_like_unknown(self):
        mine = self.make_endpoint("/iso-a")
        for path, method in [("", "GET"), ("/deliveries", "GET"), ("/rotate_secret", "POST"), ("", "DELETE")]:
            theirs = endpoints(self.env, self.b, path="/" + mine["id"] + path, method=method)
            unknown = endpoints(self.env, self.b, path="/we_nosuchendpoint" + path, method=method)
            self.assertEqual((theirs.status, theirs.json["error"]["code"]), (404, "not_found"), theirs)
            self.assertEqual(theirs.json["error"]["message"].replace(mine["id"], "X"),
                             unknown.json["error"]["message"].replace("we_nosuchendpoint", "X"))
        self.assertNotIn(mine["id"], [e["id"] for e in endpoints(self.env, self.b).json["data"]])
        self.assertEqual(endpoints(self.env, self.a, path="/" + mine["id"]).status, 200)
        self.assertEqual(http("GET", self.env.url + "/v1/webhook_endpoints").status, 401)

    # ---- delivery ---------------------------------------------------------
    def test_every_state_change_arrives_once_verified_and_isolated(self):
        ep_a = self.make_endpoint("/all-a")
        ep_b = self.make_endpoint("/all-b", auth=self.b)
        pays = []
        for kind in ("auto", "manual", "cancel"):
            fields = {} if kind == "auto" else {"capture_method": "manual"}
            r = self.env.pay(**fields)
            self.assertEqual(r.status, 201, r)
            pid = r.json["id"]
            if kind != "auto":
                self.env.wait_status(pid, ["requires_capture"])
                op = "capture" if kind == "manual" else "cancel"
                c = http("POST", self.env.url + "/v1/payments/%s/%s" % (pid, op), {}, self.a)
                self.assertIn(c.status, (200, 202), c)
            pays.append(pid)
        final = {pays[0]: "succeeded", pays[1]: "succeeded", pays[2]: "canceled"}
        for pid, want in final.items():
            self.env.wait_status(pid, [want], timeout=20)
        rf = http("POST", self.env.url + "/v1/refunds", {"payment_id": pays[0]}, self.a)
        self.assertIn(rf.status, (200, 201, 202), rf)
        rid = rf.json["id"]
        b_pay = http("POST", self.env.url + "/v1/payments",
                     {"amount": 500, "currency": "ARS", "connector": "BANCO_X"}, self.b)
        self.assertEqual(b_pay.status, 201, b_pay)
        deadline = time.time() + 20
        while time.time() < deadline and http("GET", self.env.url + "/v1/refunds/" + rid,
                                               headers=self.a).json["status"] == "pending":
            time.sleep(0.1)
        expect = {pid: ["payment." + s for s in self.history(pid)] for pid in pays}
        expect[rid] = ["refund.succeeded"]

        def complete():
            got = {}
            for rec in self.recv.records("/all-a"):
                ev = json.loads(rec["body"])
                got.setdefault(ev["data"]["id"], []).append(rec)
            return got if all(len({r["headers"]["webhook-id"] for r in got.get(k, [])}) == len(v)
                              for k, v in expect.items()) else None
        got = self.recv.wait(complete, what="every state change at /all-a")
        for oid, types in expect.items():
            recs = got[oid]
            ids = {r["headers"]["webhook-id"] for r in recs}
            self.assertEqual(len(ids), len(types), (oid, types, recs))  # one event id per change
            seen_types = sorted({json.loads(r["body"])["type"] for r in recs})
            self.assertEqual(seen_types, sorted(types), oid)
            for r in recs:
                self.assertTrue(verified_by_all(r), r)
                self.assertEqual((r["method"], r["contentType"]), ("POST", "application/json"))
                ev = json.loads(r["body"])
                self.assertEqual(set(ev), {"type", "timestamp", "data"})
                self.assertTrue(r["headers"]["webhook-id"].startswith("evt_"))
                self.assertRegex(r["headers"]["webhook-signature"], r"^v1,[A-Za-z0-9+/=]{44}$")
        # The last event carries the object as the API shows it.
        last = [json.loads(r["body"]) for r in got[pays[2]] if json.loads(r["body"])["type"] == "payment.canceled"][0]
        self.assertEqual(last["data"], self.env.get(pays[2]).json)
        refund_ev = json.loads(got[rid][0]["body"])
        self.assertEqual(refund_ev["data"], http("GET", self.env.url + "/v1/refunds/" + rid, headers=self.a).json)
        # Merchant isolation: B's endpoint gets only B's payment, A's none of it.
        self.recv.wait(lambda: self.recv.records("/all-b"), what="B's delivery")
        time.sleep(1)
        b_ids = {json.loads(r["body"])["data"]["id"] for r in self.recv.records("/all-b")}
        self.assertEqual(b_ids, {b_pay.json["id"]})
        self.assertNotIn(b_pay.json["id"], got)
        self.assertTrue(all(verified_by_all(r) for r in self.recv.records("/all-b")))
        # The delivery log.
        log = endpoints(self.env, self.a, path="/%s/deliveries" % ep_a["id"]).json["data"]
        self.assertEqual(sum(len(v) for v in expect.values()), len(log))
        self.assertTrue(all(d["status"] == "succeeded" and d["last_http_status"] == 200 for d in log), log)
        delivered = [line for line in self.env.metrics().splitlines()
                     if line.startswith('pagoflex_notify_attempts_total{outcome="delivered"}')]
        self.assertGreaterEqual(int(delivered[0].split()[-1]), len(log), delivered)
        endpoints(self.env, self.b, path="/" + ep_b["id"], method="DELETE")
        endpoints(self.env, self.a, path="/" + ep_a["id"], method="DELETE")

    def test_outbox_is_written_by_the_changing_transaction_only(self):
        # The outbox is the database's: a change rolled back writes no event,
        # and a change made by any statement (here one no host code makes)
        # writes one, delivered like the others.
        ep = self.make_endpoint("/tx", events=["payment.failed"])
        pid = self.env.pay(capture_method="manual").json["id"]
        self.env.wait_status(pid, ["requires_capture"])
        count = "SELECT count(*) FROM notify_events WHERE object_id = '%s' AND type = 'payment.failed'" % pid
        self.env.sql("BEGIN; UPDATE payments SET state = 'failed' WHERE id = '%s'; ROLLBACK;" % pid)
        self.assertEqual(self.env.sql(count), "0")
        time.sleep(0.5)
        self.assertEqual(self.recv.records("/tx"), [])
        self.env.sql("UPDATE payments SET state = 'failed', error_code = 'operator' WHERE id = '%s'" % pid)
        self.assertEqual(self.env.sql(count), "1")
        rec = self.recv.wait(lambda: self.recv.records("/tx"), what="the committed change's event")[0]
        ev = json.loads(rec["body"])
        self.assertEqual((ev["type"], ev["data"]["id"], ev["data"]["error"]["code"]),
                         ("payment.failed", pid, "operator"))
        self.assertEqual(rec["headers"]["webhook-id"], self.env.sql(
            "SELECT id FROM notify_events WHERE object_id = '%s' AND type = 'payment.failed'" % pid))
        endpoints(self.env, self.a, path="/" + ep["id"], method="DELETE")

    def test_failing_endpoint_retried_with_same_id_then_failed_and_resent(self):
        ep = self.make_endpoint("/fail", events=["payment.succeeded"], mode="fail")
        pid = self.env.pay().json["id"]
        self.env.wait_status(pid, ["succeeded"])
        # First attempt, then the schedule [1, 1, 2] s: four attempts in all.
        recs = self.recv.wait(lambda: len(self.recv.records("/fail")) >= 4 and self.recv.records("/fail"),
                              timeout=30, what="4 attempts")
        self.assertEqual(len({r["headers"]["webhook-id"] for r in recs}), 1, recs)
        self.assertEqual(len({r["body"] for r in recs}), 1)
        self.assertTrue(all(verified_by_all(r) for r in recs))
        deadline = time.time() + 10
        while time.time() < deadline:
            log = endpoints(self.env, self.a, path="/%s/deliveries" % ep["id"]).json["data"]
            if log and log[0]["status"] == "failed":
                break
            time.sleep(0.2)
        self.assertEqual((log[0]["status"], log[0]["attempts"], log[0]["last_http_status"], log[0]["last_error"]),
                         ("failed", 4, 500, "HTTP 500"), log)
        self.assertEqual(log[0]["event_id"], recs[0]["headers"]["webhook-id"])
        time.sleep(2.5)
        self.assertEqual(len(self.recv.records("/fail")), 4)  # nothing after failed
        # A manual resend: the same event (the same webhook-id); while it is
        # pending (the endpoint hangs now) another resend is refused.
        self.recv.set("/fail", mode="hang")
        r = endpoints(self.env, self.a, {}, path="/%s/deliveries/%s/resend" % (ep["id"], log[0]["id"]))
        self.assertEqual((r.status, r.json["event_id"], r.json["status"]), (202, log[0]["event_id"], "pending"), r)
        again = endpoints(self.env, self.a, {}, path="/%s/deliveries/%s/resend" % (ep["id"], log[0]["id"]))
        self.assertEqual((again.status, again.json["error"]["code"]), (409, "delivery_pending"), again)
        self.assertIn(r.json["id"], again.json["error"]["message"])
        self.recv.set("/fail", mode="ok")  # its retry, after the hung attempt's timeout, is answered
        ok = self.recv.wait(lambda: [x for x in self.recv.records("/fail") if x["status"] == 200], what="resend")
        self.assertEqual(ok[0]["headers"]["webhook-id"], log[0]["event_id"])
        endpoints(self.env, self.a, path="/" + ep["id"], method="DELETE")

    def test_gone_endpoint_is_not_retried(self):
        ep = self.make_endpoint("/gone", events=["payment.succeeded"], mode="gone")
        pid = self.env.pay().json["id"]
        self.env.wait_status(pid, ["succeeded"])
        self.recv.wait(lambda: self.recv.records("/gone"), what="the attempt")
        time.sleep(2.5)  # past the first two retries of [1, 1, 2]
        self.assertEqual(len(self.recv.records("/gone")), 1)
        log = endpoints(self.env, self.a, path="/%s/deliveries" % ep["id"]).json["data"]
        self.assertEqual([(d["status"], d["attempts"], d["last_http_status"]) for d in log], [("failed", 1, 410)])
        endpoints(self.env, self.a, path="/" + ep["id"], method="DELETE")

    def test_rotation_signs_with_both_secrets(self):
        ep = self.make_endpoint("/rotate", events=["payment.succeeded"])
        old = self.recv.conf["/rotate"]["secrets"][0]
        r = endpoints(self.env, self.a, {}, path="/%s/rotate_secret" % ep["id"])
        self.assertEqual(r.status, 200, r)
        new = record_secret(r.json["secret"])
        self.assertNotEqual(new, old)
        self.assertIn("previous_secret_expires_at", r.json)
        self.recv.set("/rotate", [old, new])
        pid = self.env.pay().json["id"]
        rec = self.recv.wait(lambda: [x for x in self.recv.records("/rotate") if pid in x["body"]],
                             what="delivery after rotation")[0]
        sigs = rec["headers"]["webhook-signature"].split(" ")
        self.assertEqual(len(sigs), 2, rec)
        self.assertEqual(rec["verified"], [True, True])  # the official library accepts either secret
        self.assertNotIn("secret", endpoints(self.env, self.a, path="/" + ep["id"]).json)
        endpoints(self.env, self.a, path="/" + ep["id"], method="DELETE")


class NotifyJanitorTest(NotifyBase, unittest.TestCase):
    """The janitor (every 200 ms here) and the deliveries foreign keys no longer cascade to (migration 19)."""

    CONFIG = FAST + "janitor_interval_ms = 200;\n"

    def test_delivery_of_endpoint_deleted_meanwhile_never_sent_and_removed(self):
        # A state change whose transaction has written a delivery to an
        # endpoint, still open while the endpoint is deleted: the DELETE does
        # not wait for it, the delivery it then commits is never sent (the
        # other endpoint's, of the same event, is), and the janitor removes it.
        auth = add_merchant(self.env, "mer_race")
        raced = self.make_endpoint("/raced", auth=auth)
        self.make_endpoint("/beside", auth=auth)
        conn = PG.replace("dbname=postgres", "dbname=" + self.env.db)
        tx = subprocess.Popen(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", conn],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            tx.stdin.write("BEGIN;\n"
                           "INSERT INTO payments (id, connector, amount, currency, state, merchant_id,"
                           " connector_account) VALUES ('pay_raced', 'BANCO_X', 100, 'EUR', 'created',"
                           " 'mer_race', 'default');\n"
                           "UPDATE payments SET state = 'failed', error_code = 'operator'"
                           " WHERE id = 'pay_raced';\n"
                           "SELECT count(*) FROM notify_deliveries WHERE endpoint_id = '%s';\n" % raced["id"])
            tx.stdin.flush()
            self.assertEqual(tx.stdout.readline().strip(), "1")  # written, not committed
            t = time.time()
            r = endpoints(self.env, auth, path="/" + raced["id"], method="DELETE")
            self.assertEqual((r.status, r.json["deleted"]), (200, True), r)
            self.assertLess(time.time() - t, 2.0, "the DELETE waited for the open state change")
            tx.stdin.write("COMMIT;\n")
            tx.stdin.close()
            self.assertEqual(tx.wait(timeout=10), 0)
        finally:
            if tx.poll() is None:
                tx.kill()
        event = self.env.sql("SELECT id FROM notify_events WHERE object_id = 'pay_raced'")
        self.assertTrue(event)
        self.recv.wait(lambda: [x for x in self.recv.records("/beside")
                                if x["headers"]["webhook-id"] == event],
                       what="the other endpoint's delivery of the event")
        self.recv.wait(lambda: self.env.sql("SELECT count(*) FROM notify_deliveries WHERE endpoint_id = '%s'"
                                            % raced["id"]) == "0", timeout=5,
                       what="the janitor to remove the deleted endpoint's delivery")
        time.sleep(0.5)
        self.assertEqual(self.recv.records("/raced"), [])
        self.assertEqual(self.env.sql("SELECT count(*) FROM notify_deliveries WHERE event_id = '%s'"
                                      % event), "1")


class NotifyHungTest(NotifyBase, unittest.TestCase):
    """An endpoint that never answers, with a long notify_timeout_ms."""

    CONFIG = FAST.replace("notify_timeout_ms = 1500", "notify_timeout_ms = 10000")

    def test_hung_endpoint_delays_neither_payments_nor_other_merchants(self):
        # notify_timeout_ms is 10 s here: a payment or a delivery held up by the
        # hung endpoint would take that long.
        hung = self.make_endpoint("/hang", mode="hang")
        other = self.make_endpoint("/other-b", auth=self.b)
        started = time.time()
        slowest = 0
        for _ in range(6):
            t = time.time()
            r = self.env.pay()
            slowest = max(slowest, time.time() - t)
            self.assertEqual(r.status, 201, r)
        self.recv.wait(lambda: len({x["headers"]["webhook-id"] for x in self.recv.records("/hang")}) >= 4,
                       what="hung deliveries in flight")
        # The hung endpoint holds notify_endpoint_max_in_flight (4) requests per worker;
        # B's payment is delivered at once meanwhile.
        t = time.time()
        bp = http("POST", self.env.url + "/v1/payments", {"amount": 300, "currency": "ARS", "connector": "BANCO_X"},
                  self.b).json["id"]
        self.recv.wait(lambda: [x for x in self.recv.records("/other-b") if bp in x["body"]], timeout=5,
                       what="B's delivery beside a hung endpoint")
        self.assertLess(time.time() - t, 3.0)
        self.assertLess(slowest, 3.0, "a payment took %.2fs while an endpoint hung" % slowest)
        self.assertLess(time.time() - started, 9)


class NotifySsrfTest(unittest.TestCase):
    """Default settings: private targets are refused at registration and at connect time."""

    @classmethod
    def setUpClass(cls):
        if not install_official_library():
            raise unittest.SkipTest("npm could not install " + NPM_PKG)
        cls.recv = Receiver()
        cls.env = Env(extra_config="notify_poll_interval_ms = 100;\nnotify_retry_schedule_s = [1];\n")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()
        cls.recv.close()

    def test_private_targets_refused(self):
        before = self.env.sql("SELECT count(*) FROM webhook_endpoints")
        for url in ["http://127.0.0.1:%d/x" % self.recv.port, "http://localhost/x", "http://LOCALHOST./x",
                    "http://a.localhost/x", "http://10.1.2.3/", "http://192.168.0.1/", "http://172.16.0.1/",
                    "http://169.254.169.254/latest", "http://0.0.0.0/", "http://[::1]/", "http://[::]/",
                    "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/", "http://[fc00::1]/", "http://[ff02::1]/",
                    "http://2130706433/", "http://0x7f.1/", "http://224.0.0.1/", "http://100.64.0.1/"]:
            r = endpoints(self.env, self.env.auth(), {"url": url})
            self.assertEqual((r.status, r.json["error"]["field"]), (422, "url"), (url, r))
        self.assertEqual(self.env.sql("SELECT count(*) FROM webhook_endpoints"), before)

    def test_connect_time_check_on_the_resolved_address(self):
        # A name that is not an address literal passes registration; the
        # address it resolves to is checked on connect (DNS rebinding).
        name = None
        for candidate in ("localtest.invalid", os.uname().nodename):
            try:
                import socket
                addrs = {a[4][0] for a in socket.getaddrinfo(candidate, 80)}
            except OSError:
                continue
            if addrs and all(a.startswith(("127.", "10.", "172.", "192.168.", "::1", "fe80")) for a in addrs):
                name = candidate
                break
        if not name:
            self.skipTest("no host name here resolves to a private address")
        r = endpoints(self.env, self.env.auth(), {"url": "http://%s:%d/rebind" % (name, self.recv.port)})
        self.assertEqual(r.status, 201, r)
        record_secret(r.json["secret"])
        pid = self.env.pay().json["id"]
        self.env.wait_status(pid, ["succeeded"])
        deadline = time.time() + 10
        log = []
        while time.time() < deadline:
            log = endpoints(self.env, self.env.auth(), path="/%s/deliveries" % r.json["id"]).json["data"]
            if log and log[0]["last_error"]:
                break
            time.sleep(0.2)
        self.assertTrue(log and "not public" in log[0]["last_error"], log)
        self.assertEqual(self.recv.records("/rebind"), [])


class NotifyCrashTest(unittest.TestCase):
    """kill -9 a host with deliveries in flight: another host sends every event, with its id."""

    def test_killed_host_deliveries_taken_over(self):
        if not install_official_library():
            self.skipTest("npm could not install " + NPM_PKG)
        recv = Receiver()
        env = Env(extra_config=FAST.replace("notify_timeout_ms = 1500", "notify_timeout_ms = 3000"))
        try:
            r = endpoints(env, env.auth(), {"url": recv.base + "/crash", "events": ["payment.succeeded"]})
            self.assertEqual(r.status, 201, r)
            recv.set("/crash", [record_secret(r.json["secret"])], "hang")
            pids = [env.pay().json["id"] for _ in range(5)]
            for pid in pids:
                env.wait_status(pid, ["succeeded"])
            recv.wait(lambda: len({x["headers"]["webhook-id"] for x in recv.records("/crash")}) >= 5,
                      what="5 deliveries in flight")
            env.kill_host_hard()
            recv.set("/crash", mode="ok")
            env.start_host()
            events = set(env.sql("SELECT string_agg(id, ',') FROM notify_events WHERE type = 'payment.succeeded'")
                         .split(","))
            self.assertEqual(len(events), 5)

            def delivered():
                ok = {x["headers"]["webhook-id"] for x in recv.records("/crash") if x["status"] == 200}
                return ok if ok >= events else None
            ok = recv.wait(delivered, timeout=30, what="every event after the crash")
            self.assertEqual(ok, events)
            self.assertTrue(all(verified_by_all(x) for x in recv.records("/crash")))
            by_id = {}
            for x in recv.records("/crash"):
                by_id.setdefault(x["headers"]["webhook-id"], set()).add(json.loads(x["body"])["data"]["id"])
            self.assertEqual({min(v) for v in by_id.values()}, set(pids))
            self.assertTrue(all(len(v) == 1 for v in by_id.values()))  # one id names one change
        finally:
            env.close()
            recv.close()


if __name__ == "__main__":
    unittest.main()
