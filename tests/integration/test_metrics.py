"""GET /metrics: the counters move with the traffic that passes through the host."""
import json
import os
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, http  # noqa: E402

SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$')


def scrape(env):
    r = http("GET", env.admin_url + "/metrics")
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    samples = {}
    for line in r.raw.decode().splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(sim_args=["--no-webhooks"], workers=1)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_counters_move(self):
        env = self.env
        before = scrape(env)
        created = env.pay(amount=1050)
        self.assertEqual(created.status, 201, created)
        pid = created.json["id"]
        self.assertEqual(env.pay(amount=1050, connector="NOPE").status, 422)
        event = {"event_id": "evt_" + uuid.uuid4().hex, "tx_id": created.json["provider_reference_id"],
                 "ref": pid, "status": "APPROVED", "amount": 1050, "currency": "ARS",
                 "occurred_at": "2026-11-27T12:00:00Z"}
        self.assertEqual(env.webhook(event).status, 200)
        self.assertEqual(env.webhook(json.dumps(event).encode(), signature="t=1,v1=00").status, 401)
        after = scrape(env)

        def moved(series):
            return after.get(series, 0) - before.get(series, 0)

        self.assertEqual(moved('pagoflex_http_requests_total{route="payment_create",code="201"}'), 1)
        self.assertEqual(moved('pagoflex_http_requests_total{route="payment_create",code="422"}'), 1)
        self.assertEqual(moved('pagoflex_http_requests_total{route="webhook",code="200"}'), 1)
        self.assertEqual(moved('pagoflex_http_requests_total{route="webhook",code="401"}'), 1)
        self.assertEqual(moved('pagoflex_connector_requests_total{connector="BANCO_X",route="payment_create",code="201"}'), 1)
        self.assertEqual(moved('pagoflex_connector_requests_total{connector="BANCO_X",route="webhook",code="401"}'), 1)
        self.assertEqual(moved('pagoflex_webhook_refusals_total{connector="BANCO_X",reason="invalid_signature"}'), 1)
        # the bank's reply (pending) and the webhook (succeeded)
        self.assertEqual(moved('pagoflex_payment_outcomes_total{connector="BANCO_X",state="pending"}'), 1)
        self.assertEqual(moved('pagoflex_payment_outcomes_total{connector="BANCO_X",state="succeeded"}'), 1)
        self.assertEqual(moved('pagoflex_http_request_duration_seconds_count{route="payment_create"}'), 2)
        self.assertEqual(moved('pagoflex_bank_calls_total{connector="BANCO_X",result="answered"}'), 1)
        self.assertEqual(moved('pagoflex_bank_call_duration_seconds_count{connector="BANCO_X"}'), 1)
        # insert + transition + webhook apply: three commits, at least three round trips
        self.assertEqual(moved("pagoflex_db_commits_total"), 3)
        self.assertGreaterEqual(moved("pagoflex_db_round_trips_total"), 3)
        self.assertEqual(after["pagoflex_payments_in_flight"], 0)
        self.assertEqual(after["pagoflex_reloads_total"], 0)
        # the scrape itself is counted by the next one
        self.assertGreaterEqual(moved('pagoflex_http_requests_total{route="metrics",code="200"}'), 1)
        self.assertEqual(after["pagoflex_payments_requires_review"], 0)
        self.assertIn("pagoflex_reconciler_backlog", after)
        self.assertEqual(len([k for k in after if k.startswith("pagoflex_build_info{")]), 1)

    def test_bank_that_refuses_connections_counts_transport_errors(self):
        # The reconciler's first retry of the processing payment would be a
        # second transport error: keep it after the scrape, however slow the
        # machine is.
        env = Env(sim_args=["--no-webhooks"], workers=1, extra_config="retry_base_ms = 600000;\nretry_max_ms = 600000;\n")
        try:
            before = scrape(env)
            env.sim.terminate()
            env.sim.wait(10)
            r = env.pay(amount=1050)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["status"], "processing")
            after = scrape(env)
            key = 'pagoflex_bank_calls_total{connector="BANCO_X",result="transport_error"}'
            self.assertEqual(after.get(key, 0) - before.get(key, 0), 1)
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
